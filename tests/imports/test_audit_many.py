"""`audit.record_many`: many events in one statement, chained exactly as `record` chains one,
so `verify()` accepts them and finds any tampering with them."""

from __future__ import annotations

import pytest

from app.core import audit
from app.core.audit import Actor, Entry
from app.core.db import fetch, transaction
from tests.core.test_audit import tampering

ACTOR = Actor("staff", "7", "importer@staff.test", "203.0.113.9", "pytest-agent")


async def test_many_events_interleave_with_single_ones_in_one_verified_chain(database):
    async with transaction():
        assert await audit.record(ACTOR, "test.one", "thing", 1, after={"n": 1}) == 1
        seqs = await audit.record_many(
            ACTOR,
            [
                Entry("test.many", "thing", 2, None, {"n": 2, "big": 1e16, "note": "é", "when": None}),
                Entry("test.many", "thing", None),
                Entry("test.many", "thing", "x", {"a": [1, 2]}, {"a": [1, 2, 3]}),
            ],
        )
        assert seqs == [2, 3, 4]
    async with transaction():
        assert await audit.record(ACTOR, "test.one", "thing", 5) == 5
        assert await audit.record_many(ACTOR, []) == []
    rows = await fetch("SELECT * FROM audit_events ORDER BY seq")
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:], strict=False))
    assert (rows[1]["actor_label"], rows[1]["ip"], rows[1]["subject_id"]) == (
        "importer@staff.test",
        "203.0.113.9",
        "2",
    )
    assert rows[2]["before"] is None and rows[2]["after"] is None
    result = await audit.verify()
    assert result.ok and result.checked == 5


async def test_it_refuses_to_record_outside_a_transaction_and_writes_nothing_on_rollback(database):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        await audit.record_many(ACTOR, [Entry("test.orphan", "thing", 1)])
    with pytest.raises(ArithmeticError):
        async with transaction():
            await audit.record_many(ACTOR, [Entry("test.doomed", "thing", 1)])
            raise ArithmeticError
    assert await fetch("SELECT * FROM audit_events") == []


async def test_an_edited_event_of_a_batch_is_found(database):
    async with transaction():
        await audit.record_many(ACTOR, [Entry("test.many", "thing", i, None, {"n": i}) for i in range(10)])
    with tampering(database) as conn:
        conn.execute("""UPDATE audit_events SET after = '{"n": 99}' WHERE seq = 6""")
    result = await audit.verify()
    assert not result.ok and result.bad_seq == 6 and "altered" in result.reason
