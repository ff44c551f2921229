"""A posting and its audit record are one statement (`funding_post_batch()`) and one
transaction: neither is ever written without the other, and the rows it writes verify in the same
hash chain as every other audit record, also when many transfers run at once."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import asyncpg
import pytest

from app.core import audit, db
from app.core.audit import Actor
from app.funding import balances, ledger
from app.funding.amounts import InsufficientFunds
from tests.funding.support import FINANCE, funded_wallet, key, ledger_totals

D = Decimal
ODD = Actor("staff", "12", 'Zoë "quotes" \\ back\tslash ✓', "198.51.100.7", "agent/1.0 (tab\there) ☃")


async def counts() -> tuple[int, int]:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM funding_transactions) AS tx, "
        "(SELECT count(*) FROM audit_events WHERE action = 'funding.transaction.posted') AS audit"
    )
    assert row is not None
    return row["tx"], row["audit"]


async def audit_row_of(transaction_id: int) -> dict | None:
    return await db.fetchrow(
        "SELECT actor_kind, actor_id, actor_label, ip, user_agent, subject_type, before, after "
        "FROM audit_events WHERE action = 'funding.transaction.posted' AND subject_id = $1",
        str(transaction_id),
    )


async def test_a_transfer_writes_its_audit_row_and_the_chain_verifies_with_other_records(database):
    wallet, other = await funded_wallet(D(100)), await funded_wallet(D(0))
    async with db.transaction():
        await audit.record(FINANCE, "test.before", "thing", 1, after={"n": 1.5, "s": "é"})
    tx = await ledger.transfer(
        ODD, "transfer", debit=wallet, credit=other, amount=D("12.34"), idempotency_key='k:"ü"\n1',
        reference="ref \\ «x»", memo="line one\nline two \u2028 \x01 😀",
    )  # fmt: skip
    async with db.transaction():
        await audit.record(ODD, "test.after", "thing", 2, before={"n": 1}, after=None)
    row = await audit_row_of(tx.id)
    assert row is not None
    assert json.loads(row["after"]) == ledger._view(tx)
    assert (row["actor_label"], row["ip"], row["user_agent"]) == (ODD.label, ODD.ip, ODD.user_agent)
    assert (row["subject_type"], row["before"]) == ("funding_transaction", None)
    result = await audit.verify()
    assert result.ok and result.checked == await _audit_rows()


async def test_a_replayed_transfer_writes_no_second_audit_row(database):
    wallet, other = await funded_wallet(D(100)), await funded_wallet(D(0))
    tx, audited = await counts()
    first = await ledger.transfer(
        FINANCE, "transfer", debit=wallet, credit=other, amount=D(5), idempotency_key="t:1"
    )
    again = await ledger.transfer(
        FINANCE, "transfer", debit=wallet, credit=other, amount=D(5), idempotency_key="t:1"
    )
    assert again.replayed and again.id == first.id
    assert await counts() == (tx + 1, audited + 1)


async def test_an_insufficient_transfer_writes_nothing_not_even_an_audit_row(database):
    wallet, other = await funded_wallet(D(10)), await funded_wallet(D(0))
    before = await counts()
    seq_before = await _audit_rows()
    with pytest.raises(InsufficientFunds):
        await ledger.transfer(
            FINANCE, "transfer", debit=wallet, credit=other, amount=D(11), idempotency_key=key()
        )
    assert await counts() == before and await _audit_rows() == seq_before
    assert await balances.balance_of(wallet) == 10 and await balances.balance_of(other) == 0


async def test_a_rolled_back_caller_leaves_neither_the_transfer_nor_its_audit_row(database):
    wallet, other = await funded_wallet(D(50)), await funded_wallet(D(0))
    before = await counts()
    with pytest.raises(RuntimeError):
        async with db.transaction():
            tx = await ledger.transfer(
                FINANCE, "transfer", debit=wallet, credit=other, amount=D(20), idempotency_key=key()
            )
            assert await audit_row_of(tx.id) is not None  # written in the caller's transaction
            raise RuntimeError("the caller failed after posting")
    assert await counts() == before
    assert await balances.balance_of(wallet) == 50 and (await audit.verify()).ok


@pytest.mark.parametrize("in_caller_transaction", [False, True])
async def test_a_failing_audit_row_takes_the_transfer_with_it(database, in_caller_transaction):
    wallet, other = await funded_wallet(D(50)), await funded_wallet(D(0))
    before = await counts()
    too_long = Actor(kind="k" * 40, id="1", label="the audit row refuses this actor kind")
    with pytest.raises(asyncpg.StringDataRightTruncationError):
        if in_caller_transaction:
            async with db.transaction():
                await ledger.transfer(
                    too_long, "transfer", debit=wallet, credit=other, amount=D(20), idempotency_key=key()
                )
        else:
            await ledger.transfer(
                too_long, "transfer", debit=wallet, credit=other, amount=D(20), idempotency_key=key()
            )
    assert await counts() == before
    assert await balances.balance_of(wallet) == 50 and await balances.balance_of(other) == 0


async def test_the_chain_verifies_after_many_concurrent_transfers_and_records(database):
    wallets = [await funded_wallet(D(100)) for _ in range(4)]
    _, audited_before = await counts()

    async def move(i: int) -> None:
        a, b = wallets[i % 4], wallets[(i + 1) % 4]
        await ledger.transfer(
            FINANCE, "transfer", debit=a, credit=b, amount=D("0.01"), idempotency_key=f"c:{i}"
        )

    async def note(i: int) -> None:
        async with db.transaction():
            await audit.record(ODD, "test.note", "thing", i, after={"i": i})

    await asyncio.gather(*(move(i) for i in range(40)), *(note(i) for i in range(10)))
    assert (await counts())[1] == audited_before + 40
    result = await audit.verify()
    assert result.ok and result.checked == await _audit_rows()
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}


async def test_a_transfer_inside_a_caller_transaction_is_audited_with_the_callers_records(database):
    wallet, other = await funded_wallet(D(30)), await funded_wallet(D(0))
    async with db.transaction():
        await audit.record(FINANCE, "test.first", "thing", 1)
        tx = await ledger.transfer(
            FINANCE, "transfer", debit=wallet, credit=other, amount=D(3), idempotency_key=key()
        )
        await audit.record(FINANCE, "test.last", "thing", 1)
    rows = await db.fetch("SELECT action, subject_id FROM audit_events ORDER BY seq DESC LIMIT 3")
    assert [(r["action"], r["subject_id"]) for r in reversed(rows)] == [
        ("test.first", "1"),
        ("funding.transaction.posted", str(tx.id)),
        ("test.last", "1"),
    ]
    assert (await audit.verify()).ok


async def _audit_rows() -> int:
    row = await db.fetchrow("SELECT count(*) AS n FROM audit_events")
    assert row is not None
    return int(row["n"])


async def test_only_a_transfer_that_is_its_own_transaction_commits_early(database):
    """Inside a caller's transaction the caller's commit stays synchronous (nobody waits for the
    flush after it); a transfer on its own commits early and leaves its pooled connection as it was."""
    wallet, other = await funded_wallet(D(30)), await funded_wallet(D(0))
    async with db.transaction():
        await ledger.transfer(
            FINANCE, "transfer", debit=wallet, credit=other, amount=D(1), idempotency_key=key()
        )
        assert await db.fetchrow("SHOW synchronous_commit") == {"synchronous_commit": "on"}
    await ledger.transfer(FINANCE, "transfer", debit=wallet, credit=other, amount=D(1), idempotency_key=key())
    assert await db.fetchrow("SHOW synchronous_commit") == {"synchronous_commit": "on"}
