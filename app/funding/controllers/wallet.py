"""Portal › Wallet (balances, trading accounts, the money history with live statuses) and the
console's funding panel and history of one client (finance, compliance, dealing, admin).

Who sees what is decided in `app.funding.history`; these handlers only pick the template.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.response import Template

from app.core.auth.guards import requires_roles
from app.core.web import is_fragment_request, principal, render
from app.funding import history

PORTAL_HISTORY = "/portal/wallet/history"


class PortalWallet(Controller):
    path = "/wallet"

    @get("/")
    async def index(self, request: Request) -> Template:
        filters = history.Filters.parse(request.query_params)
        context = await history.wallet_page_for(principal(request), filters)
        context["history_url"] = PORTAL_HISTORY
        return render(request, "funding/wallet.html", context, partial="funding/_wallet.html")

    @get("/history")
    async def movements(self, request: Request) -> Template:
        """The history list alone for htmx (filters, pages, live refresh); the page otherwise."""
        filters = history.Filters.parse(request.query_params)
        p = principal(request)
        context: dict[str, Any] = (
            await history.history_for_client(p, filters)
            if is_fragment_request(request)
            else await history.wallet_page_for(p, filters)
        )
        context["history_url"] = PORTAL_HISTORY
        return render(request, "funding/wallet.html", context, partial="funding/_wallet_history.html")


class ClientFunding(Controller):
    """The funding panel of the staff client page and the client's full money history."""

    path = "/clients"
    guards = [requires_roles(*history.STAFF_ROLES)]

    @get("/{client_id:int}/funding")
    async def panel(self, request: Request, client_id: int) -> Template:
        context = await history.staff_panel_for(principal(request), client_id)
        return render(
            request, "funding/wallet_staff.html", context, partial="funding/_wallet_staff_panel.html"
        )

    @get("/{client_id:int}/funding/history")
    async def movements(self, request: Request, client_id: int) -> Template:
        filters = history.Filters.parse(request.query_params)
        context = await history.history_for_staff(principal(request), client_id, filters)
        context["history_url"] = f"/staff/clients/{client_id}/funding/history"
        return render(
            request,
            "funding/wallet_staff_history.html",
            context,
            partial="funding/_wallet_history.html",
        )


PORTAL: tuple[Any, ...] = (PortalWallet,)
STAFF: tuple[Any, ...] = (ClientFunding,)
API: tuple[Any, ...] = ()
