"""Once, when suspense booking is switched on: book the items already open at that moment.

Statement lines imported and chain payments recorded before suspense was booked are open but not
in the ledger; the suspense reconciliation lists them ("never booked to suspense"). Deciding them
works as before (an item never booked has nothing to unwind), so this is not needed for
correctness, only to make the ledger say what the lists say. Each item is booked in its own
transaction under its row lock, with the key the import or the feed would have used, so running
it twice, or while finance works the lists, books nothing twice. An explicit operation (the
reconciliation itself never fixes anything)."""

from __future__ import annotations

from dataclasses import dataclass

from app.core import db
from app.core.audit import Actor
from app.funding import crypto, statements, suspense


@dataclass(frozen=True)
class Backfilled:
    wire_lines: int
    chain_transactions: int


async def book_open_items(actor: Actor) -> Backfilled:
    """Book every open statement line and confirmed unassigned chain payment not yet in suspense."""
    lines = await db.fetch(
        "SELECT l.id FROM funding_statement_lines l WHERE l.status = 'unmatched' AND NOT EXISTS ("
        "SELECT 1 FROM funding_transactions t WHERE t.idempotency_key = 'wire-line-suspense:' || l.id) ORDER BY l.id"
    )
    wire = 0
    for r in lines:
        async with db.transaction():
            line = await db.fetchrow(
                "SELECT * FROM funding_statement_lines WHERE id = $1 FOR UPDATE", r["id"]
            )
            if line is None or line["status"] != "unmatched":
                continue
            if await statements.book_line(actor, line, audit_it=True) is not None:
                wire += 1
    needed = await crypto.confirmations_needed()
    chain_rows = await db.fetch(
        "SELECT c.id FROM funding_chain_transactions c WHERE c.status = 'unassigned' AND c.confirmations >= {} "
        "AND NOT EXISTS (SELECT 1 FROM funding_transactions t WHERE t.idempotency_key = 'chain-suspense:' || c.id) "
        "ORDER BY c.id",
        needed,
    )
    chain = 0
    for r in chain_rows:
        async with db.transaction():
            seen = await db.fetchrow(
                "SELECT * FROM funding_chain_transactions WHERE id = $1 FOR UPDATE", r["id"]
            )
            if seen is None or seen["status"] != "unassigned":
                continue
            await crypto.book_suspense(actor, seen)
            if await suspense.is_booked(suspense.chain_keys(seen["id"])[0]):
                chain += 1
    return Backfilled(wire, chain)
