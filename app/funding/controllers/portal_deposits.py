"""Portal › Deposit: the methods offered to this client with both fees and the net amount (a live
preview as the amount is typed), the card/e-wallet form that sends the browser to the provider's
hosted page, and the deposit's own page the provider sends it back to, whose status follows the
deposit live: every status change publishes `funding.deposit` on `client:{id}` (`deposits.announce`)
and the client's socket swaps in the re-rendered card by its id (`deposit-<id>`). While the deposit
is open the card also asks for itself every 15 s, in case an event fell between the page's load and
its socket's connection. Bank wire and crypto have their own pages (links)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.core.live import Event, render_template, renderer
from app.core.live_socket import csrf_token
from app.core.web import actor_of, form_data, is_fragment_request, principal, redirect, render
from app.funding import deposit_events, deposits, payment_methods
from app.funding.amounts import MINOR_UNITS, LedgerError
from app.funding.providers.base import ProviderError
from app.kyc.levels import RightDenied, require_right
from app.settings import get_settings

HOSTED = deposit_events.CARD_KINDS
OTHER_PAGES = {"wire": "/portal/deposit/wire", "crypto": "/portal/deposit/crypto"}


async def _preview(method: dict[str, Any] | None, amount_text: str, currency: str) -> dict[str, Any]:
    """Fees and net for what is typed so far, or why there is nothing to show yet."""
    if method is None:
        return {"message": "Choose a method."}
    currency = (currency or payment_methods.currency_of(method)).upper()
    if currency not in method["currencies"].split(","):
        return {"message": f"{method['name']} takes {method['currencies'].replace(',', ', ')}."}
    try:
        amount = deposits.parse_amount(amount_text)
        if amount <= 0 or amount != amount.quantize(Decimal(1).scaleb(-MINOR_UNITS[currency])):
            raise LedgerError(f"Enter a positive amount in {currency}.")
        fees = await deposits.fees_in(method, amount, currency)
    except LedgerError as exc:
        return {"message": exc.message if amount_text.strip() else "Enter an amount to see the fees."}
    return {"amount": amount, "currency": currency, **fees}


class PortalDeposits(Controller):
    path = "/"

    async def _page(self, request: Request, *, status_code: int = 200, **extra: Any) -> Template:
        p = principal(request)
        denied = ""
        try:
            await require_right(p.id, "deposits")
        except RightDenied as exc:
            denied = exc.message
        methods = [] if denied else await payment_methods.methods_for_client(p.id)
        values = {
            "method_id": next((str(m["id"]) for m in methods if m["kind"] in HOSTED), ""),
            **extra.pop("values", {}),
        }
        method = next((m for m in methods if str(m["id"]) == values.get("method_id")), None)
        context = {
            "denied": denied,
            "hosted": [m for m in methods if m["kind"] in HOSTED],
            "others": [
                {**m, "url": OTHER_PAGES.get(m["kind"], "")} for m in methods if m["kind"] not in HOSTED
            ],
            "values": values,
            "errors": {},
            "preview": await _preview(method, values.get("amount", ""), values.get("currency", "")),
            "idempotency_key": uuid.uuid4().hex,
            "recent": await deposits.deposits_for_client(p.id, limit=5),
            **extra,
        }
        return render(
            request,
            "funding/portal_deposit.html",
            context,
            partial="funding/_portal_deposit_form.html",
            status_code=status_code,
        )

    @get("/deposit")
    async def index(self, request: Request) -> Template:
        return await self._page(request)

    @get("/deposit/preview")
    async def preview(self, request: Request) -> Template:
        """The fee preview under the form (htmx, on input); a browser gets the page, filled in."""
        q = request.query_params
        values = {k: str(q.get(k, ""))[:40] for k in ("method_id", "amount", "currency")}
        if not is_fragment_request(request):
            return await self._page(request, values=values)
        methods = await payment_methods.methods_for_client(principal(request).id)
        method = next(
            (m for m in methods if str(m["id"]) == values["method_id"] and m["kind"] in HOSTED), None
        )
        context = {"preview": await _preview(method, values["amount"], values["currency"])}
        return Template(template_name="funding/_portal_deposit_preview.html", context=context)

    @post("/deposit")
    async def create(self, request: Request) -> Response:
        data = await form_data(request)
        p, actor = principal(request), actor_of(request)
        try:
            method_id = int(data.get("method_id", ""))
        except ValueError:
            return await self._page(
                request, values=data, errors={"method_id": "Choose a method."}, status_code=422
            )
        try:
            method = await payment_methods.get_method(method_id)
            if method["kind"] not in HOSTED:
                raise LedgerError("Use the page of this method to deposit with it.", field="method_id")
            currency = (data.get("currency") or payment_methods.currency_of(method)).strip()
            deposit = await deposits.create_deposit(
                actor,
                p.id,
                method_id,
                deposits.parse_amount(data.get("amount")),
                currency,
                idempotency_key=data.get("idempotency_key") or None,
            )
        except RightDenied as exc:
            return await self._page(request, values=data, errors={"__all__": exc.message}, status_code=403)
        except FormErrors as exc:
            errors = {("method_id" if k == "method" else k): v for k, v in exc.errors.items()}
            return await self._page(request, values=data, errors=errors, status_code=422)
        if deposit["status"] != "created":  # a double submit after the payment went through
            return redirect(request, f"/portal/deposits/{deposit['id']}")
        return await self._to_provider(request, deposit)

    async def _hosted_page(self, request: Request, deposit: dict[str, Any]) -> str | Template:
        """The provider's hosted page for a created deposit, or the deposit's page saying why not."""
        p = principal(request)
        return_url = f"{get_settings().base_url}/portal/deposits/{deposit['id']}"
        try:
            return await deposit_events.start_card_payment(
                actor_of(request), deposit, return_url, {"client_id": p.id, "email": p.email, "name": p.name}
            )
        except ProviderError as exc:
            return await self._status(request, deposit["id"], error=exc.message, status_code=502)

    async def _to_provider(self, request: Request, deposit: dict[str, Any]) -> Response:
        url = await self._hosted_page(request, deposit)
        if not isinstance(url, str):
            return url
        if getattr(request, "htmx", None):
            return Response(content="", status_code=200, headers={"HX-Redirect": url})
        # Without JavaScript: our own page with the link (CSP form-action would stop a cross-site redirect).
        return redirect(request, f"/portal/deposits/{deposit['id']}?pay=1")

    async def _status(
        self, request: Request, deposit_id: int, *, status_code: int = 200, **extra: Any
    ) -> Template:
        d = await deposits.get_deposit_for(principal(request), deposit_id)
        method = await payment_methods.get_method(d["method_id"]) if d["method_id"] else None
        context = {"d": d, "method": method, "pay_url": "", "error": "", **extra}
        return render(
            request,
            "funding/portal_deposit_status.html",
            context,
            partial="funding/_portal_deposit_status.html",
            status_code=status_code,
        )

    @get("/deposits/{deposit_id:int}")
    async def detail(self, request: Request, deposit_id: int) -> Template:
        return await self._status(request, deposit_id)

    @post("/deposits/{deposit_id:int}/pay")
    async def pay(self, request: Request, deposit_id: int) -> Response:
        """Back to the hosted page (a client who left it, or came without JavaScript)."""
        d = await deposits.get_deposit_for(principal(request), deposit_id)
        if d["status"] != "created" or d["kind"] not in HOSTED:
            return redirect(request, f"/portal/deposits/{deposit_id}")
        url = await self._hosted_page(request, d)
        if not isinstance(url, str):
            return url
        if getattr(request, "htmx", None):
            return Response(content="", status_code=200, headers={"HX-Redirect": url})
        return await self._status(request, deposit_id, pay_url=url)


@renderer("funding.deposit")
async def deposit_status_changed(viewer: Principal, event: Event) -> str | None:
    """The deposit's card on its own page, for its client's socket only (no one else's topic)."""
    if not getattr(viewer, "is_client", False) or event.topic != f"client:{viewer.id}":
        return None
    try:
        d = await deposits.get_deposit_for(viewer, int(event.ids.get("deposit_id", 0)))
    except (NotFound, TypeError, ValueError):
        return None
    method = await payment_methods.get_method(d["method_id"]) if d["method_id"] else None
    return render_template(
        "funding/_portal_deposit_status.html",
        d=d, method=method, pay_url="", error="", oob=True, csrf_token=csrf_token,
    )  # fmt: skip


PORTAL: tuple[Any, ...] = (PortalDeposits,)
STAFF: tuple[Any, ...] = ()
API: tuple[Any, ...] = ()
