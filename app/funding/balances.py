"""The ledger's read side: cached and derived balances, a client's wallets, account statements.

Reads take no locks. The cached balance is what the ledger maintains under row locks; the
derived balance is recomputed from postings (what reconciliation compares, one account at a time
here, all accounts at once in `app.funding.reconcile`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from app.core import db
from app.core.errors import NotFound


@dataclass(frozen=True)
class WalletBalance:
    """One wallet as the client sees it: `available` is the wallet account's own balance, `held`
    its hold account's (pending withdrawals), `balance` their sum."""

    wallet_id: int
    currency: str
    balance: Decimal
    held: Decimal
    available: Decimal


@dataclass(frozen=True)
class StatementLine:
    posting_id: int
    transaction_id: int
    kind: str
    reference: str
    memo: str
    amount: Decimal  # on the account's normal side: positive = the balance went up
    balance_after: Decimal
    created_at: datetime


async def balance_of(account_id: int) -> Decimal:
    """The cached balance, on the account's normal side."""
    row = await db.fetchrow("SELECT balance FROM funding_ledger_accounts WHERE id = $1", account_id)
    if row is None:
        raise NotFound("ledger account")
    return Decimal(row["balance"])


async def derived_balance(account_id: int) -> Decimal:
    """The balance recomputed from the account's postings, on its normal side."""
    row = await db.fetchrow(
        "SELECT coalesce(sum(p.amount), 0) * CASE a.normal_side WHEN 'debit' THEN 1 ELSE -1 END AS derived "
        "FROM funding_ledger_accounts a LEFT JOIN funding_postings p ON p.account_id = a.id "
        "WHERE a.id = $1 GROUP BY a.id, a.normal_side",
        account_id,
    )
    if row is None:
        raise NotFound("ledger account")
    return Decimal(row["derived"])


_WALLETS_SQL = (
    "SELECT w.id AS wallet_id, w.currency, w.balance AS available, h.balance AS held "
    "FROM funding_ledger_accounts w JOIN funding_ledger_accounts h ON h.parent_id = w.id AND h.kind = 'client_hold' "
    "WHERE w.kind = 'client_wallet' AND w.client_id = $1 ORDER BY w.currency"
)


async def wallet_balances(client_id: int) -> list[WalletBalance]:
    rows = await _fetch(_WALLETS_SQL, client_id)
    return [
        WalletBalance(
            wallet_id=r["wallet_id"],
            currency=r["currency"],
            balance=r["available"] + r["held"],
            held=r["held"],
            available=r["available"],
        )
        for r in rows
    ]


async def wallet_balance(wallet_id: int) -> WalletBalance:
    rows = await _fetch(_WALLETS_SQL.replace("w.client_id = $1", "w.id = $1"), wallet_id)
    if not rows:
        raise NotFound("wallet")
    r = rows[0]
    return WalletBalance(r["wallet_id"], r["currency"], r["available"] + r["held"], r["held"], r["available"])


async def statement(
    account_id: int, *, before_posting_id: int | None = None, limit: int = 50
) -> list[StatementLine]:
    """The account's postings, newest first, a page at a time (keyset on the posting id)."""
    rows = await _fetch(
        "SELECT p.id AS posting_id, p.transaction_id, t.kind, t.reference, t.memo, "
        "p.amount * CASE a.normal_side WHEN 'debit' THEN 1 ELSE -1 END AS amount, p.balance_after, t.created_at "
        "FROM funding_postings p JOIN funding_transactions t ON t.id = p.transaction_id "
        "JOIN funding_ledger_accounts a ON a.id = p.account_id "
        "WHERE p.account_id = $1 AND p.id < $2 ORDER BY p.id DESC LIMIT $3",
        account_id,
        before_posting_id or 2**63 - 1,
        max(1, min(limit, 500)),
    )
    return [StatementLine(**r) for r in rows]


async def _fetch(sql: str, *args: object) -> list[dict]:
    """`$n` SQL on the current transaction's connection, or a pooled one."""
    tx = db.DB.current_transaction.get()
    if tx is not None:
        return [dict(r) for r in await tx.connection.fetch(sql, *args)]
    assert db.DB.pool is not None, "database pool not started"
    async with db.DB.pool.acquire() as conn:
        return [dict(r) for r in await conn.fetch(sql, *args)]
