"""Portal › Withdraw: the form with its pre-checks shown live before submitting, the status of a
withdrawal, and cancelling one nobody has approved yet."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.auth.principal import Principal
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.funding import withdrawals


async def _context(p: Principal, values: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {**await withdrawals.form_context(p.id, values), **extra}


def _query(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "")[:100] for k in ("source", "amount", "destination")}


class PortalWithdrawals(Controller):
    path = "/"

    @get("/withdraw")
    async def form(self, request: Request) -> Template:
        context = await _context(principal(request), _query(request))
        return render(request, "funding/withdraw.html", context, partial="funding/_withdraw_form.html")

    @get("/withdraw/checks")
    async def checks(self, request: Request) -> Template:
        """The live pre-checks (htmx, on every change of the form); a browser without htmx gets the page."""
        context = await _context(principal(request), _query(request))
        return render(request, "funding/withdraw.html", context, partial="funding/_withdraw_checks.html")

    @post("/withdraw")
    async def submit(self, request: Request) -> Response:
        p = principal(request)
        data = await form_data(request)
        kind, _, ident = data.get("source", "").partition(":")
        context = await _context(p, data)
        try:
            created = await withdrawals.request_withdrawal(
                actor_of(request), p, source=kind, amount=data.get("amount", ""), currency=context["currency"],
                destination=data.get("destination", ""),
                trading_account_id=int(ident) if kind == "account" and ident.isdigit() else None,
                idempotency_key=data.get("idempotency_key", ""),
            )  # fmt: skip
        except FormErrors as exc:
            context["errors"] = exc.errors
            return render(
                request,
                "funding/withdraw.html",
                context,
                partial="funding/_withdraw_form.html",
                status_code=422,
            )
        return redirect(request, f"/portal/withdrawals/{created['id']}")

    @get("/withdrawals/{withdrawal_id:int}")
    async def status(self, request: Request, withdrawal_id: int) -> Template:
        return await _status_page(request, withdrawal_id)

    @post("/withdrawals/{withdrawal_id:int}/cancel")
    async def cancel(self, request: Request, withdrawal_id: int) -> Response:
        p = principal(request)
        try:
            await withdrawals.cancel(p, withdrawal_id, actor_of(request))
        except FormErrors as exc:
            return await _status_page(request, withdrawal_id, errors=exc.errors, status_code=422)
        return await _status_page(
            request, withdrawal_id, done="Your withdrawal is cancelled; the money is back in your wallet."
        )


async def _status_page(
    request: Request, withdrawal_id: int, *, status_code: int = 200, **extra: Any
) -> Template:
    w = await withdrawals.get_withdrawal_for(principal(request), withdrawal_id)
    approvals = await withdrawals.approvals_of(withdrawal_id)
    context = {
        "w": w,
        "may_cancel": w["status"] == "requested" and not approvals,
        "errors": {},
        "done": "",
        **extra,
    }
    return render(
        request, "funding/withdrawal.html", context, partial="funding/_withdrawal_status.html",
        status_code=status_code,
    )  # fmt: skip


PORTAL: tuple[Any, ...] = (PortalWithdrawals,)  # controllers under /portal (the client portal's guard)
STAFF: tuple[Any, ...] = ()  # finance's side is in controllers/finance.py
API: tuple[Any, ...] = ()  # the JSON API is H-api's controllers/api.py
