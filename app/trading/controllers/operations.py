"""Accounts › one account › Balance: dealing, finance and administrators post a credit, bonus,
correction or charge with a reason, and see the account's operations (a stuck one can be resolved
at once instead of waiting for the minute sweep). Deposits and withdrawals belong to funding."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, is_fragment_request, principal, redirect, render
from app.staff.navigation import section_guard
from app.trading import operation_views, operations

PAGE = "trading/staff_balance.html"
PARTIAL = "trading/_staff_balance_form.html"


async def _panel(request: Request, account_id: int, *, status_code: int = 200, **extra: Any) -> Template:
    context = await operation_views.panel_for(principal(request), account_id, **extra)
    return render(request, PAGE, context, partial=PARTIAL, status_code=status_code)


def _flash(result: operations.BalanceOperationResult) -> dict[str, Any]:
    text, kind = operation_views.flash_for(result)
    return {"notice": text, "notice_kind": kind}


class AccountBalance(Controller):
    path = "/accounts"
    guards = [section_guard("accounts")]

    @get("/{account_id:int}/balance")
    async def page(self, request: Request, account_id: int) -> Template:
        return await _panel(request, account_id, shown_op=request.query_params.get("op", ""))

    @post("/{account_id:int}/balance")
    async def submit(self, request: Request, account_id: int) -> Response:
        data = await form_data(request)
        try:
            result = await operation_views.post_operation(
                principal(request), actor_of(request), account_id, data
            )
        except FormErrors as exc:
            return await _panel(request, account_id, status_code=422, errors=exc.errors, values=data)
        if is_fragment_request(request):
            return await _panel(request, account_id, **_flash(result))
        return redirect(request, f"/staff/accounts/{account_id}/balance?op={result.op_id}")

    @post("/{account_id:int}/balance/{op_id:str}/resolve")
    async def resolve(self, request: Request, account_id: int, op_id: str) -> Response:
        result = await operation_views.resolve(principal(request), actor_of(request), account_id, op_id)
        if is_fragment_request(request):
            return await _panel(request, account_id, **_flash(result))
        return redirect(request, f"/staff/accounts/{account_id}/balance?op={result.op_id}")
