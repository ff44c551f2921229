"""The audit trail: one helper writes it inside the caller's transaction, and any tampering
with the stored chain (edit, deletion, insertion, reordering) is found and named."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from app.core import audit
from app.core.audit import GENESIS, Actor, chain_hash
from app.core.db import fetch, transaction
from app.settings import ROOT
from tests.conftest import SECRET, TEST_VAR, post_form
from tests.personas import PASSWORD, sign_in

ACTOR = Actor("staff", "7", "auditor@staff.test", "203.0.113.9", "pytest-agent")
COLUMNS = (
    "seq",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "subject_type",
    "subject_id",
    "before",
    "after",
    "ip",
    "user_agent",
    "prev_hash",
    "hash",
)


async def write_events(n: int) -> None:
    for i in range(1, n + 1):
        async with transaction():
            await audit.record(
                ACTOR, f"test.event_{i}", "thing", i, before={"n": i - 1}, after={"n": i, "note": "é"}
            )


async def chain() -> list[dict]:
    return await fetch("SELECT * FROM audit_events ORDER BY seq")


@contextmanager
def tampering(database_url: str) -> Iterator[psycopg.Connection]:
    """What a superuser with direct database access could do: switch the guard triggers off."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("ALTER TABLE audit_events DISABLE TRIGGER USER")
            yield conn
            conn.execute("ALTER TABLE audit_events ENABLE TRIGGER USER")


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "APP_ENV": "development",
        "FXCRM_VAR_DIR": str(TEST_VAR),
    }
    env.pop("SMTP_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "app", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


async def test_it_refuses_to_record_outside_a_transaction(database):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        await audit.record(ACTOR, "test.orphan", "thing", 1)
    assert await chain() == []


async def test_it_writes_nothing_when_the_recorded_change_rolls_back(database):
    with pytest.raises(ArithmeticError):
        async with transaction():
            await audit.record(ACTOR, "test.doomed", "thing", 1)
            raise ArithmeticError("the change failed")
    assert await chain() == []


async def test_rows_chain_each_to_the_previous_hash(database):
    await write_events(4)
    rows = await chain()
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["prev_hash"] == GENESIS
    for prev, row in zip(rows, rows[1:], strict=False):
        assert row["prev_hash"] == prev["hash"]
    for row in rows:
        assert re.fullmatch(r"[0-9a-f]{64}", row["hash"])
        assert chain_hash(row["prev_hash"], row) == row["hash"]
    first = rows[0]
    assert (first["actor_kind"], first["actor_id"], first["actor_label"]) == (
        "staff",
        "7",
        "auditor@staff.test",
    )
    assert (first["ip"], first["user_agent"]) == ("203.0.113.9", "pytest-agent")
    assert json.loads(first["after"]) == {"n": 1, "note": "é"}
    assert (await audit.verify()) == audit.VerifyResult(ok=True, checked=4)


async def test_verify_passes_on_an_empty_trail(database):
    assert (await audit.verify()).ok


async def test_verify_reads_a_long_chain_in_batches(database):
    await write_events(7)
    result = await audit.verify(batch=3)
    assert result.ok and result.checked == 7


async def test_it_names_an_edited_row(database):
    await write_events(5)
    with tampering(database) as conn:
        conn.execute("UPDATE audit_events SET after = '{\"n\": 300}' WHERE seq = 3")
    result = await audit.verify()
    assert not result.ok
    assert (result.bad_seq, result.checked) == (3, 2)
    assert "altered" in result.reason


async def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(database):
    await write_events(5)
    rows = await chain()
    forged = {**rows[2], "actor_label": "someone-else@staff.test"}
    with tampering(database) as conn:
        conn.execute(
            "UPDATE audit_events SET actor_label = %s, hash = %s WHERE seq = 3",
            (forged["actor_label"], chain_hash(forged["prev_hash"], forged)),
        )
    result = await audit.verify()
    assert (result.ok, result.bad_seq) == (False, 4)
    assert "prev_hash" in result.reason


async def test_it_names_the_row_after_a_deleted_one(database):
    await write_events(5)
    with tampering(database) as conn:
        conn.execute("DELETE FROM audit_events WHERE seq = 3")
    result = await audit.verify()
    assert (result.ok, result.bad_seq, result.checked) == (False, 4, 2)
    assert "missing" in result.reason


async def test_it_names_the_row_after_an_inserted_one(database):
    """The forger even gives the inserted row a hash that fits its predecessor."""
    await write_events(5)
    rows = await chain()
    forged = {
        **rows[2],
        "seq": 3,
        "action": "test.forged",
        "actor_label": "ghost",
        "occurred_at": rows[1]["occurred_at"],
        "prev_hash": rows[1]["hash"],
    }
    forged["hash"] = chain_hash(rows[1]["hash"], forged)
    with tampering(database) as conn:
        conn.execute("UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 3")
        conn.execute("UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1000")
        conn.execute(
            f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})",
            [forged[c] for c in COLUMNS],
        )
    assert [r["action"] for r in await chain()][2] == "test.forged"
    result = await audit.verify()
    assert (result.ok, result.bad_seq, result.checked) == (False, 4, 3)


async def test_it_names_the_first_of_two_swapped_rows(database):
    await write_events(5)
    with tampering(database) as conn:
        conn.execute("UPDATE audit_events SET seq = -2 WHERE seq = 2")
        conn.execute("UPDATE audit_events SET seq = 2 WHERE seq = 3")
        conn.execute("UPDATE audit_events SET seq = 3 WHERE seq = -2")
    assert [r["action"] for r in await chain()][1:3] == ["test.event_3", "test.event_2"]
    result = await audit.verify()
    assert (result.ok, result.bad_seq, result.checked) == (False, 2, 1)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_events SET action = 'test.rewritten' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
        "TRUNCATE audit_events",
    ],
)
async def test_the_database_refuses_to_change_the_trail(database, sql):
    await write_events(2)
    with psycopg.connect(database, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(sql)
    assert [r["action"] for r in await chain()] == ["test.event_1", "test.event_2"]
    assert (await audit.verify()).ok


async def test_concurrent_writers_never_fork_the_chain(database):
    async def one(i: int) -> int:
        async with transaction():
            await asyncio.sleep(0.001 * (i % 3))
            seq = await audit.record(ACTOR, "test.concurrent", "thing", i)
            await asyncio.sleep(0.001 * (i % 2))
            return seq

    seqs = await asyncio.gather(*(one(i) for i in range(30)))
    assert sorted(seqs) == list(range(1, 31))
    rows = await chain()
    assert [r["seq"] for r in rows] == list(range(1, 31))
    assert sorted(int(r["subject_id"]) for r in rows) == list(range(30))
    assert len({r["prev_hash"] for r in rows}) == 30
    assert [r["occurred_at"] for r in rows] == sorted(r["occurred_at"] for r in rows)
    assert (await audit.verify()) == audit.VerifyResult(ok=True, checked=30)


async def test_the_cli_verifies_the_chain_and_names_the_bad_row(database):
    await write_events(4)
    ok = await asyncio.to_thread(run_cli, database, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "4 rows verified" in ok.stdout

    with tampering(database) as conn:
        conn.execute("UPDATE audit_events SET subject_id = '99' WHERE seq = 2")
    broken = await asyncio.to_thread(run_cli, database, "audit", "verify")
    assert broken.returncode == 1
    assert "BROKEN at seq 2" in broken.stderr
    assert "1 rows before it verified" in broken.stderr


async def test_a_login_over_http_records_who_and_from_where(client, personas):
    client.headers["user-agent"] = "AuditBrowser/1.0"
    r = await post_form(client, "/portal/login", {"email": "client.a@client.test", "password": PASSWORD})
    assert r.status_code in (302, 303)
    r = await post_form(
        client, "/portal/login", {"email": "client.b@client.test", "password": "not-the-password"}
    )
    assert r.status_code == 422
    rows = await fetch("SELECT * FROM audit_events ORDER BY seq")
    login, failed = rows[-2], rows[-1]
    assert login["action"] == "auth.login"
    assert login["actor_kind"] == "client"
    assert login["actor_id"] == str(personas["client_a"].id)
    assert login["actor_label"] == "client.a@client.test"
    assert (login["subject_type"], login["subject_id"]) == ("client", str(personas["client_a"].id))
    assert (login["ip"], login["user_agent"]) == ("127.0.0.1", "AuditBrowser/1.0")
    assert failed["action"] == "auth.login_failed"
    assert (failed["actor_kind"], failed["actor_id"], failed["actor_label"]) == (
        "anonymous",
        None,
        "client.b@client.test",
    )
    assert (failed["ip"], failed["user_agent"]) == ("127.0.0.1", "AuditBrowser/1.0")
    assert "persona-pass" not in json.dumps([dict(r, occurred_at=None) for r in rows])
    assert (await audit.verify()).ok


async def test_a_logout_over_http_is_recorded_for_the_signed_in_user(client, personas):
    await sign_in(client, personas["client_a"])
    r = await post_form(client, "/portal/logout", {}, page="/portal")
    assert r.status_code in (302, 303)
    rows = await fetch("SELECT * FROM audit_events WHERE action = 'auth.logout'")
    assert len(rows) == 1
    assert (rows[0]["actor_kind"], rows[0]["actor_id"]) == ("client", str(personas["client_a"].id))
    assert rows[0]["ip"] == "127.0.0.1"


def listed_actions(html: str) -> list[str]:
    return re.findall(r'<span class="badge badge-blue">([^<]+)</span>', html)


async def seed_for_browsing(client) -> None:
    await post_form(client, "/portal/login", {"email": "client.a@client.test", "password": PASSWORD})
    await post_form(
        client, "/portal/login", {"email": "client.a@client.test", "password": "wrong-password-1"}
    )
    await post_form(client, "/portal/login", {"email": "client.b@client.test", "password": PASSWORD})
    async with transaction():
        await audit.record(
            Actor("client", "1", "client.a@client.test"),
            "client.registered",
            "client",
            1,
            after={"at": datetime.now(UTC).isoformat()},
        )


async def test_the_admin_filters_the_trail_by_action_and_actor(client, personas):
    await seed_for_browsing(client)
    await sign_in(client, personas["admin"])
    r = await client.get("/staff/audit", params={"action": "auth.", "actor": "client.a"})
    assert r.status_code == 200
    assert "<html" in r.text.lower()
    assert sorted(listed_actions(r.text)) == ["auth.login", "auth.login_failed"]
    assert "client.b@client.test" not in r.text

    r = await client.get(
        "/staff/audit", params={"action": "auth.", "actor": "client.a"}, headers={"HX-Request": "true"}
    )
    assert r.status_code == 200
    assert "<html" not in r.text.lower()
    assert sorted(listed_actions(r.text)) == ["auth.login", "auth.login_failed"]

    r = await client.get("/staff/audit", params={"actor": "client.a"})
    assert sorted(listed_actions(r.text)) == ["auth.login", "auth.login_failed", "client.registered"]

    r = await client.get("/staff/audit", params={"action": "auth.login_failed"})
    assert listed_actions(r.text) == ["auth.login_failed"]

    r = await client.get("/staff/audit", params={"action": "staff.", "actor": "client.a"})
    assert listed_actions(r.text) == []
    assert "No audit events match" in r.text


async def test_compliance_browses_the_trail_but_sales_may_not(client, personas):
    await seed_for_browsing(client)
    await sign_in(client, personas["compliance"])
    r = await client.get("/staff/audit", params={"action": "auth."})
    assert r.status_code == 200
    assert sorted(listed_actions(r.text)) == ["auth.login", "auth.login", "auth.login_failed"]
    await sign_in(client, personas["sales"])
    r = await client.get("/staff/audit")
    assert r.status_code == 403
    assert "auth.login" not in r.text


async def test_values_the_database_normalises_still_verify(database):
    """JSONB rewrites some numbers (1e16 comes back as 10000000000000000): the hash must use the stored form."""
    async with transaction():
        await audit.record(
            ACTOR,
            "test.numbers",
            "thing",
            1,
            before={"big": 1e16, "tiny": 1.5e-7, "lots": 2.50, "when": datetime(2026, 1, 2, tzinfo=UTC)},
            after={"nested": [{"x": 1e22}, None, True], "text": 'ü " \\ </script>'},
        )
    assert (await audit.verify()).ok


def test_the_canonical_text_is_cut_exactly_around_the_time_and_the_sequence_number():
    """`audit_append()` hashes head + time + mid + seq + tail in SQL; it must be canonical(row)."""
    at = datetime(2026, 11, 24, 15, 20, 1, 7, tzinfo=UTC)
    row = {
        "actor_kind": "staff",
        "actor_id": "7",
        "actor_label": "é@staff.test",
        "action": "test.cut",
        "subject_type": "thing",
        "subject_id": None,
        "before": {"occurred_at": "", "seq": 0, "subject_id": "x"},
        "after": ["😀", '\n\t"', 10**30, True, None],
        "ip": None,
        "user_agent": "agent/1.0",
    }
    head, mid, tail = audit.canonical_parts(row)
    assert head + at.isoformat(timespec="microseconds") + mid + "12345" + tail == audit.canonical(
        {**row, "seq": 12345, "occurred_at": at}
    )


@pytest.mark.parametrize(
    "value",
    [
        {"s": 'é 😀 \u2028 \x01 \\ " </script>', "i": -(10**25), "b": [True, False, None], "e": {}, "l": []},
        {"when": datetime(2026, 1, 2, tzinfo=UTC), "amount": Decimal("1.50")},
        {"f": 0.1, "big": 1e300, "neg": -0.0, "exp": 1.5e-7},
        [1, [2, [3, {"4": 5.0}]]],
        12,
    ],
)
async def test_values_read_back_without_the_database_are_what_jsonb_gives_back(database, value):
    async with transaction():
        try:
            _, here = audit._as_stored_here(value)
        except audit._NotExact:
            here = "asks the database"
        stored, _ = await audit._as_stored(value, None)
        assert here in (stored, "asks the database")
        await audit.record(ACTOR, "test.value", "thing", 1, before=value, after={"x": value})
        await audit.record_many(ACTOR, [audit.Entry("test.many", "thing", 2, value, [value])])
    row = (await chain())[0]
    assert json.loads(row["before"]) == stored
    assert (await audit.verify()) == audit.VerifyResult(ok=True, checked=2)


async def test_record_and_record_many_extend_one_chain(database):
    async with transaction():
        assert await audit.record(ACTOR, "test.one", "thing", 1, after={"n": 1.25}) == 1
        entries = [audit.Entry("test.many", "thing", i, after={"n": i}) for i in range(3)]
        assert await audit.record_many(ACTOR, entries) == [2, 3, 4]
        assert await audit.record(ACTOR, "test.two", "thing", 2) == 5
    async with transaction():
        assert await audit.record_many(ACTOR, [audit.Entry("test.f", "thing", 9, {"x": 1e16})]) == [6]
    rows = await chain()
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert json.loads(rows[5]["before"]) == {"x": 10000000000000000}
    assert (await audit.verify()) == audit.VerifyResult(ok=True, checked=6)
