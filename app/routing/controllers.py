"""Routing in the staff console: Settings › Desks, and the assignment panel on the client page."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.clients.services import get_client_for
from app.core.auth.guards import requires_roles
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.routing import desks, services
from app.staff.navigation import section_guard

CONTACT_ROLES = ("admin", "sales")


class DeskSettings(Controller):
    path = "/settings/desks"
    guards = [section_guard("settings")]

    async def _page(self, form: str = "", errors: dict | None = None, values: dict | None = None) -> Template:
        ctx = await desks.overview()
        ctx.update(form=form, errors=errors or {}, values=values or {})
        return Template("routing/desks.html", context=ctx, status_code=422 if errors else 200)

    @get("/")
    async def index(self) -> Template:
        return await self._page()

    @post("/")
    async def create_desk(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            await desks.create_desk(data.get("name", ""), actor_of(request))
        except FormErrors as exc:
            return await self._page("desk", exc.errors, data)
        return redirect(request, "/staff/settings/desks")

    @post("/members")
    async def add_member(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            await desks.add_member(data, actor_of(request))
        except FormErrors as exc:
            return await self._page("member", exc.errors, data)
        return redirect(request, "/staff/settings/desks")

    @post("/{desk_id:int}/active")
    async def set_desk_active(self, request: Request, desk_id: int) -> Response:
        data = await form_data(request)
        try:
            await desks.set_desk_active(desk_id, data.get("active") == "on", actor_of(request))
        except FormErrors as exc:
            return await self._page("desks", exc.errors, data)
        return redirect(request, f"/staff/settings/desks#desk-{desk_id}")

    @post("/members/{member_id:int}")
    async def update_member(self, request: Request, member_id: int) -> Response:
        data = await form_data(request)
        try:
            await desks.update_member(member_id, data, actor_of(request))
        except FormErrors as exc:
            return await self._page(f"member-{member_id}", exc.errors, data)
        return redirect(request, "/staff/settings/desks")

    @post("/rules")
    async def add_rule(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            await desks.add_rule(data, actor_of(request))
        except FormErrors as exc:
            return await self._page("rule", exc.errors, data)
        return redirect(request, "/staff/settings/desks")

    @post("/rules/remove")
    async def remove_rule(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            await desks.remove_rule(data.get("rule", ""), actor_of(request))
        except FormErrors as exc:
            return await self._page("rules", exc.errors, data)
        return redirect(request, "/staff/settings/desks")


class ClientAssignment(Controller):
    """The client page's assignment panel: page and htmx fragment share `_assignment_panel.html`."""

    path = "/clients"
    guards = [section_guard("clients")]

    async def _panel(
        self, request: Request, client_id: int, status_code: int = 200, **extra: object
    ) -> Template:
        p = principal(request)
        client = await get_client_for(p, client_id)
        ctx = await services.assignment_panel_for(p, client_id)
        ctx.update({"client": client, "assignment_errors": {}, **extra})
        return render(
            request,
            "routing/assignment.html",
            ctx,
            partial="routing/_assignment_panel.html",
            status_code=status_code,
        )

    @get("/{client_id:int}/assignment")
    async def panel(self, request: HTMXRequest, client_id: int) -> Template:
        return await self._panel(request, client_id)

    @post("/{client_id:int}/contacted", guards=[requires_roles(*CONTACT_ROLES)])
    async def contacted(self, request: HTMXRequest, client_id: int) -> Response:
        await get_client_for(principal(request), client_id)
        try:
            await services.mark_contacted(client_id, actor_of(request))
        except FormErrors as exc:
            return await self._panel(request, client_id, 422, assignment_errors=exc.errors)
        if request.htmx:
            return await self._panel(request, client_id, assignment_flash="Marked as contacted.")
        return redirect(request, f"/staff/clients/{client_id}")

    @post("/{client_id:int}/owner", guards=[requires_roles("admin")])
    async def reassign(self, request: HTMXRequest, client_id: int) -> Response:
        p = principal(request)
        await get_client_for(p, client_id)
        data = await form_data(request)
        raw = data.get("owner", "").strip()
        try:
            owner = int(raw) if raw else None
        except ValueError:
            return await self._panel(request, client_id, 422, assignment_errors={"owner": "Choose an agent."})
        try:
            await services.reassign(client_id, owner, actor_of(request), p)
        except FormErrors as exc:
            return await self._panel(request, client_id, 422, assignment_errors=exc.errors)
        if request.htmx:
            return await self._panel(request, client_id, assignment_flash="Owner changed.")
        return redirect(request, f"/staff/clients/{client_id}")
