"""Console actions on a client's money (`app.funding.staff_actions`): the funding panel's slot of
actions, withdrawing on a client's behalf (the form with its live pre-checks), and finance settling
a stuck card or e-wallet deposit by hand."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.auth.guards import requires_roles
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.funding import history, staff_actions
from app.staff.navigation import section_guard

_FORM_KEYS = ("source", "amount", "destination", "note", "idempotency_key")


def _query(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "")[:1000] for k in _FORM_KEYS}


class ClientFundingActions(Controller):
    """The funding panel's actions slot: whoever sees the panel asks; Python decides what they get."""

    path = "/clients"
    guards = [requires_roles(*history.STAFF_ROLES)]

    @get("/{client_id:int}/funding/actions")
    async def actions(self, request: Request, client_id: int) -> Template:
        context = await staff_actions.panel_actions(principal(request), client_id)
        return render(
            request,
            "funding/staff_funding_actions.html",
            context,
            partial="funding/_staff_funding_actions.html",
        )


class WithdrawOnBehalf(Controller):
    """Finance (and admin) create a withdrawal for the client, with the client's own pre-checks."""

    path = "/clients"
    guards = [requires_roles(*staff_actions.ROLES)]

    @get("/{client_id:int}/funding/withdraw")
    async def form(self, request: Request, client_id: int) -> Template:
        context = await staff_actions.withdraw_form(principal(request), client_id, _query(request))
        return _form(request, context)

    @get("/{client_id:int}/funding/withdraw/checks")
    async def checks(self, request: Request, client_id: int) -> Template:
        """The live pre-checks (htmx, on every change); a browser without htmx gets the page."""
        context = await staff_actions.withdraw_form(principal(request), client_id, _query(request))
        return render(
            request, "funding/staff_withdraw.html", context, partial="funding/_staff_withdraw_checks.html"
        )

    @post("/{client_id:int}/funding/withdraw")
    async def submit(self, request: Request, client_id: int) -> Response:
        p = principal(request)
        data = await form_data(request)
        try:
            created = await staff_actions.withdraw_on_behalf(p, client_id, data, actor_of(request))
        except FormErrors as exc:
            context = await staff_actions.withdraw_form(p, client_id, data, errors=exc.errors)
            return _form(request, context, status_code=422)
        return redirect(request, f"/staff/funding/withdrawals/{created['id']}?created=1")


def _form(request: Request, context: dict[str, Any], *, status_code: int = 200) -> Template:
    return render(
        request, "funding/staff_withdraw.html", context, partial="funding/_staff_withdraw_form.html",
        status_code=status_code,
    )  # fmt: skip


class DepositSettlement(Controller):
    """Funding › a deposit: finance marks a stuck card or e-wallet deposit paid or failed."""

    path = "/funding/deposits"
    guards = [section_guard("funding"), requires_roles(*staff_actions.ROLES)]

    @get("/{deposit_id:int}")
    async def detail(self, request: Request, deposit_id: int) -> Template:
        return await _deposit_screen(request, deposit_id)

    @post("/{deposit_id:int}/paid")
    async def paid(self, request: Request, deposit_id: int) -> Template:
        data = await form_data(request)
        try:
            after = await staff_actions.mark_paid(principal(request), deposit_id, data, actor_of(request))
        except FormErrors as exc:
            return await _deposit_screen(request, deposit_id, errors=exc.errors, values=data, status_code=422)
        done = (
            "Marked paid: the client's wallet is credited."
            if after["status"] == "completed"
            else f"Recorded as paid; not credited yet: {after['failure_reason']}"
        )
        return await _deposit_screen(request, deposit_id, done=done)

    @post("/{deposit_id:int}/failed")
    async def failed(self, request: Request, deposit_id: int) -> Template:
        data = await form_data(request)
        try:
            await staff_actions.mark_failed(principal(request), deposit_id, data, actor_of(request))
        except FormErrors as exc:
            return await _deposit_screen(request, deposit_id, errors=exc.errors, values=data, status_code=422)
        return await _deposit_screen(request, deposit_id, done="Marked failed; the client is told why.")


async def _deposit_screen(
    request: Request, deposit_id: int, *, status_code: int = 200, **extra: Any
) -> Template:
    context = await staff_actions.deposit_screen(principal(request), deposit_id)
    values = extra.pop("values", None) or {"amount": str(context["d"]["amount"])}
    context = {"errors": {}, "done": "", "values": values, **context, **extra}
    return render(
        request, "funding/finance_deposit.html", context, partial="funding/_finance_deposit.html",
        status_code=status_code,
    )  # fmt: skip


PORTAL: tuple[Any, ...] = ()
STAFF: tuple[Any, ...] = (ClientFundingActions, WithdrawOnBehalf, DepositSettlement)  # under /staff
API: tuple[Any, ...] = ()
