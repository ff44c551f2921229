"""Settings › API keys: admins create (the key is shown once), list and revoke keys."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.errors import FormErrors
from app.core.web import actor_of, principal, redirect, render
from app.integrations import services
from app.integrations.tables import SCOPE_LABELS, SCOPES
from app.staff.navigation import section_guard


class ApiKeys(Controller):
    path = "/settings/api-keys"
    guards = [section_guard("settings")]

    def _ctx(self, **extra: object) -> dict[str, object]:
        return {"scopes": SCOPES, "scope_labels": SCOPE_LABELS, "errors": {}, "values": {}, **extra}

    @get("/")
    async def index(self, request: Request) -> Template:
        keys = await services.list_api_keys()
        return render(
            request,
            "integrations/api_keys.html",
            self._ctx(keys=keys),
            partial="integrations/_api_keys_table.html",
        )

    @get("/new")
    async def new(self) -> Template:
        return Template(
            "integrations/api_key_form.html", context=self._ctx(values={"scopes": ["leads:write"]})
        )

    @post("/new")
    async def create(self, request: Request) -> Template:
        form = await request.form()
        name = str(form.get("name", ""))
        scopes = [str(s) for s in form.getall("scopes", [])]
        try:
            key_id, key = await services.create_api_key(
                name, scopes, actor_of(request), by_staff_id=principal(request).id
            )
        except FormErrors as exc:
            return Template(
                "integrations/api_key_form.html",
                context=self._ctx(values={"name": name, "scopes": scopes}, errors=exc.errors),
                status_code=422,
            )
        # The one and only time the key is shown: answered directly, never through a redirect.
        return Template(
            "integrations/api_key_created.html",
            context=self._ctx(key=key, key_id=key_id, name=name.strip(), key_scopes=sorted(set(scopes))),
            status_code=201,
            headers={"Cache-Control": "no-store"},
        )

    @post("/{key_id:int}/revoke")
    async def revoke(self, request: Request, key_id: int) -> Response:
        await services.revoke_api_key(key_id, actor_of(request))
        return redirect(request, "/staff/settings/api-keys")
