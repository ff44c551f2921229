"""Finance's decisions on a withdrawal: approve (dual control), reject with a reason, change the
amount before any approval.

Dual control, enforced twice: here in Python (with the withdrawal's row locked, so two officers
approving at once queue and the second sees the first) and in the database (unique indexes on
`funding_withdrawal_approvals` (withdrawal, step) and (withdrawal, officer)). The approver is never
the requester (a staff member with the client's own e-mail counts as the client) nor the staff
member who created the request on the client's behalf; above the policy threshold a second,
different officer approves step 2 after step 1.

Changing the amount (down only, above zero, before any approval): the difference goes back to the
client at once — the old hold is released and the new amount held again, in one transaction
(keys `withdrawal:<id>:rehold:<n>`), so the wallet never shows money held that will not be paid.
`approvals_required` stays what it was at request: a smaller amount never needs more approvers,
and keeping two is the cautious side.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from app.core import audit, db, jobs, mail
from app.core.audit import Actor
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.errors import FormErrors
from app.funding import holds
from app.funding.amounts import check_amount, format_amount
from app.funding.withdrawals import approvals_of, get_withdrawal, notify, view

PAYOUT_JOB = "pay_out_withdrawal"


def require_finance(p: Principal) -> None:
    if not allowed(p, "finance"):
        raise PermissionError("Only finance decides on withdrawals.")


async def approver_refusal(p: Principal, w: dict[str, Any], done: list[dict[str, Any]]) -> str:
    """Why `p` may not approve `w` now ("" if they may)."""
    if w["status"] != "requested":
        return f"This withdrawal is {w['status_label']}: there is nothing to approve."
    if w["requester_kind"] == "staff" and w["requester_id"] == p.id:
        return "You created this withdrawal: another finance officer must approve it."
    if p.email.strip().lower() == str(w["client_email"]).strip().lower():
        return "This is your own withdrawal: another finance officer must approve it."
    if any(a["staff_user_id"] == p.id for a in done):
        return "You already approved this withdrawal: the second approval must come from a different officer."
    return ""


async def approve(p: Principal, withdrawal_id: int, actor: Actor) -> dict[str, Any]:
    """Record `p`'s approval as the next step; the last one makes it `approved` and queues the payout."""
    require_finance(p)
    async with db.transaction():
        w = await get_withdrawal(withdrawal_id, lock=True)
        done = await approvals_of(withdrawal_id)
        refusal = await approver_refusal(p, w, done)
        if refusal:
            raise FormErrors({"__all__": refusal})
        step = len(done) + 1
        try:
            await db.fetchrow(
                "INSERT INTO funding_withdrawal_approvals (withdrawal_id, step, staff_user_id, staff_label, created_at) "
                "VALUES ($1, $2, $3, $4, now())",
                withdrawal_id,
                step,
                p.id,
                (p.name or p.email)[:320],
            )
        except asyncpg.UniqueViolationError as exc:  # the indexes say what the lock already should have
            raise FormErrors({"__all__": "This approval step was already given."}) from exc
        final = step >= w["approvals_required"]
        if final:
            await db.fetchrow(
                "UPDATE funding_withdrawals SET status = 'approved', decided_at = now(), updated_at = now() "
                "WHERE id = $1",
                withdrawal_id,
            )
            jobs.enqueue_after_commit(PAYOUT_JOB, key=f"payout:{withdrawal_id}", withdrawal_id=withdrawal_id)
            await _email(w, "withdrawal_approved")
        after = await get_withdrawal(withdrawal_id)
        await audit.record(
            actor, "funding.withdrawal.approved" if final else "funding.withdrawal.approval_step",
            "funding_withdrawal", withdrawal_id,
            before=view(w), after={**view(after), "step": step, "of": w["approvals_required"]},
        )  # fmt: skip
        await notify(w["client_id"], withdrawal_id)
    return after


async def reject(p: Principal, withdrawal_id: int, reason: str, actor: Actor) -> dict[str, Any]:
    """Refuse with a reason the client reads; the held funds go back to the wallet."""
    require_finance(p)
    reason = (reason or "").strip()
    if not reason:
        raise FormErrors({"reason": "Say why: the client reads the reason."})
    if len(reason) > 1000:
        raise FormErrors({"reason": "At most 1,000 characters."})
    async with db.transaction():
        w = await get_withdrawal(withdrawal_id, lock=True)
        if w["status"] not in ("requested", "approved", "failed") or (
            w["status"] == "failed" and not w["hold_id"]
        ):
            raise FormErrors(
                {"__all__": f"This withdrawal is {w['status_label']}: it can no longer be rejected."}
            )
        if w["hold_id"] is not None:
            current = await holds.get_hold(w["hold_id"])
            if current.status == "held":
                await holds.release(
                    actor, w["hold_id"], f"withdrawal:{withdrawal_id}:release", reason=reason[:200]
                )
        await db.fetchrow(
            "UPDATE funding_withdrawals SET status = 'rejected', rejection_reason = $2, decided_at = now(), "
            "updated_at = now() WHERE id = $1",
            withdrawal_id,
            reason,
        )
        await _email(w, "withdrawal_rejected", reason=reason)
        after = await get_withdrawal(withdrawal_id)
        await audit.record(
            actor, "funding.withdrawal.rejected", "funding_withdrawal", withdrawal_id,
            before=view(w), after=view(after),
        )  # fmt: skip
        await notify(w["client_id"], withdrawal_id, wallet=True)
    return after


async def change_amount(
    p: Principal, withdrawal_id: int, new_amount: Any, reason: str, actor: Actor
) -> dict[str, Any]:
    """Lower the amount before anyone approved (see the module's docstring), logged before/after."""
    require_finance(p)
    reason = (reason or "").strip()
    if not reason:
        raise FormErrors({"reason": "Say why the amount changes."})
    async with db.transaction():
        w = await get_withdrawal(withdrawal_id, lock=True)
        if w["status"] != "requested" or await approvals_of(withdrawal_id):
            raise FormErrors({"amount": "The amount can only be changed before any approval."})
        value = check_amount(new_amount, w["currency"])
        if value >= w["amount"]:
            raise FormErrors(
                {
                    "amount": f"The amount can only be lowered (below {format_amount(w['amount'], w['currency'])})."
                }
            )
        n = await db.fetchrow(
            "SELECT count(*) AS n FROM funding_holds WHERE reference = $1", f"withdrawal:{withdrawal_id}"
        )
        assert n is not None and w["hold_id"] is not None
        generation = int(n["n"]) + 1
        base = f"withdrawal:{withdrawal_id}:rehold:{generation}"
        old = await holds.release(
            actor, w["hold_id"], base + ":release", reason=f"amount changed: {reason}"[:200]
        )
        held = await holds.hold(actor, old.wallet_id, value, base, reference=f"withdrawal:{withdrawal_id}")
        await db.fetchrow(
            "UPDATE funding_withdrawals SET amount = $2, hold_id = $3, updated_at = now() WHERE id = $1",
            withdrawal_id,
            value,
            held.id,
        )
        after = await get_withdrawal(withdrawal_id)
        await audit.record(
            actor, "funding.withdrawal.amount_changed", "funding_withdrawal", withdrawal_id,
            before={"amount": str(w["amount"]), "hold_id": w["hold_id"]},
            after={"amount": str(value), "hold_id": held.id, "reason": reason},
        )  # fmt: skip
        await notify(w["client_id"], withdrawal_id, wallet=True)
    return after


async def _email(w: dict[str, Any], template: str, **extra: Any) -> None:
    await mail.queue_email(
        w["client_email"],
        template,
        {
            "first_name": w["first_name"],
            "withdrawal_id": w["id"],
            "amount": format_amount(w["amount"], w["currency"]),
            "destination": w["destination_label"],
            **extra,
        },
        client_id=w["client_id"],
        language=w["language"],
    )
