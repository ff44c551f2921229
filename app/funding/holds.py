"""Withdrawal holds: funds set aside when a withdrawal is requested, then released (rejected or
cancelled) or captured (paid out, or moved to a trading account), exactly once.

A hold is a ledger transaction from the wallet to its hold account (see `app.funding.ledger` for why
holds are postings, not a column), plus a `funding_holds` row that says which funds are held for
what. Settling locks that row first, so a release racing a capture settles once; a retry with the
settlement's own idempotency key gets the same answer back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.errors import NotFound
from app.funding.accounts import hold_account_of
from app.funding.amounts import AlreadySettled, IdempotencyConflict, LedgerError, format_amount
from app.funding.ledger import Posted, _positive, _post, _view

CAPTURE_KINDS = ("withdrawal", "transfer", "fee")


@dataclass(frozen=True)
class HoldInfo:
    id: int
    wallet_id: int
    amount: Decimal
    currency: str
    status: str  # held | released | captured
    hold_transaction_id: int
    settle_transaction_id: int | None
    reference: str
    created_at: datetime
    settled_at: datetime | None
    replayed: bool = False


_HOLD_SQL = (
    "SELECT id, wallet_id, amount, currency, status, hold_transaction_id, settle_transaction_id, reference, "
    "created_at, settled_at FROM funding_holds WHERE "
)


async def get_hold(hold_id: int) -> HoldInfo:
    row = await db.fetchrow(_HOLD_SQL + "id = $1", hold_id)
    if row is None:
        raise NotFound("hold")
    return HoldInfo(**row)


async def hold(
    actor: Actor,
    wallet_id: int,
    amount: Decimal,
    idempotency_key: str,
    *,
    reference: str = "",
    memo: str = "",
) -> HoldInfo:
    """Set `amount` aside from the wallet's available funds for a withdrawal (InsufficientFunds
    when it is not there). Retrying with the same key returns the same hold."""
    _positive(amount)
    held_in = await hold_account_of(wallet_id)
    async with db.transaction():
        tx = await _post(
            actor, "hold", [(wallet_id, amount), (held_in, -amount)], idempotency_key, reference, memo, False,
            holds_ok=True,
        )  # fmt: skip
        if tx.replayed:
            row = await db.fetchrow(_HOLD_SQL + "hold_transaction_id = $1", tx.id)
            assert row is not None
            return HoldInfo(**row, replayed=True)
        line = tx.lines[0]
        row = await db.fetchrow(
            "INSERT INTO funding_holds (wallet_id, amount, currency, status, hold_transaction_id, reference, "
            "created_at) VALUES ($1, $2, $3, 'held', $4, $5, now()) RETURNING id",
            wallet_id,
            line.amount,
            line.currency,
            tx.id,
            tx.reference,
        )
        assert row is not None
        info = await get_hold(row["id"])
        await audit.record(actor, "funding.hold.placed", "funding_hold", info.id, after=_hold_view(info, tx))
    return info


async def release(actor: Actor, hold_id: int, idempotency_key: str, *, reason: str = "") -> HoldInfo:
    """Give held funds back to the wallet (a rejected or cancelled withdrawal)."""
    async with db.transaction():
        current, held_in = await _lock_hold(hold_id, idempotency_key)
        tx = await _post(
            actor, "release", [(held_in, current.amount), (current.wallet_id, -current.amount)],
            idempotency_key, current.reference, reason, False, holds_ok=True,
        )  # fmt: skip
        return await _settle(actor, current, tx, "released")


async def capture(
    actor: Actor,
    hold_id: int,
    to_account_id: int,
    idempotency_key: str,
    *,
    amount: Decimal | None = None,
    kind: str = "withdrawal",
    memo: str = "",
) -> HoldInfo:
    """Pay held funds out to `to_account_id` (the provider's clearing account for a payout, a
    trading account for a transfer). A smaller `amount` pays that and releases the rest, in the
    same transaction."""
    if kind not in CAPTURE_KINDS:
        raise ValueError(f"capture kinds are {CAPTURE_KINDS}")
    async with db.transaction():
        current, held_in = await _lock_hold(hold_id, idempotency_key)
        paid = current.amount if amount is None else _positive(amount)
        if paid > current.amount:
            raise LedgerError(f"Between 0 and {format_amount(current.amount, current.currency)} can be paid.")
        postings: list[tuple[int, Decimal]] = [(held_in, current.amount), (to_account_id, -paid)]
        if paid != current.amount:
            postings.append((current.wallet_id, paid - current.amount))
        tx = await _post(
            actor, kind, postings, idempotency_key, current.reference, memo, False, holds_ok=True
        )
        return await _settle(actor, current, tx, "captured")


async def _lock_hold(hold_id: int, idempotency_key: str) -> tuple[HoldInfo, int]:
    """The hold, locked; an already settled one only passes for a retry of its own settlement."""
    row = await db.fetchrow(_HOLD_SQL + "id = $1 FOR UPDATE", hold_id)
    if row is None:
        raise NotFound("hold")
    current = HoldInfo(**row)
    if current.status != "held":
        prior = await db.fetchrow(
            "SELECT id FROM funding_transactions WHERE idempotency_key = $1", (idempotency_key or "").strip()
        )
        if prior is None or prior["id"] != current.settle_transaction_id:
            raise AlreadySettled(f"This hold was already {current.status}.", field="hold")
    return current, await hold_account_of(current.wallet_id)


async def _settle(actor: Actor, current: HoldInfo, tx: Posted, status: str) -> HoldInfo:
    if tx.replayed:
        if tx.id != current.settle_transaction_id:  # the key belongs to another movement of money
            raise IdempotencyConflict("This idempotency key was already used for a different transaction.")
        return replace(current, replayed=True)
    await db.fetchrow(
        "UPDATE funding_holds SET status = $2, settle_transaction_id = $3, settled_at = now() WHERE id = $1",
        current.id,
        status,
        tx.id,
    )
    info = await get_hold(current.id)
    await audit.record(actor, f"funding.hold.{status}", "funding_hold", info.id, after=_hold_view(info, tx))
    return info


def _hold_view(info: HoldInfo, tx: Posted) -> dict[str, Any]:
    return {
        "wallet_id": info.wallet_id,
        "amount": str(info.amount),
        "currency": info.currency,
        "status": info.status,
        "reference": info.reference,
        **_view(tx),
        "transaction_id": tx.id,
    }


async def open_holds(wallet_id: int) -> list[HoldInfo]:
    """The wallet's holds not yet settled, oldest first (what its hold account carries)."""
    rows = await db.fetch(_HOLD_SQL + "wallet_id = {} AND status = 'held' ORDER BY id", wallet_id)
    return [HoldInfo(**r) for r in rows]
