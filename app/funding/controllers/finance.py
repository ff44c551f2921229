"""Funding › Queue: finance's pending deposits and withdrawals with filters and CSV export, the
withdrawal approval screen (client KYC, risk, recent activity, pre-checks recomputed now) with its
approve / reject / change-amount forms, and the funding policy form."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Stream, Template

from app.core.auth.guards import requires_roles
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.funding import approvals, finance_queue, payouts, policy, withdrawals
from app.funding.withdrawal_checks import parse_amount
from app.staff.navigation import section_guard

FILTER_KEYS = ("kind", "status", "currency", "min", "max", "from", "to", "q")
CREATED = "Withdrawal created for the client: another finance officer must approve it."


async def _screen(request: Request, withdrawal_id: int, *, status_code: int = 200, **extra: Any) -> Template:
    screen = await finance_queue.approval_screen(principal(request), withdrawal_id)
    context = {"errors": {}, "done": "", "values": {}, **screen, **extra}
    return render(
        request, "funding/finance_withdrawal.html", context, partial="funding/_finance_withdrawal.html",
        status_code=status_code,
    )  # fmt: skip


class FinanceQueue(Controller):
    path = "/funding"
    guards = [section_guard("funding"), requires_roles("finance")]

    @get("/queue")
    async def queue(self, request: Request) -> Template:
        params = {k: request.query_params.get(k, "") for k in FILTER_KEYS}
        f = finance_queue.parse_filters(params)
        context = {
            "f": f,
            "rows": await finance_queue.queue(f),
            "statuses": finance_queue.STATUSES[f.kind],
            "csv_query": "&".join(f"{k}={v}" for k, v in f.query().items() if v),
            "limit": finance_queue.PAGE,
        }
        return render(
            request, "funding/finance_queue.html", context, partial="funding/_finance_queue_table.html"
        )

    @get("/queue.csv")
    async def export(self, request: Request) -> Stream:
        f = finance_queue.parse_filters({k: request.query_params.get(k, "") for k in FILTER_KEYS})
        await finance_queue.record_export(actor_of(request), f)
        return Stream(
            finance_queue.export_csv(f),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="funding-{f.kind}.csv"',
                "Cache-Control": "no-store",
            },
        )

    @get("/withdrawals/{withdrawal_id:int}")
    async def withdrawal(self, request: Request, withdrawal_id: int) -> Template:
        created = request.query_params.get("created") == "1"  # just created on the client's behalf
        return await _screen(request, withdrawal_id, done=CREATED if created else "")

    @post("/withdrawals/{withdrawal_id:int}/approve")
    async def approve(self, request: Request, withdrawal_id: int) -> Response:
        try:
            after = await approvals.approve(principal(request), withdrawal_id, actor_of(request))
        except FormErrors as exc:
            return await _screen(request, withdrawal_id, errors=exc.errors, status_code=422)
        done = (
            "Approved: the payout is on its way."
            if after["status"] == "approved"
            else "Step 1 approved: a second officer must approve."
        )
        return await _screen(request, withdrawal_id, done=done)

    @post("/withdrawals/{withdrawal_id:int}/reject")
    async def reject(self, request: Request, withdrawal_id: int) -> Response:
        data = await form_data(request)
        try:
            await approvals.reject(
                principal(request), withdrawal_id, data.get("reason", ""), actor_of(request)
            )
        except FormErrors as exc:
            return await _screen(request, withdrawal_id, errors=exc.errors, values=data, status_code=422)
        return await _screen(
            request, withdrawal_id, done="Rejected; the funds are back in the client's wallet."
        )

    @post("/withdrawals/{withdrawal_id:int}/amount")
    async def amount(self, request: Request, withdrawal_id: int) -> Response:
        data = await form_data(request)
        try:
            value = parse_amount(data.get("amount", ""))
            await approvals.change_amount(
                principal(request), withdrawal_id, value, data.get("reason", ""), actor_of(request)
            )
        except FormErrors as exc:
            return await _screen(request, withdrawal_id, errors=exc.errors, values=data, status_code=422)
        return await _screen(request, withdrawal_id, done="Amount changed.")

    @post("/withdrawals/{withdrawal_id:int}/paid")
    async def confirm_paid(self, request: Request, withdrawal_id: int) -> Response:
        data = await form_data(request)
        try:
            await payouts.confirm_payout(
                principal(request), withdrawal_id, data.get("bank_reference", ""), actor_of(request)
            )
        except FormErrors as exc:
            return await _screen(request, withdrawal_id, errors=exc.errors, values=data, status_code=422)
        return await _screen(request, withdrawal_id, done="Marked as paid.")

    @post("/withdrawals/{withdrawal_id:int}/retry")
    async def retry(self, request: Request, withdrawal_id: int) -> Response:
        """Ask the provider again about a payout in progress (never a second payout: same key)."""
        await withdrawals.get_withdrawal_for(principal(request), withdrawal_id)
        status = await payouts.pay_out(withdrawal_id, actor_of(request))
        return await _screen(request, withdrawal_id, done=f"Payout status: {status}.")

    @get("/policy")
    async def policy_form(self, request: Request) -> Template:
        current = await policy.get_policy()
        return _policy_page(request, values=policy.form_values(current), current=current)

    @post("/policy")
    async def policy_save(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            await policy.update_policy(principal(request), data, actor_of(request))
        except FormErrors as exc:
            current = await policy.get_policy()
            return _policy_page(request, values=data, current=current, errors=exc.errors, status_code=422)
        return redirect(request, "/staff/funding/policy?saved=1")


def _policy_page(request: Request, *, status_code: int = 200, **context: Any) -> Template:
    ctx = {"errors": {}, "saved": request.query_params.get("saved") == "1", **context}
    return render(
        request, "funding/finance_policy.html", ctx, partial="funding/_finance_policy_form.html",
        status_code=status_code,
    )  # fmt: skip


PORTAL: tuple[Any, ...] = ()
STAFF: tuple[Any, ...] = (FinanceQueue,)  # under /staff, finance only
API: tuple[Any, ...] = ()
