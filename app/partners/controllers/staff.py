"""The client page's IB block in the staff console: who referred the client, and (for admin and
compliance) setting, changing or removing it with a reason."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.core.auth.guards import requires_roles
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.partners import reattribution
from app.staff.navigation import section_guard

FLASH = {"set": "IB set.", "changed": "IB changed.", "removed": "IB attribution removed."}


class ClientAttribution(Controller):
    """Page and htmx fragment share `partners/_attribution.html`."""

    path = "/clients"
    guards = [section_guard("clients")]

    async def _panel(
        self, request: Request, client_id: int, status_code: int = 200, **extra: Any
    ) -> Template:
        context = await reattribution.attribution_panel_for(principal(request), client_id)
        context.update(extra)
        return render(
            request,
            "partners/attribution.html",
            context,
            partial="partners/_attribution.html",
            status_code=status_code,
        )

    @get("/{client_id:int}/attribution")
    async def panel(self, request: Request, client_id: int) -> Template:
        return await self._panel(request, client_id)

    @post("/{client_id:int}/attribution", guards=[requires_roles(*reattribution.ROLES)])
    async def reattribute(self, request: HTMXRequest, client_id: int) -> Response:
        data = await form_data(request)
        try:
            outcome = await reattribution.reattribute(
                principal(request),
                client_id,
                data.get("ib_code", ""),
                data.get("ib_reason", ""),
                actor_of(request),
            )
        except FormErrors as exc:
            return await self._panel(
                request, client_id, 422, attribution_errors=exc.errors, attribution_values=data
            )
        if request.htmx:
            return await self._panel(request, client_id, attribution_flash=FLASH[outcome])
        return redirect(request, f"/staff/clients/{client_id}")
