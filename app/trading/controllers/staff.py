"""Trading accounts in the staff console: the accounts list, one account's page with dealing's
actions, and the accounts panel of the client page.

(Servers and account types are configured in `app.trading.controllers.settings`.)
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.auth.guards import allowed, requires_roles
from app.core.auth.principal import Principal
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.staff.navigation import section_guard
from app.trading import accounts, staff_actions, views

ACCOUNT_PAGE = "trading/staff_account.html"
ACCOUNT_PARTIAL = "trading/_staff_account_actions.html"


async def account_page(
    request: Request, p: Principal, account_id: int, *, status_code: int = 200, **extra: Any
) -> Template:
    account = await views.get_account_for(p, account_id, positions=True)
    context: dict[str, Any] = {
        "a": account,
        "can_manage": allowed(p, "dealing"),
        "unconfirmed": account["status"] == "failed" and await accounts.last_failure_unconfirmed(account_id),
        "errors": {},
        "values": {},
        "done": "",
        **extra,
    }
    return render(request, ACCOUNT_PAGE, context, partial=ACCOUNT_PARTIAL, status_code=status_code)


class TradingAccounts(Controller):
    """Accounts › list and account pages: whoever enters the section (dealing, finance, admin)
    sees them; changing an account is for dealing and administrators."""

    path = "/accounts"
    guards = [section_guard("accounts")]

    @get("/")
    async def index(self, request: Request) -> Template:
        q = request.query_params.get("q", "")
        rows = await views.search_accounts(principal(request), q)
        context = {"rows": rows, "q": q, "can_configure": allowed(principal(request), "dealing")}
        return render(
            request, "trading/staff_accounts.html", context, partial="trading/_staff_accounts_rows.html"
        )

    @get("/{account_id:int}")
    async def account(self, request: Request, account_id: int) -> Template:
        return await account_page(request, principal(request), account_id)

    @post("/{account_id:int}/relink", guards=[requires_roles("dealing")])
    async def relink(self, request: Request, account_id: int) -> Response:
        data = await form_data(request)
        p = principal(request)
        try:
            new_client = await staff_actions.relink(
                p, account_id, data.get("target", ""), data.get("reason", ""), actor_of(request)
            )
        except FormErrors as exc:
            return await account_page(request, p, account_id, status_code=422, errors=exc.errors, values=data)
        return redirect(request, f"/staff/clients/{new_client}")

    @post("/{account_id:int}/group", guards=[requires_roles("dealing")])
    async def group(self, request: Request, account_id: int) -> Response:
        data = await form_data(request)
        p = principal(request)
        try:
            group = await staff_actions.change_group(p, account_id, data.get("group", ""), actor_of(request))
        except FormErrors as exc:
            return await account_page(request, p, account_id, status_code=422, errors=exc.errors, values=data)
        return await account_page(request, p, account_id, done=f"Moved to group {group}.")

    @post("/{account_id:int}/trading", guards=[requires_roles("dealing")])
    async def trading(self, request: Request, account_id: int) -> Response:
        data = await form_data(request)
        p = principal(request)
        enable = data.get("enabled") == "1"
        try:
            await staff_actions.set_trading(p, account_id, enable, data.get("reason", ""), actor_of(request))
        except FormErrors as exc:
            return await account_page(request, p, account_id, status_code=422, errors=exc.errors, values=data)
        return await account_page(
            request, p, account_id, done="Trading enabled." if enable else "Trading disabled."
        )

    @post("/{account_id:int}/retry", guards=[requires_roles("dealing")])
    async def retry(self, request: Request, account_id: int) -> Response:
        p = principal(request)
        try:
            await staff_actions.retry(p, account_id, actor_of(request))
        except FormErrors as exc:
            return await account_page(request, p, account_id, status_code=422, errors=exc.errors)
        return await account_page(
            request, p, account_id, done="Account opened. The client sets a password with “reset password”."
        )


class ClientAccounts(Controller):
    """The accounts panel of the client page: whoever may see the client sees their accounts."""

    path = "/clients"
    guards = [section_guard("clients")]

    @get("/{client_id:int}/accounts")
    async def panel(self, request: Request, client_id: int) -> Template:
        context = await views.staff_panel_for(principal(request), client_id)
        return render(
            request, "trading/staff_client.html", context, partial="trading/_staff_client_panel.html"
        )
