"""Reconciliation of the ledger's suspense accounts with the items that should be in them.

Per currency, what suspense holds (less what MT5 corrections and bonuses put there, which wait for
finance in the same account: `trading_books`) must equal the open items: statement lines still
unmatched, and chain payments still unassigned that reached the policy's confirmations (or were
booked when they had them: a re-org does not take money out of suspense). Chain amounts count at
the ledger's precision (`suspense.bookable`). A difference is listed, never fixed: an item left
unbooked, a decision that did not unwind, a posting to suspense from elsewhere all need a person.

Everything is read in one snapshot. The finance pages show the same figures (`summary`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from app.core.db import DB
from app.funding import suspense
from app.funding.amounts import MINOR_UNITS
from app.funding.reconcile import LIMIT, external_check

OTHER_BOOKS = ("mt5op:%",)  # idempotency keys of other books that hold money in suspense

_LEDGER_SQL = "SELECT currency, balance FROM funding_ledger_accounts WHERE kind = 'suspense'"
_OTHER_SQL = (
    "SELECT a.currency, -sum(p.amount) AS total FROM funding_postings p "
    "JOIN funding_ledger_accounts a ON a.id = p.account_id JOIN funding_transactions t ON t.id = p.transaction_id "
    "WHERE a.kind = 'suspense' AND t.idempotency_key LIKE ANY($1::text[]) GROUP BY a.currency"
)
_WIRE_SQL = (
    "SELECT l.currency, sum(l.amount) AS total, count(*) AS n, count(*) FILTER (WHERE NOT EXISTS ("
    "SELECT 1 FROM funding_transactions t WHERE t.idempotency_key = 'wire-line-suspense:' || l.id)) AS unbooked "
    "FROM funding_statement_lines l WHERE l.status = 'unmatched' GROUP BY l.currency"
)
_CHAIN_SQL = (
    "SELECT c.id, c.currency, c.amount, c.confirmations, EXISTS (SELECT 1 FROM funding_transactions t "
    "WHERE t.idempotency_key = 'chain-suspense:' || c.id) AS booked "
    "FROM funding_chain_transactions c WHERE c.status = 'unassigned'"
)
_NEEDED_SQL = "SELECT crypto_confirmations FROM funding_policy WHERE id = 1"


@dataclass
class Figures:
    """One currency: the ledger's suspense balance and the open items it should equal."""

    currency: str
    ledger: Decimal = Decimal(0)
    other: Decimal = Decimal(0)  # held by other books (MT5 corrections and bonuses)
    wire: Decimal = Decimal(0)
    wire_lines: int = 0
    wire_unbooked: int = 0
    chain: Decimal = Decimal(0)
    chain_items: int = 0
    chain_unbooked: list[int] = field(default_factory=list)

    @property
    def expected(self) -> Decimal:
        return self.wire + self.chain

    @property
    def found(self) -> Decimal:
        return self.ledger - self.other

    @property
    def differs(self) -> bool:
        return self.found != self.expected


async def summary() -> list[Figures]:
    """Every currency with a suspense account or an open item, in one snapshot."""
    assert DB.pool is not None, "database pool not started"
    async with DB.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        ledger_rows = await conn.fetch(_LEDGER_SQL)
        other_rows = await conn.fetch(_OTHER_SQL, list(OTHER_BOOKS))
        wire_rows = await conn.fetch(_WIRE_SQL)
        chain_rows = await conn.fetch(_CHAIN_SQL)
        needed_row = await conn.fetchrow(_NEEDED_SQL)
    needed = int(needed_row["crypto_confirmations"]) if needed_row else 3
    out: dict[str, Figures] = {}

    def of(currency: str) -> Figures:
        return out.setdefault(currency, Figures(currency))

    for r in ledger_rows:
        of(r["currency"]).ledger = Decimal(r["balance"])
    for r in other_rows:
        of(r["currency"]).other = Decimal(r["total"])
    for r in wire_rows:
        f = of(r["currency"])
        f.wire, f.wire_lines, f.wire_unbooked = Decimal(r["total"]), int(r["n"]), int(r["unbooked"])
    chain: dict[str, list[Any]] = defaultdict(list)
    for r in chain_rows:
        if r["booked"] or r["confirmations"] >= needed:
            chain[r["currency"]].append(r)
    for currency, rows in chain.items():
        f = of(currency)
        f.chain_items = len(rows)
        f.chain = sum((_counted(r) for r in rows), Decimal(0))
        f.chain_unbooked = [r["id"] for r in rows if not r["booked"]]
    return [out[c] for c in sorted(out)]


def _counted(row: Any) -> Decimal:
    """A chain item as the ledger can hold it; a coin it does not know counts in full (it cannot be
    booked, so the difference shows it)."""
    cut = suspense.bookable(row["amount"], row["currency"])
    return cut if cut or row["currency"] in MINOR_UNITS else Decimal(row["amount"])


def differences(figures: list[Figures]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for f in figures:
        if not f.differs:
            continue
        parts = [
            f"suspense holds {f.found} {f.currency}"
            + (f" (besides {f.other} from MT5 corrections and bonuses)" if f.other else ""),
            f"open items: {f.wire_lines} unmatched statement lines ({f.wire}) and {f.chain_items} "
            f"unassigned confirmed chain payments ({f.chain})",
        ]
        if f.wire_unbooked:
            parts.append(f"{f.wire_unbooked} open lines were never booked to suspense")
        if f.chain_unbooked:
            ids = ", ".join(str(i) for i in f.chain_unbooked[:20])
            parts.append(f"chain transactions never booked to suspense: {ids}")
        found.append(
            {
                "kind": "suspense_differs",
                "currency": f.currency,
                "expected": str(f.expected),
                "found": str(f.found),
                "detail": "; ".join(parts),
                "in_flight": False,
            }
        )
    return found[:LIMIT]


@external_check("suspense")
async def check_suspense() -> list[dict[str, Any]]:
    """The suspense accounts against the open wire lines and unassigned chain payments."""
    return differences(await summary())
