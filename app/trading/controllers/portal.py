"""Portal › Accounts: the client's trading accounts with live figures, opening a new one, and
changing leverage or passwords.

A new password (at opening or after a reset) exists only in the answer to that request: it is
rendered into the page once, never stored and never redirected through a URL.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, Router, get, post
from litestar.response import Template

from app.core.auth.guards import client_guard
from app.core.auth.principal import Principal
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, is_fragment_request, principal, render
from app.trading import accounts, views

NO_STORE = {"Cache-Control": "no-store"}  # pages that show a password once


async def _new_page(
    request: Request, p: Principal, chosen: str = "", *, status_code: int = 200, **extra: Any
) -> Template:
    offers = await accounts.offers_for(p)
    offer = next((o for o in offers if str(o["id"]) == chosen), None)
    context = {"offers": offers, "offer": offer, "errors": {}, "values": {}, "failed": None, **extra}
    return render(
        request,
        "trading/portal_new.html",
        context,
        partial="trading/_portal_new.html",
        status_code=status_code,
    )


async def _account_page(
    request: Request, p: Principal, account_id: int, *, status_code: int = 200, **extra: Any
) -> Template:
    account = await views.get_account_for(p, account_id, positions=True)
    choices: list[int] = []
    if account["account_type"] is not None and account["status"] == "active":
        from app.trading import account_types

        t = await account_types.get_type(account["account_type"])
        choices, _cap = await accounts.allowed_leverages(p.id, {**t, "is_demo": account["is_demo"]})
    retry_allowed = account["status"] == "failed" and not await accounts.last_failure_unconfirmed(account_id)
    context = {
        "a": account,
        "choices": choices,
        "errors": {},
        "new_password": None,
        "done": "",
        "retry_allowed": retry_allowed,
        **extra,
    }
    headers = NO_STORE if extra.get("new_password") else None
    name = (
        "trading/_portal_account_tools.html"
        if is_fragment_request(request)
        else "trading/portal_account.html"
    )
    return Template(name, context=context, status_code=status_code, headers=headers)


class PortalAccounts(Controller):
    path = "/accounts"

    @get("/")
    async def index(self, request: Request) -> Template:
        context = await views.portal_page_for(principal(request))
        return render(
            request, "trading/portal_accounts.html", context, partial="trading/_portal_accounts.html"
        )

    @get("/new")
    async def new(self, request: Request) -> Template:
        return await _new_page(request, principal(request), request.query_params.get("type", "")[:12])

    @post("/new")
    async def open(self, request: Request) -> Response:
        data = await form_data(request)
        p = principal(request)
        chosen = data.get("account_type", "")[:12]
        try:
            opened = await accounts.open_account(p, chosen, data.get("leverage", ""), actor_of(request))
        except FormErrors as exc:
            return await _new_page(request, p, chosen, status_code=422, errors=exc.errors, values=data)
        except accounts.ProvisioningFailed as exc:
            return await _new_page(request, p, chosen, status_code=422, failed=exc)
        return self._opened(request, opened)

    @post("/{account_id:int}/retry")
    async def retry(self, request: Request, account_id: int) -> Response:
        p = principal(request)
        try:
            opened = await accounts.retry(p, account_id, actor_of(request))
        except FormErrors as exc:
            return await _account_page(request, p, account_id, status_code=422, errors=exc.errors)
        except accounts.ProvisioningFailed as exc:
            return await _account_page(
                request, p, account_id, status_code=422, errors={"__all__": exc.message}
            )
        return self._opened(request, opened)

    def _opened(self, request: Request, opened: accounts.Opened) -> Template:
        context = {
            "a": opened.account,
            "password_main": opened.password_main,
            "password_investor": opened.password_investor,
        }
        name = "trading/_portal_opened.html" if is_fragment_request(request) else "trading/portal_opened.html"
        return Template(name, context=context, headers=NO_STORE)

    @get("/{account_id:int}")
    async def account(self, request: Request, account_id: int) -> Template:
        return await _account_page(request, principal(request), account_id)

    @post("/{account_id:int}/leverage")
    async def leverage(self, request: Request, account_id: int) -> Response:
        data = await form_data(request)
        p = principal(request)
        try:
            chosen = await accounts.change_leverage(
                p, account_id, data.get("leverage", ""), actor_of(request)
            )
        except FormErrors as exc:
            return await _account_page(request, p, account_id, status_code=422, errors=exc.errors)
        return await _account_page(request, p, account_id, done=f"Leverage is now 1:{chosen}.")

    @post("/{account_id:int}/password")
    async def password(self, request: Request, account_id: int) -> Response:
        data = await form_data(request)
        p = principal(request)
        kind = data.get("kind", "")
        try:
            new = await accounts.reset_password(p, account_id, kind, actor_of(request))
        except FormErrors as exc:
            return await _account_page(request, p, account_id, status_code=422, errors=exc.errors)
        return await _account_page(request, p, account_id, new_password={"kind": kind, "value": new})


def portal_router() -> Router:
    """Under /portal with the portal's guard (a fresh router per application)."""
    return Router(
        path="/portal", guards=[client_guard], route_handlers=[PortalAccounts], include_in_schema=False
    )
