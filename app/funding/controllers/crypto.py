"""Crypto: the client's deposit address and their deposits with live confirmations (portal), and
finance's suspense list of chain money nobody could be credited with (console)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.core.live import Event, render_template, renderer
from app.core.web import actor_of, form_data, principal, redirect, render
from app.funding import crypto, crypto_suspense, reconcile_suspense
from app.funding.providers import ProviderError
from app.kyc.levels import RightDenied
from app.staff.navigation import section_guard


class CryptoDeposit(Controller):
    path = "/deposit/crypto"

    @get("/")
    async def index(self, request: Request) -> Template:
        p = principal(request)
        offered = await crypto.offered(p.id)
        wanted = request.query_params.get("currency", "").strip().upper()
        chosen = next((o for o in offered if o["currency"] == wanted), offered[0] if offered else None)
        address, denied = None, ""
        if chosen is not None:
            try:
                address = await crypto.address_for(actor_of(request), p.id, chosen["currency"])
            except RightDenied as exc:
                denied = exc.message
        context = {
            "offered": offered,
            "chosen": chosen,
            "address": address,
            "denied": denied,
            "needed": await crypto.confirmations_needed(),
            "deposits": await crypto.crypto_deposits_of(p.id),
        }
        return render(request, "funding/crypto_deposit.html", context, partial="funding/_crypto_deposit.html")

    @get("/{deposit_id:int}")
    async def row(self, request: Request, deposit_id: int) -> Template:
        d = await crypto.get_crypto_for(principal(request), deposit_id)
        context = {"d": d, "needed": await crypto.confirmations_needed(), "oob": False}
        return render(request, "funding/crypto_deposit_row.html", context, partial="funding/_crypto_row.html")


@renderer("funding.deposit")
async def crypto_list_changed(viewer: Principal, event: Event) -> str | None:
    """The client's crypto deposits on /portal/deposit/crypto follow the chain: a new transaction
    appears, confirmations count up, credited shows (the list is short: all of it is sent)."""
    if not getattr(viewer, "is_client", False):
        return None
    try:
        d = await crypto.get_crypto_for(viewer, int(event.ids.get("deposit_id", 0)))
    except (NotFound, TypeError, ValueError):
        return None
    return render_template(
        "funding/_crypto_list.html",
        deposits=await crypto.crypto_deposits_of(d["client_id"]),
        needed=await crypto.confirmations_needed(),
        oob=True,
    )


class CryptoSuspense(Controller):
    path = "/funding/crypto"
    guards = [section_guard("funding")]

    async def _page(self, request: Request, *, status_code: int = 200, **extra: Any) -> Template:
        context = {
            "rows": await crypto_suspense.suspense(include_resolved=request.query_params.get("all") == "1"),
            "suspense": await reconcile_suspense.summary(),
            "errors": {},
            "polled": None,
            "poll_error": "",
            "error_id": None,
            **extra,
        }
        return render(
            request,
            "funding/crypto_suspense.html",
            context,
            partial="funding/_crypto_suspense.html",
            status_code=status_code,
        )

    @get("/")
    async def index(self, request: Request) -> Template:
        return await self._page(request)

    @post("/poll")
    async def poll(self, request: Request) -> Template:
        try:
            result = await crypto.poll(actor_of(request))
        except ProviderError as exc:
            return await self._page(request, poll_error=exc.message)
        return await self._page(request, polled=result)

    @post("/{chain_tx_id:int}/assign")
    async def assign(self, request: Request, chain_tx_id: int) -> Response:
        data = await form_data(request)
        try:
            client_id = int(data.get("client_id", "").strip())
        except ValueError:
            return await self._page(
                request,
                errors={"client_id": "Enter the client's number."},
                error_id=chain_tx_id,
                status_code=422,
            )
        try:
            await crypto_suspense.assign(
                actor_of(request), principal(request), chain_tx_id, client_id, data.get("note", "")
            )
        except FormErrors as exc:
            return await self._page(request, errors=exc.errors, error_id=chain_tx_id, status_code=422)
        return redirect(request, "/staff/funding/crypto")

    @post("/{chain_tx_id:int}/resolve")
    async def resolve(self, request: Request, chain_tx_id: int) -> Response:
        data = await form_data(request)
        try:
            await crypto_suspense.resolve(
                actor_of(request), principal(request), chain_tx_id, data.get("note", "")
            )
        except FormErrors as exc:
            return await self._page(request, errors=exc.errors, error_id=chain_tx_id, status_code=422)
        return redirect(request, "/staff/funding/crypto")


PORTAL: tuple[Any, ...] = (CryptoDeposit,)
STAFF: tuple[Any, ...] = (CryptoSuspense,)
API: tuple[Any, ...] = ()
