"""Money received that nobody has claimed yet, in the ledger: the `suspense` account per currency.

A bank statement line nothing matched, or a confirmed chain payment to an address nobody has, is
money the broker holds: the provider's clearing account owes it to us (Dr provider clearing) and
we owe it to someone we do not know yet (Cr suspense), posted as a `deposit` with a key derived
from the item. When finance ties the item to a client (match, assign) or sets it aside (ignore,
resolve: sent back, not a client payment), the booking is unwound with an `adjustment` (Dr suspense /
Cr the same clearing account, for exactly what was booked) in the transaction of that decision,
and the client's deposit is then booked as usual. Not a `reversal`: the first booking was right,
the money has only been identified since.

So the suspense account per currency equals the open items at all times (plus what other books
hold there: MT5 corrections and bonuses, `trading_books`); `reconcile_suspense` checks it.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Any

from app.core import db
from app.core.audit import Actor
from app.funding import ledger
from app.funding.amounts import MINOR_UNITS

BOOK_KIND = "deposit"
UNWIND_KIND = "adjustment"


def wire_keys(line_id: int) -> tuple[str, str]:
    """(booking, unwind) idempotency keys of a statement line."""
    return f"wire-line-suspense:{line_id}", f"wire-line-unsuspense:{line_id}"


def chain_keys(chain_tx_id: int) -> tuple[str, str]:
    """(booking, unwind) idempotency keys of a chain transaction (its row id: a tx hash may be 200
    characters, longer than a key may be)."""
    return f"chain-suspense:{chain_tx_id}", f"chain-unsuspense:{chain_tx_id}"


def bookable(amount: Decimal, currency: str) -> Decimal:
    """What the ledger can hold of `amount`: cut to the currency's minor units (a chain may report
    more decimals than the ledger keeps; the dust stays out of the books). Zero for a currency the
    ledger does not know: it cannot be booked at all."""
    digits = MINOR_UNITS.get(currency)
    if digits is None:
        return Decimal(0)
    return Decimal(amount).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_DOWN)


async def is_booked(key: str) -> bool:
    row = await db.fetchrow("SELECT 1 FROM funding_transactions WHERE idempotency_key = $1", key)
    return row is not None


async def book(
    actor: Actor,
    key: str,
    *,
    provider: str,
    amount: Decimal,
    currency: str,
    reference: str,
    memo: str,
    audit: bool,
    accounts: dict[tuple[str, str], tuple[int, int]] | None = None,
) -> ledger.Posted | None:
    """Dr provider clearing / Cr suspense for an unclaimed receipt, once per `key`; None when there
    is nothing the ledger can hold (see `bookable`). `accounts`: a cache of the two account ids per
    (provider, currency) for callers booking many items."""
    value = bookable(amount, currency)
    if value <= 0:
        return None
    cache = {} if accounts is None else accounts
    if (provider, currency) not in cache:
        cache[(provider, currency)] = (
            await ledger.system_account("provider_clearing", currency, provider),
            await ledger.system_account("suspense", currency),
        )
    clearing, suspense = cache[(provider, currency)]
    return await ledger.transfer(
        actor,
        BOOK_KIND,
        debit=clearing,
        credit=suspense,
        amount=value,
        idempotency_key=key,
        reference=reference,
        memo=memo,
        audit=audit,
    )


async def unwind(
    actor: Actor, booked_key: str, key: str, *, reference: str, memo: str, audit: bool
) -> ledger.Posted | None:
    """Take a booked item out of suspense (Dr suspense / Cr the clearing account it was booked
    against, for what was booked), once; None when it was never booked (below the confirmations,
    or from before suspense was booked)."""
    booking = await _booking(booked_key)
    if booking is None:
        return None
    return await ledger.transfer(
        actor,
        UNWIND_KIND,
        debit=booking["suspense"],
        credit=booking["counter"],
        amount=booking["amount"],
        idempotency_key=key,
        reference=reference,
        memo=memo,
        audit=audit,
    )


async def _booking(key: str) -> dict[str, Any] | None:
    rows = await db.fetch(
        "SELECT p.account_id, p.amount, a.kind FROM funding_transactions t "
        "JOIN funding_postings p ON p.transaction_id = t.id JOIN funding_ledger_accounts a ON a.id = p.account_id "
        "WHERE t.idempotency_key = {} ORDER BY p.id",
        key,
    )
    suspense = next((r for r in rows if r["kind"] == "suspense"), None)
    counter = next((r for r in rows if r["kind"] != "suspense"), None)
    if suspense is None or counter is None:
        return None
    return {
        "suspense": suspense["account_id"],
        "counter": counter["account_id"],
        "amount": -suspense["amount"],
    }
