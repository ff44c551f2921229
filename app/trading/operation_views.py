"""The staff side of balance operations: the form dealing and finance use to post a credit, bonus,
correction or charge on a client's trading account, and the account's operations with their
state. Deposits and withdrawals (type 2) are not offered here: they move the client's money and
go through funding and its ledger (issue 6), which calls `operations.balance_operation` itself.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from app.core import db
from app.core.audit import Actor
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.trading import operations, views
from app.trading.operation_rules import TYPE_LABELS, parse_amount, validate
from app.trading.operations import BalanceOperationResult
from app.trading.platform import BalanceType

STAFF_ROLES = ("dealing", "finance")  # and admin
STAFF_TYPES = frozenset({BalanceType.CREDIT, BalanceType.BONUS, BalanceType.CORRECTION, BalanceType.CHARGE})
REASON_MAX = 500
TEXT_MAX = 12  # what fits in the MT5 comment after "fx:<op_id> "
_FORM_ID = re.compile(r"[0-9a-f]{12}")
_STAFF_REF = re.compile(r"^staff:[0-9a-f]{12} ")


def parse_type(text: str) -> BalanceType | None:
    try:
        value = BalanceType(int(text))
    except (TypeError, ValueError):
        return None
    return value if value in STAFF_TYPES else None


def _require_staff(viewer: Principal) -> None:
    if not allowed(viewer, *STAFF_ROLES):
        raise PermissionError("Balance operations are for dealing and finance.")


async def operations_for_account(account_id: int, limit: int = 50) -> list[dict[str, Any]]:
    rows = await db.fetch(
        operations.OP_SQL + "WHERE o.account = {} ORDER BY o.id DESC LIMIT {}", account_id, limit
    )
    for row in rows:
        row["type_label"] = TYPE_LABELS.get(BalanceType(row["type"]), str(row["type"]))
        row["message"] = operations.describe(row)
        row["open"] = row["status"] in operations.OPEN
        row["amount_text"] = views.money(row["amount"], row["currency_digits"])
        row["reference_text"] = _STAFF_REF.sub("", row["reference"])  # the reason, without the form's id
    return rows


async def panel_for(
    viewer: Principal, account_id: int, *, shown_op: str = "", **extra: Any
) -> dict[str, Any]:
    """The form and the operations list for one account (404 to whoever may not see it).
    `shown_op`: the operation named in the page's address after a post without htmx."""
    _require_staff(viewer)
    account = await views.get_account_for(viewer, account_id)
    ops = await operations_for_account(account_id)
    shown = next((o for o in ops if o["op_id"] == shown_op), None) if shown_op else None
    if shown is not None and "notice" not in extra:
        extra["notice"], extra["notice_kind"] = flash_for(operations.result_of(shown))
    return {
        "account": account,
        "operations": ops,
        "any_open": any(o["open"] for o in ops),
        "type_options": [("", "Choose…")] + [(str(int(t)), TYPE_LABELS[t]) for t in sorted(STAFF_TYPES)],
        "errors": {},
        "values": {},
        "form_id": secrets.token_hex(6),
        "notice": "",
        "notice_kind": "info",
        "reason_max": REASON_MAX,
        "text_max": TEXT_MAX,
        **extra,
    }


async def post_operation(
    viewer: Principal, actor: Actor, account_id: int, data: dict[str, str]
) -> BalanceOperationResult:
    """The staff form: parse, then the one service funding uses too. FormErrors keep the input."""
    _require_staff(viewer)
    account = await views.get_account_for(viewer, account_id)
    errors: dict[str, str] = {}
    type = parse_type(data.get("type", ""))
    if type is None:
        errors["type"] = "Choose credit, bonus, correction or charge."
    try:
        amount = parse_amount(data.get("amount", ""))
    except FormErrors as exc:
        errors.update(exc.errors)
    else:  # the service checks it again; here so that every field's problem shows at once
        errors.update({k: v for k, v in validate(account, type, amount, "-").items() if k == "amount"})
    reason = " ".join(data.get("reason", "").split())
    if not reason:
        errors["reason"] = "Give the reason: it is kept in the audit trail."
    elif len(reason) > REASON_MAX:
        errors["reason"] = f"Keep the reason under {REASON_MAX} characters."
    text = data.get("comment", "").strip()
    if len(text) > TEXT_MAX:
        errors["comment"] = f"The comment shown on MT5 is at most {TEXT_MAX} characters."
    if errors:
        raise FormErrors(errors)
    assert type is not None
    # The form's id makes a double submit (or a browser's re-post) return the first operation.
    form_id = data.get("form_id", "")
    if not _FORM_ID.fullmatch(form_id):
        form_id = secrets.token_hex(6)
    try:
        return await operations.balance_operation(
            actor,
            account_id,
            type,
            amount,
            reference=f"staff:{form_id} {reason}"[:64],
            comment=text or type.name.lower(),
            note=reason,
            allowed_types=STAFF_TYPES,
        )
    except FormErrors as exc:  # the service's keys: amount, type, account, reference
        raise FormErrors(
            {("__all__" if k in ("account", "reference") else k): v for k, v in exc.errors.items()}
        ) from None


async def resolve(viewer: Principal, actor: Actor, account_id: int, op_id: str) -> BalanceOperationResult:
    """The "resolve now" button of an open operation: look on the server, then complete or send."""
    _require_staff(viewer)
    await views.get_account_for(viewer, account_id)
    result = await operations.get_result(op_id)
    if result.account_id != account_id:
        raise NotFound("balance operation")
    return await operations.resolve_operation(op_id, actor)


def flash_for(result: BalanceOperationResult) -> tuple[str, str]:
    label = TYPE_LABELS[result.type].lower()
    if result.done:
        return f"The {label} of {result.amount} {result.currency} is done: deal #{result.ticket}.", "success"
    if result.status == "failed":
        return f"The trading server refused the {label}: {result.message}", "error"
    return f"The {label} of {result.amount} {result.currency} is not confirmed yet. {result.message}", "info"
