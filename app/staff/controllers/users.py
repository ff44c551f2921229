from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.staff import services
from app.staff.navigation import section_guard
from app.staff.tables import ROLE_LABELS, ROLES


async def _form(request: Request) -> services.StaffForm:
    form = await request.form()
    return services.StaffForm(
        email=str(form.get("email", "")),
        name=str(form.get("name", "")),
        roles=[str(r) for r in form.getall("roles", [])],  # no box ticked: no "roles" key at all
        password=str(form.get("password", "")),
    )


class StaffUsers(Controller):
    """Settings › Staff users: admins only (the guard, not the menu, enforces it)."""

    path = "/settings/staff"
    guards = [section_guard("settings")]

    def _ctx(self, **extra: object) -> dict[str, object]:
        return {"roles": ROLES, "role_labels": ROLE_LABELS, "errors": {}, "values": {}, **extra}

    @get("/")
    async def index(self, request: Request) -> Template:
        rows = await services.list_staff(principal(request))
        return render(request, "staff/users.html", self._ctx(users=rows), partial="staff/_users_table.html")

    @get("/new")
    async def new(self) -> Template:
        return Template("staff/user_form.html", context=self._ctx(creating=True, values={"roles": []}))

    @post("/new")
    async def create(self, request: Request) -> Response:
        form = await _form(request)
        try:
            await services.create_staff(form, actor_of(request), by=principal(request))
        except FormErrors as exc:
            values = {"email": form.email, "name": form.name, "roles": form.roles}
            return Template(
                "staff/user_form.html",
                context=self._ctx(creating=True, values=values, errors=exc.errors),
                status_code=422,
            )
        return redirect(request, "/staff/settings/staff")

    @get("/{staff_id:int}")
    async def edit(self, request: Request, staff_id: int) -> Template:
        row = await services.get_staff_for(principal(request), staff_id)
        return Template("staff/user_form.html", context=self._ctx(creating=False, user=row, values=row))

    @post("/{staff_id:int}")
    async def update(self, request: Request, staff_id: int) -> Response:
        form = await _form(request)
        row = await services.get_staff_for(principal(request), staff_id)
        try:
            await services.update_staff(principal(request), staff_id, form, actor_of(request))
        except FormErrors as exc:
            values = {**row, "name": form.name, "roles": form.roles}
            return Template(
                "staff/user_form.html",
                context=self._ctx(creating=False, user=row, values=values, errors=exc.errors),
                status_code=422,
            )
        return redirect(request, "/staff/settings/staff")

    @post("/{staff_id:int}/active")
    async def set_active(self, request: Request, staff_id: int) -> Response:
        data = await form_data(request)
        try:
            await services.set_active(
                principal(request), staff_id, data.get("active") == "1", actor_of(request)
            )
        except FormErrors as exc:
            rows = await services.list_staff(principal(request))
            return render(
                request,
                "staff/users.html",
                self._ctx(users=rows, errors=exc.errors),
                partial="staff/_users_table.html",
                status_code=422,
            )
        return redirect(request, "/staff/settings/staff")

    @post("/{staff_id:int}/reset-2fa")
    async def reset_2fa(self, request: Request, staff_id: int) -> Response:
        await services.reset_second_factor(principal(request), staff_id, actor_of(request))
        return redirect(request, f"/staff/settings/staff/{staff_id}")
