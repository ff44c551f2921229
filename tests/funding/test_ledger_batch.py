"""Group commit (`app.funding.ledger_batch`): postings made at the same moment outside a caller's
transaction share one statement and one commit, and each caller still gets exactly its own answer."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest

from app.core import audit, db
from app.funding import holds, ledger, ledger_batch
from app.funding.amounts import IdempotencyConflict, InsufficientFunds, LedgerError
from tests.funding.support import FINANCE, funded_wallet, key, ledger_totals, new_client

D = Decimal


async def _outcomes(*calls) -> list[object]:
    """Run the calls at once (one event-loop turn): their postings wait together for one flush."""
    return await asyncio.gather(*calls, return_exceptions=True)


async def _wallet(amount: Decimal) -> int:
    return await funded_wallet(amount)


async def _balance(account_id: int) -> Decimal:
    row = await db.fetchrow("SELECT balance FROM funding_ledger_accounts WHERE id = $1", account_id)
    assert row is not None
    return row["balance"]


async def test_it_posts_simultaneous_transfers_in_one_statement_each_its_own_transaction(database):
    a, b = await _wallet(D(100)), await _wallet(D(100))
    before = ledger_batch.stats.statements
    posted = await _outcomes(
        *(
            ledger.transfer(FINANCE, "transfer", debit=a, credit=b, amount=D(1), idempotency_key=key())
            for _ in range(40)
        )
    )
    assert ledger_batch.stats.statements - before == 1
    assert all(isinstance(p, ledger.Posted) and not p.replayed for p in posted)
    assert len({p.id for p in posted}) == 40  # type: ignore[union-attr]
    balances_after = [p.lines[0].balance_after for p in posted]  # type: ignore[union-attr]
    assert balances_after == [D(99) - i for i in range(40)]  # in the order they arrived
    assert await _balance(a) == D(60)
    assert await _balance(b) == D(140)
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}
    rows = await db.fetch(
        "SELECT subject_id, after FROM audit_events WHERE action = 'funding.transaction.posted' AND subject_id = ANY({})",
        [str(p.id) for p in posted],  # type: ignore[union-attr]
    )
    assert len(rows) == 40
    assert (await audit.verify()).ok


async def test_each_caller_gets_its_own_refusal_and_the_others_are_posted(database):
    rich, poor = await _wallet(D(100)), await _wallet(D(5))
    await holds.hold(FINANCE, rich, D(1), key("hold"))
    hold_account = (
        await db.fetchrow("SELECT id FROM funding_ledger_accounts WHERE parent_id = $1", rich) or {}
    )["id"]
    reused = key("same")
    results = await _outcomes(
        ledger.transfer(FINANCE, "transfer", debit=rich, credit=poor, amount=D(10), idempotency_key=key()),
        ledger.transfer(FINANCE, "transfer", debit=poor, credit=rich, amount=D(50), idempotency_key=key()),
        ledger.transfer(
            FINANCE, "transfer", debit=rich, credit=999_999_999, amount=D(1), idempotency_key=key()
        ),
        ledger.transfer(
            FINANCE, "transfer", debit=rich, credit=poor, amount=D("0.001"), idempotency_key=key()
        ),
        ledger.post(FINANCE, "adjustment", [(rich, D(1)), (poor, D(-2))], idempotency_key=key()),
        ledger.transfer(FINANCE, "transfer", debit=rich, credit=poor, amount=D(3), idempotency_key=reused),
        ledger.transfer(FINANCE, "transfer", debit=rich, credit=poor, amount=D(3), idempotency_key=reused),
        ledger.transfer(FINANCE, "transfer", debit=rich, credit=poor, amount=D(4), idempotency_key=reused),
        ledger.transfer(
            FINANCE, "transfer", debit=hold_account, credit=poor, amount=D(1), idempotency_key=key()
        ),
    )
    first, short, unknown, precise, unbalanced, once, replay, conflict, held = results
    assert isinstance(first, ledger.Posted)
    assert isinstance(short, InsufficientFunds)  # 5 + 10 from the first: 15 available, 50 needed
    assert "15.00 USD available" in short.message
    assert isinstance(unknown, LedgerError) and "999999999 does not exist" in unknown.message
    assert isinstance(precise, LedgerError) and "at most 2 decimals" in precise.message
    assert isinstance(unbalanced, LedgerError) and "do not balance" in unbalanced.message
    assert isinstance(once, ledger.Posted) and not once.replayed
    assert isinstance(replay, ledger.Posted) and replay.replayed and replay.id == once.id
    assert isinstance(conflict, IdempotencyConflict)
    assert isinstance(held, LedgerError) and "releasing or capturing" in held.message
    assert await _balance(rich) == D(86)
    assert await _balance(poor) == D(18)
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}


async def test_two_postings_in_one_batch_cannot_spend_the_same_money(database):
    wallet, other = await _wallet(D(10)), await _wallet(D("0.01"))
    results = await _outcomes(
        *(
            ledger.transfer(
                FINANCE, "transfer", debit=wallet, credit=other, amount=D(7), idempotency_key=key()
            )
            for _ in range(2)
        )
    )
    assert [type(r) for r in results] == [ledger.Posted, InsufficientFunds]
    assert await _balance(wallet) == D(3)
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}


async def test_unaudited_and_audited_postings_share_a_batch_and_only_the_audited_are_recorded(database):
    a, b = await _wallet(D(10)), await _wallet(D(10))
    results = await _outcomes(
        ledger.transfer(
            FINANCE, "transfer", debit=a, credit=b, amount=D(1), idempotency_key=key(), audit=False
        ),
        ledger.transfer(FINANCE, "transfer", debit=a, credit=b, amount=D(2), idempotency_key=key()),
    )
    ids = [str(r.id) for r in results]  # type: ignore[union-attr]
    recorded = await db.fetch(
        "SELECT subject_id FROM audit_events WHERE action = 'funding.transaction.posted' AND subject_id = ANY({})",
        ids,
    )
    assert [r["subject_id"] for r in recorded] == [ids[1]]
    assert (await audit.verify()).ok


async def test_when_the_statement_fails_whole_each_posting_is_made_on_its_own(database, monkeypatch):
    a, b = await _wallet(D(10)), await _wallet(D(10))
    statement = ledger_batch._statement
    refused: list[int] = []

    async def batches_fail(conn, batch):  # as when another connection took one of the keys meanwhile
        if len(batch) > 1:
            refused.append(len(batch))
            raise asyncpg.exceptions.SerializationError("a key was taken meanwhile")
        return await statement(conn, batch)

    monkeypatch.setattr(ledger_batch, "_statement", batches_fail)
    results = await _outcomes(
        ledger.transfer(FINANCE, "transfer", debit=a, credit=b, amount=D(4), idempotency_key=key()),
        ledger.transfer(FINANCE, "transfer", debit=a, credit=b, amount=D(4), idempotency_key=key()),
        ledger.transfer(FINANCE, "transfer", debit=a, credit=b, amount=D(4), idempotency_key=key()),
    )
    assert refused == [3]  # the three went as one statement, which failed whole
    assert [type(r) for r in results] == [ledger.Posted, ledger.Posted, InsufficientFunds]
    assert await _balance(a) == D(2)
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}
    assert (await audit.verify()).ok


async def test_a_caller_cancelled_before_its_batch_is_sent_posts_nothing(database):
    a, b = await _wallet(D(10)), await _wallet(D(10))
    cancelled = key("cancelled")
    task = asyncio.create_task(
        ledger.transfer(FINANCE, "transfer", debit=a, credit=b, amount=D(1), idempotency_key=cancelled)
    )
    await asyncio.sleep(0)  # it is queued; the flush has not run yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = await ledger.transfer(FINANCE, "transfer", debit=a, credit=b, amount=D(2), idempotency_key=key())
    assert after.lines[0].balance_after == D(8)
    assert await db.fetch("SELECT id FROM funding_transactions WHERE idempotency_key = {}", cancelled) == []


async def test_a_batch_of_holds_and_transfers_locks_in_one_order_with_other_connections(database):
    """Batches and postings inside callers' transactions over the same accounts finish (no deadlock)."""
    client = await new_client()
    wallet = await funded_wallet(D(100), "USD", client)
    others = [await _wallet(D(1)) for _ in range(3)]

    async def in_transaction(i: int) -> object:
        async with db.transaction():
            return await ledger.transfer(
                FINANCE,
                "transfer",
                debit=others[i % 3],
                credit=wallet,
                amount=D("0.10"),
                idempotency_key=key(),
            )

    results = await asyncio.wait_for(
        _outcomes(
            *(
                ledger.transfer(
                    FINANCE, "transfer", debit=wallet, credit=o, amount=D(1), idempotency_key=key()
                )
                for o in others * 5
            ),
            *(in_transaction(i) for i in range(3)),
        ),
        timeout=30,
    )
    assert all(isinstance(r, ledger.Posted) for r in results), results
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}


async def test_a_key_committed_by_another_connection_while_the_batch_waits_is_a_replay(database):
    """The batch read the key as free, then finds it taken when it inserts: nothing of the batch is
    written and each posting is made on its own, which sees the other connection's transaction."""
    a, b = await _wallet(D(10)), await _wallet(D(10))
    c, d = await _wallet(D(10)), await _wallet(D(10))
    shared = key("shared")
    inside = asyncio.Event()
    release = asyncio.Event()

    async def other_connection() -> ledger.Posted:
        async with db.transaction():
            posted = await ledger.transfer(
                FINANCE, "transfer", debit=a, credit=b, amount=D(1), idempotency_key=shared
            )
            inside.set()
            await release.wait()
            return posted

    first = asyncio.create_task(other_connection())
    await inside.wait()
    racing = asyncio.create_task(
        ledger.transfer(FINANCE, "transfer", debit=a, credit=b, amount=D(1), idempotency_key=shared)
    )
    bystander = asyncio.create_task(
        ledger.transfer(FINANCE, "transfer", debit=c, credit=d, amount=D(1), idempotency_key=key())
    )
    await asyncio.sleep(0.3)  # the batch now waits on the other connection's key
    release.set()
    original, replayed, other = await asyncio.gather(first, racing, bystander)
    assert replayed.replayed and replayed.id == original.id
    assert isinstance(other, ledger.Posted) and not other.replayed
    assert (await _balance(a), await _balance(c)) == (D(9), D(9))
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}
