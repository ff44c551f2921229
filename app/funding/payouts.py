"""Paying an approved withdrawal out through its provider, never twice.

1. Claim: `approved → paying` with a conditional UPDATE (only with the required number of
   distinct approvers on record), committed *before* the provider is called. Only one caller
   wins the claim; a crash after it leaves a row that says "may have been sent".
2. Call `payout(PayoutRequest(idempotency_key="withdrawal:<id>"))`: the provider dedups on the
   key, so asking again (the sweep, a retry) returns the first payout instead of a second one.
3. The answer: `paid` → the hold is captured to the provider's clearing account (key
   `withdrawal:<id>:capture`) and the withdrawal is `paid`; a definite refusal (or `failed`) →
   `failed`, and the hold is released so the client has the money back in the wallet (finance
   sees the reason; the client may ask again with another destination); `pending`, a timeout or
   an unreachable provider → stays `paying`, and `sweep` asks `get_payout(key)` later (a payout
   the provider never received is sent again under the same key).

A wire payout stays `pending` at the provider until finance confirms the bank paid it
(`confirm_payout`).
"""

from __future__ import annotations

import logging
from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.errors import FormErrors
from app.funding import holds, ledger, providers
from app.funding.approvals import require_finance
from app.funding.providers import PayoutRequest, PayoutResult, ProviderError
from app.funding.withdrawals import get_withdrawal, notify, view

log = logging.getLogger(__name__)
SYSTEM = Actor.system("payouts")


def payout_key(withdrawal_id: int) -> str:
    return f"withdrawal:{withdrawal_id}"


_CLAIM_SQL = (
    "UPDATE funding_withdrawals w SET status = 'paying', payout_attempts = payout_attempts + 1, updated_at = now() "
    "WHERE w.id = $1 AND w.status = 'approved' AND (SELECT count(DISTINCT a.staff_user_id) FROM "
    "funding_withdrawal_approvals a WHERE a.withdrawal_id = w.id) >= w.approvals_required RETURNING w.id"
)


async def pay_out(withdrawal_id: int, actor: Actor = SYSTEM) -> str:
    """Bring an approved (or paying) withdrawal as far as it safely goes now; returns its status."""
    async with db.transaction():
        claimed = await db.fetchrow(_CLAIM_SQL, withdrawal_id)
        if claimed is not None:
            w = await get_withdrawal(withdrawal_id)
            await audit.record(
                actor, "funding.withdrawal.paying", "funding_withdrawal", withdrawal_id,
                after={**view(w), "attempt": w["payout_attempts"]},
            )  # fmt: skip
            await notify(w["client_id"], withdrawal_id)
    w = await get_withdrawal(withdrawal_id)
    if w["status"] != "paying":
        return str(w["status"])
    if claimed is None:  # someone claimed it before: find out what happened, never send blindly
        return await resolve(withdrawal_id, actor)
    return await _send(w, actor)


async def _send(w: dict[str, Any], actor: Actor) -> str:
    request = PayoutRequest(
        idempotency_key=payout_key(w["id"]),
        amount=w["amount"],
        currency=w["currency"],
        destination=dict(w["destination"]),
        reference=payout_key(w["id"]),
    )
    try:
        result = await providers.get(w["provider"]).payout(request)
    except ProviderError as exc:
        if exc.definite:
            return await settle(w["id"], "failed", actor, reason=exc.message)
        await _note(w["id"], exc.message)
        return "paying"
    except Exception as exc:  # noqa: BLE001 (a timeout or dropped answer: the outcome is unknown)
        log.warning("payout of withdrawal %s: %r", w["id"], exc)
        await _note(w["id"], f"No answer from the provider ({type(exc).__name__}); it will be looked up.")
        return "paying"
    return await _apply(w["id"], result, actor)


async def _apply(withdrawal_id: int, result: PayoutResult, actor: Actor) -> str:
    if result.status == "paid":
        return await settle(withdrawal_id, "paid", actor, payout_id=result.payout_id)
    if result.status == "failed":
        return await settle(
            withdrawal_id, "failed", actor, reason=result.failure_reason or "refused by the provider"
        )
    await db.fetchrow(
        "UPDATE funding_withdrawals SET payout_reference = $2, updated_at = now() WHERE id = $1 AND status = 'paying'",
        withdrawal_id,
        result.payout_id[:200],
    )
    return "paying"


async def _note(withdrawal_id: int, message: str) -> None:
    await db.fetchrow(
        "UPDATE funding_withdrawals SET payout_error = $2, updated_at = now() WHERE id = $1 AND status = 'paying'",
        withdrawal_id,
        message[:2000],
    )


async def resolve(withdrawal_id: int, actor: Actor = SYSTEM) -> str:
    """Ask the provider what became of a `paying` withdrawal; one it never received is sent again
    under the same idempotency key."""
    w = await get_withdrawal(withdrawal_id)
    if w["status"] != "paying":
        return str(w["status"])
    try:
        found = await providers.get(w["provider"]).get_payout(payout_key(withdrawal_id))
    except ProviderError as exc:
        await _note(withdrawal_id, exc.message)
        return "paying"
    except Exception as exc:  # noqa: BLE001
        await _note(withdrawal_id, f"Could not look the payout up ({type(exc).__name__}).")
        return "paying"
    if found is None:
        return await _send(w, actor)
    return await _apply(withdrawal_id, found, actor)


async def settle(
    withdrawal_id: int, outcome: str, actor: Actor, *, payout_id: str = "", reason: str = ""
) -> str:
    """`paid`: capture the hold to the provider's clearing account; `failed`: release it."""
    async with db.transaction():
        w = await get_withdrawal(withdrawal_id, lock=True)
        if w["status"] != "paying":
            return str(w["status"])
        if outcome == "paid":
            clearing = await ledger.system_account("provider_clearing", w["currency"], w["provider"])
            await holds.capture(
                actor, w["hold_id"], clearing, f"withdrawal:{withdrawal_id}:capture", amount=w["amount"],
                memo=f"payout {payout_id}"[:500],
            )  # fmt: skip
            await db.fetchrow(
                "UPDATE funding_withdrawals SET status = 'paid', paid_at = now(), payout_reference = $2, "
                "payout_error = '', updated_at = now() WHERE id = $1",
                withdrawal_id,
                (payout_id or w["payout_reference"])[:200],
            )
        else:
            await holds.release(
                actor, w["hold_id"], f"withdrawal:{withdrawal_id}:release", reason=reason[:200]
            )
            await db.fetchrow(
                "UPDATE funding_withdrawals SET status = 'failed', payout_error = $2, updated_at = now() WHERE id = $1",
                withdrawal_id,
                reason[:2000],
            )
        after = await get_withdrawal(withdrawal_id)
        await audit.record(
            actor, f"funding.withdrawal.{outcome}", "funding_withdrawal", withdrawal_id,
            before=view(w), after=view(after),
        )  # fmt: skip
        await notify(w["client_id"], withdrawal_id, wallet=outcome == "failed")
    return outcome


async def confirm_payout(p: Principal, withdrawal_id: int, bank_reference: str, actor: Actor) -> str:
    """Finance confirms a payout the provider cannot (a wire the bank sent): it becomes `paid`."""
    require_finance(p)
    bank_reference = (bank_reference or "").strip()
    if not bank_reference:
        raise FormErrors({"bank_reference": "Enter the bank's reference of the payment."})
    w = await get_withdrawal(withdrawal_id)
    if w["status"] != "paying":
        raise FormErrors({"__all__": "Only a withdrawal being paid out can be confirmed as paid."})
    return await settle(withdrawal_id, "paid", actor, payout_id=bank_reference)


async def sweep(older_than_seconds: float = 60, limit: int = 100) -> dict[str, int]:
    """Approved withdrawals whose job was lost, and payouts with an unknown outcome."""
    rows = await db.fetch(
        "SELECT id, status FROM funding_withdrawals WHERE status IN ('approved', 'paying') "
        "AND updated_at < now() - make_interval(secs => {}) ORDER BY id LIMIT {}",
        float(older_than_seconds),
        limit,
    )
    counts: dict[str, int] = {}
    for row in rows:
        try:
            outcome = await pay_out(int(row["id"]))
        except Exception:  # one bad row must not stop the others
            log.exception("payout sweep: withdrawal %s", row["id"])
            outcome = "error"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
