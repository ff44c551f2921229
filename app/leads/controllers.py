"""Leads in the staff console: the client page's panel of every capture of that client."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.response import Template

from app.clients.services import get_client_for
from app.core.web import principal, render
from app.leads import services
from app.staff.navigation import section_guard


class ClientLeadSources(Controller):
    path = "/clients"
    guards = [section_guard("clients")]

    @get("/{client_id:int}/sources")
    async def panel(self, request: Request, client_id: int) -> Template:
        p = principal(request)
        sources = await services.sources_for(p, client_id)
        context = {"client": await get_client_for(p, client_id), "sources": sources, "sources_loaded": True}
        return render(request, "leads/sources.html", context, partial="leads/_sources_panel.html")
