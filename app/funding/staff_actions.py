"""Staff acting on a client's money from the console, where the client cannot or the provider did not.

**Withdraw on behalf** (finance and admin): the client asked by phone or e-mail. The staff member
fills in the client's withdrawal with a note of why and how the request was verified; it runs the
same pre-checks and hold as the client's own (`withdrawals.request_withdrawal`) and records the
staff member as its creator, so dual control never lets them approve it
(`approvals.approver_refusal`). Sales and dealing may not: money leaving is finance's decision
(domain: withdrawals are approved by finance), sales is paid on client money staying, and neither
desk sees the client's funding panel.

**Settle a stuck card or e-wallet deposit** (finance and admin): the provider confirmed or declined
out of band (its dashboard, a support ticket) and no webhook came. "Paid" credits the amount
actually received through `deposits.complete_deposit` (which books the ledger), "failed" goes
through `deposits.fail_deposit`. The deposit row is locked first and its state checked under the
lock, in the same transaction as the settlement and its audit record, so a webhook settling it at
the same moment waits behind this (or this behind it): exactly one outcome, booked once. A deposit
no longer open (or already paid, waiting for an exchange rate) cannot be settled by hand again.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.funding import deposits, finance_queue, history, withdrawals
from app.funding.amounts import LedgerError, check_amount, format_amount
from app.funding.withdrawal_checks import sources_for

ROLES = ("finance",)  # besides admin, for both actions
SETTLE_KINDS = ("card", "ewallet")
MAX_TEXT = 1000


def may_act(p: Principal) -> bool:
    return allowed(p, *ROLES)


def _require(p: Principal) -> None:
    if not may_act(p):
        raise PermissionError("Only finance acts on a client's money.")


def _text(data: Mapping[str, str], name: str, missing: str, errors: dict[str, str]) -> str:
    value = (data.get(name) or "").strip()
    if not value:
        errors[name] = missing
    elif len(value) > MAX_TEXT:
        errors[name] = f"At most {MAX_TEXT:,} characters."
    return value


# --- the client page's slot -------------------------------------------------------------------


async def panel_actions(p: Principal, client_id: int) -> dict[str, Any]:
    """What this staff member may do with the client's money from the funding panel (nothing for
    compliance and dealing); 404 to staff who may not see the client's money at all."""
    client = await history.staff_client_for(p, client_id)
    stuck: list[dict[str, Any]] = []
    if may_act(p):
        stuck = await db.fetch(
            "SELECT id, reference, amount, currency, status, kind, created_at FROM funding_deposits "
            "WHERE client_id = {} AND status = ANY({}) AND kind = ANY({}) AND paid_at IS NULL ORDER BY id",
            client_id,
            list(deposits.OPEN),
            list(SETTLE_KINDS),
        )
        for d in stuck:
            d["amount_text"] = format_amount(d["amount"], d["currency"])
    return {"client": client, "may_act": may_act(p), "stuck_deposits": stuck}


# --- withdraw on behalf -----------------------------------------------------------------------


async def _client_for(p: Principal, client_id: int) -> dict[str, Any]:
    _require(p)
    return await history.staff_client_for(p, client_id)


async def withdraw_form(
    p: Principal, client_id: int, values: Mapping[str, str], **extra: Any
) -> dict[str, Any]:
    """The client's withdrawal form (`withdrawals.form_context`), for staff who may act."""
    client = await _client_for(p, client_id)
    return {"client": client, **await withdrawals.form_context(client_id, values), **extra}


async def withdraw_on_behalf(
    p: Principal, client_id: int, data: Mapping[str, str], actor: Actor
) -> dict[str, Any]:
    """Create the client's withdrawal as `p` (its creator, who may then never approve it), with the
    note kept in the audit record. FormErrors (WithdrawalRefused for the pre-checks) if not."""
    await _client_for(p, client_id)
    errors: dict[str, str] = {}
    note = _text(
        data, "note",
        "Say why you create it and how the client's request was verified (e.g. “client phoned, verified "
        "by call-back”).",
        errors,
    )  # fmt: skip
    source = next((s for s in await sources_for(client_id) if s["value"] == data.get("source")), None)
    if source is None:
        errors["source"] = "Choose the wallet or trading account to withdraw from."
    if errors:
        raise FormErrors(errors)
    assert source is not None
    kind, _, ident = source["value"].partition(":")
    return await withdrawals.request_withdrawal(
        actor, p, client_id=client_id, source=kind, amount=data.get("amount", ""), currency=source["currency"],
        destination=data.get("destination", ""), trading_account_id=int(ident) if kind == "account" else None,
        idempotency_key=data.get("idempotency_key", ""),
        audit_extra={"on_behalf": {"staff": p.name or p.email, "staff_id": p.id, "note": note}},
    )  # fmt: skip


# --- settling a stuck deposit by hand ---------------------------------------------------------


async def deposit_screen(p: Principal, deposit_id: int) -> dict[str, Any]:
    """The deposit as finance sees it, with the client panel and whether it may be settled here."""
    _require(p)
    row = await deposits.get_deposit_for(p, deposit_id)
    method = None
    if row["method_id"] is not None:
        method = await db.fetchrow("SELECT name FROM funding_payment_methods WHERE id = $1", row["method_id"])
    credited = row["credited_amount"]
    return {
        "d": row,
        "amount_text": format_amount(row["amount"], row["currency"]),
        "requested_text": format_amount(row["requested_amount"], row["currency"])
        if row["requested_amount"]
        else "",
        "credited_text": "" if credited is None else format_amount(credited, row["credit_currency"]),
        "method_name": method["name"] if method else row["kind"],
        "refusal": _settle_refusal(row),
        "panel": await finance_queue.client_panel(row["client_id"]),
    }


def _settle_refusal(row: Mapping[str, Any]) -> str:
    """Why this deposit may not be settled by hand ("" if it may)."""
    if row["status"] == "completed":
        return "This deposit is already completed and credited: it cannot be settled again."
    if row["status"] not in deposits.OPEN:
        return f"This deposit is already {row['status']}: it cannot be settled again."
    if row["kind"] not in SETTLE_KINDS:
        return (
            "Only card and e-wallet deposits are settled here: a wire is matched to its bank statement line, "
            "crypto to its chain transaction."
        )
    if row["paid_at"] is not None:
        return f"The provider's payment is already recorded; it is credited automatically ({row['failure_reason']})."
    return ""


async def _lock_open(deposit_id: int) -> dict[str, Any]:
    row = await db.fetchrow("SELECT * FROM funding_deposits WHERE id = $1 FOR UPDATE", deposit_id)
    if row is None:
        raise NotFound("deposit")
    refusal = _settle_refusal(row)
    if refusal:
        raise FormErrors({"__all__": refusal})
    return row


async def mark_paid(p: Principal, deposit_id: int, data: Mapping[str, str], actor: Actor) -> dict[str, Any]:
    """Credit a stuck deposit the provider confirmed out of band, for the amount actually received."""
    _require(p)
    current = await deposits.get_deposit_for(p, deposit_id)
    errors: dict[str, str] = {}
    ref = _text(data, "payment_reference", "Enter the provider's payment reference (its payment id).", errors)
    reason = _text(data, "reason", "Say how the provider confirmed the payment.", errors)
    if len(ref) > 200:
        errors["payment_reference"] = "At most 200 characters."
    amount: Decimal | None = None
    try:
        amount = check_amount(deposits.parse_amount(data.get("amount", "")), current["currency"])
    except LedgerError as exc:
        errors["amount"] = exc.message
    if errors:
        raise FormErrors(errors)
    assert amount is not None
    async with db.transaction():
        row = await _lock_open(deposit_id)
        if row["provider_payment_id"] and row["provider_payment_id"] != ref:
            raise FormErrors(
                {
                    "payment_reference": f"This deposit is linked to the provider's payment {row['provider_payment_id']}."
                }
            )
        other = await deposits.find_deposit(row["provider"], provider_payment_id=ref)
        if other is not None and other["id"] != deposit_id:
            raise FormErrors(
                {"payment_reference": f"This payment belongs to deposit {other['reference']}, not this one."}
            )
        new = await deposits.complete_deposit(
            actor, deposit_id, amount=amount, currency=row["currency"], provider_payment_id=ref
        )
        await _record(
            actor, p, row, new, "paid", reason, provider_payment_id=ref, amount_received=str(amount)
        )
    return new


async def mark_failed(p: Principal, deposit_id: int, data: Mapping[str, str], actor: Actor) -> dict[str, Any]:
    """Fail a stuck deposit the provider declined out of band; the client reads the reason."""
    _require(p)
    await deposits.get_deposit_for(p, deposit_id)
    errors: dict[str, str] = {}
    reason = _text(data, "failure_reason", "Say why it failed: the client reads the reason.", errors)
    if errors:
        raise FormErrors(errors)
    async with db.transaction():
        row = await _lock_open(deposit_id)
        new = await deposits.fail_deposit(actor, deposit_id, reason)
        await _record(actor, p, row, new, "failed", reason)
    return new


async def _record(
    actor: Actor, p: Principal, before: Mapping[str, Any], after: Mapping[str, Any], outcome: str, reason: str,
    **facts: str,
) -> None:  # fmt: skip
    await audit.record(
        actor, "funding.deposit.settled_by_hand", "funding_deposit", before["id"],
        before={"status": before["status"]},
        after={"outcome": outcome, "status": after["status"], "reason": reason, "staff": p.name or p.email, **facts},
    )  # fmt: skip
