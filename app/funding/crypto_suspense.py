"""Crypto money nobody could be credited with: the suspense list finance works through.

`crypto.ingest` records a transaction `unassigned` when its address is nobody's, the coin is not the
address's, or the deposit rules refused it. Finance either credits it to the client it belongs to
(`assign`: an ordinary deposit through the usual checks, completed at once when already confirmed)
or records what else was done (`resolve`: sent back …). Both are audited.

A transaction confirmed enough is in the ledger's suspense account (`crypto.ingest`); either
decision first takes it out (Dr suspense / Cr the provider's clearing, key `chain-unsuspense:<id>`)
in its own transaction, before the client's deposit is booked as usual (`app.funding.suspense`).
"""

from __future__ import annotations

from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.funding import deposits
from app.funding import suspense as ledger_suspense
from app.funding.amounts import LedgerError
from app.funding.crypto import confirmations_needed, deposit_key, offered, on_chain
from app.kyc.levels import RightDenied


async def suspense(include_resolved: bool = False, limit: int = 200) -> list[dict[str, Any]]:
    """Chain money finance must look at: unassigned transactions (and those dropped after credit)."""
    statuses = ["unassigned", "resolved"] if include_resolved else ["unassigned"]
    return await db.fetch(
        "SELECT * FROM funding_chain_transactions WHERE status = ANY({}) OR note LIKE '%after it was credited%' "
        "ORDER BY id DESC LIMIT {}",
        statuses,
        limit,
    )


async def assign(actor: Actor, p: Principal, chain_tx_id: int, client_id: int, note: str) -> dict[str, Any]:
    """Finance credits an unassigned transaction to the client it belongs to (who wrote in, say):
    it becomes that client's deposit through the usual checks, completed at once if the chain has
    already confirmed it enough."""
    if not (p.is_staff and allowed(p, "finance")):
        raise PermissionError("Only finance assigns chain transactions.")
    note = (note or "").strip()
    if not note:
        raise FormErrors({"note": "Say why this money is the client's."})
    async with db.transaction():
        row = await db.fetchrow(
            "SELECT * FROM funding_chain_transactions WHERE id = $1 FOR UPDATE", chain_tx_id
        )
        if row is None:
            raise NotFound("chain transaction")
        if row["status"] != "unassigned":
            raise FormErrors(
                {"client_id": f"This transaction is {row['status']}, not waiting for a decision."}
            )
        if await db.fetchrow("SELECT id FROM clients WHERE id = $1", client_id) is None:
            raise FormErrors({"client_id": f"There is no client {client_id}."})
        method = next(
            (o["method"] for o in await offered(client_id) if o["currency"] == row["currency"]), None
        )
        if method is None:
            raise FormErrors({"client_id": f"Client {client_id} is not offered {row['currency']} deposits."})
        unwound = await _unsuspend(
            actor, row, f"Chain transaction {chain_tx_id} assigned to client {client_id}: {note}"
        )
        try:
            deposit = await deposits.create_deposit(
                actor,
                client_id,
                method["id"],
                row["amount"],
                row["currency"],
                idempotency_key=deposit_key(row["provider"], row["tx_hash"]),
            )
        except (LedgerError, RightDenied) as exc:
            raise FormErrors({"client_id": f"Client {client_id}: {exc.message}"}) from None
        await on_chain(actor, deposit["id"], row["tx_hash"], row["address"], row["confirmations"])
        new = await db.fetchrow(
            "UPDATE funding_chain_transactions SET status = 'deposit', deposit_id = $2, resolved_by = $3, "
            "note = note || ' — assigned: ' || $4, updated_at = now() WHERE id = $1 RETURNING *",
            chain_tx_id,
            deposit["id"],
            (actor.label or actor.kind)[:320],
            note[:1000],
        )
        assert new is not None
        await audit.record(
            actor,
            "funding.chain_transaction.assigned",
            "funding_chain_transaction",
            chain_tx_id,
            before={"status": row["status"], "note": row["note"]},
            after={
                "status": "deposit",
                "client_id": client_id,
                "deposit_id": deposit["id"],
                "why": note[:1000],
                "unsuspense_transaction_id": unwound,
            },
        )
        if row["confirmations"] >= await confirmations_needed():
            await deposits.complete_deposit(
                actor,
                deposit["id"],
                amount=row["amount"],
                currency=row["currency"],
                tx_hash=row["tx_hash"],
                confirmations=row["confirmations"],
            )
    return new


async def resolve(actor: Actor, p: Principal, chain_tx_id: int, note: str) -> dict[str, Any]:
    """Finance records what it did about an unassigned transaction (sent back, credited by hand …)."""
    if not (p.is_staff and allowed(p, "finance")):
        raise PermissionError("Only finance resolves chain transactions.")
    note = (note or "").strip()
    if not note:
        raise FormErrors({"note": "Say what was done with this money."})
    async with db.transaction():
        row = await db.fetchrow(
            "SELECT * FROM funding_chain_transactions WHERE id = $1 FOR UPDATE", chain_tx_id
        )
        if row is None:
            raise NotFound("chain transaction")
        if row["status"] != "unassigned":
            raise FormErrors({"note": f"This transaction is {row['status']}, not waiting for a decision."})
        unwound = await _unsuspend(actor, row, f"Chain transaction {chain_tx_id} resolved: {note}")
        new = await db.fetchrow(
            "UPDATE funding_chain_transactions SET status = 'resolved', note = note || ' — ' || $2, resolved_by = $3, "
            "updated_at = now() WHERE id = $1 RETURNING *",
            chain_tx_id,
            note[:1000],
            (actor.label or actor.kind)[:320],
        )
        assert new is not None
        await audit.record(
            actor,
            "funding.chain_transaction.resolved",
            "funding_chain_transaction",
            chain_tx_id,
            before={"status": row["status"], "note": row["note"]},
            after={"status": "resolved", "resolution": note[:1000], "unsuspense_transaction_id": unwound},
        )
    return new


async def _unsuspend(actor: Actor, row: dict[str, Any], memo: str) -> int | None:
    """Take the transaction out of suspense if it was booked there (inside the caller's
    transaction, audited by the caller's record); the unwind's transaction id."""
    booking, key = ledger_suspense.chain_keys(row["id"])
    posted = await ledger_suspense.unwind(
        actor, booking, key, reference=row["tx_hash"][:200], memo=memo[:1000], audit=False
    )
    return None if posted is None else posted.id
