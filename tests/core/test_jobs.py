"""Background jobs: SAQ on PostgreSQL, enqueued only after the transaction that needs them
commits; queue health and worker heartbeats for the console and /readyz; and the real
web + worker processes handing a registration e-mail from one to the other."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from saq.job import Status

from app.core import jobs, mail
from app.core.db import fetch, transaction
from app.core.tables import WorkerHeartbeat
from tests.core.test_live import browser, live_staff, post_with_csrf
from tests.personas import sign_in
from tests.servers import body_of


@pytest.fixture
async def queue(database):
    jobs.load_job_modules()
    q = await jobs.connect(database)
    try:
        yield q
    finally:
        await jobs.disconnect()
    assert jobs.get_queue() is None


async def saq_rows() -> list[dict]:
    return await fetch("SELECT key, status FROM saq_jobs WHERE queue = {} ORDER BY key", "fxcrm")


async def test_nothing_is_enqueued_when_the_transaction_rolls_back(queue):
    with pytest.raises(KeyError):
        async with transaction():
            jobs.enqueue_after_commit("deliver_email", key="mail:doomed", email_id=1)
            raise KeyError("the change failed")
    assert await saq_rows() == []
    assert await queue.job("mail:doomed") is None


async def test_a_job_is_enqueued_once_the_transaction_commits(queue):
    async with transaction():
        email_id = await mail.queue_email("anna@client.test", "new_message", {"subject": "Hi"})
        assert await saq_rows() == [], "enqueued before the commit"
    assert await saq_rows() == [{"key": f"mail:{email_id}", "status": "queued"}]
    job = await queue.job(f"mail:{email_id}")
    assert job is not None
    assert job.function == "deliver_email"
    assert job.kwargs == {"email_id": email_id}
    assert job.retries == 5


async def test_the_same_key_is_enqueued_only_once(queue):
    for _ in range(2):
        async with transaction():
            jobs.enqueue_after_commit("deliver_email", key="mail:77", email_id=77)
    assert await saq_rows() == [{"key": "mail:77", "status": "queued"}]


async def test_after_commit_hooks_need_a_transaction(database):
    with pytest.raises(RuntimeError):
        jobs.enqueue_after_commit("deliver_email", key="mail:1", email_id=1)


async def test_health_counts_queued_and_failed_jobs(queue):
    first = await queue.enqueue("deliver_email", key="mail:1", email_id=1)
    await queue.enqueue("deliver_email", key="mail:2", email_id=2)
    await queue.enqueue("purge_sessions", key="purge:1")
    assert first is not None
    await queue.finish(first, Status.FAILED, error="smtp exploded")
    h = await jobs.health()
    assert (h["queued"], h["failed"], h["active"]) == (2, 1, 0)
    assert h["workers"] == []
    assert h["last_heartbeat_age"] is None


async def test_health_reports_workers_from_their_heartbeats(database):
    stop = asyncio.Event()
    started = datetime.now(UTC) - timedelta(minutes=3)
    beating = asyncio.create_task(jobs.heartbeat("test-host:1:abc", started, stop, every=0.05))
    try:
        for _ in range(100):
            rows = await WorkerHeartbeat.select()
            if rows and rows[0]["seen_at"] > started + timedelta(minutes=2):
                break
            await asyncio.sleep(0.05)
        first_seen = rows[0]["seen_at"]
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(beating, timeout=5)
    rows = await WorkerHeartbeat.select()
    assert len(rows) == 1, "one row per worker, updated in place"
    assert rows[0]["seen_at"] > first_seen
    old = WorkerHeartbeat(
        worker_id="old-host:9:def",
        hostname="old-host",
        pid=9,
        started_at=started,
        seen_at=datetime.now(UTC) - timedelta(minutes=10),
    )
    await old.save()
    h = await jobs.health()
    assert [w["worker_id"] for w in h["workers"]] == ["test-host:1:abc", "old-host:9:def"]
    assert h["workers"][0]["age_seconds"] <= 2
    assert h["workers"][1]["age_seconds"] >= 599
    assert h["last_heartbeat_age"] <= 2


async def test_healthz_answers_while_the_process_is_up(client):
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_readyz_waits_for_a_fresh_worker_heartbeat(client):
    r = await client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"] == "ok"
    assert body["checks"]["worker"] == "no worker heartbeat seen"

    stale = datetime.now(UTC) - timedelta(minutes=5)
    await WorkerHeartbeat(worker_id="w:1", hostname="h", pid=1, started_at=stale, seen_at=stale).save()
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["worker"].startswith("last heartbeat 3")

    await WorkerHeartbeat.update({WorkerHeartbeat.seen_at: datetime.now(UTC)}).where(
        WorkerHeartbeat.worker_id == "w:1"
    )
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok", "worker": "ok"}}


async def test_the_admin_sees_queue_health(client, personas, queue):
    await queue.enqueue("deliver_email", key="mail:5", email_id=5)
    await WorkerHeartbeat(
        worker_id="console-host:42:abc",
        hostname="console-host",
        pid=42,
        started_at=datetime.now(UTC),
        seen_at=datetime.now(UTC),
    ).save()
    await sign_in(client, personas["admin"])
    r = await client.get("/staff/settings/jobs")
    assert r.status_code == 200
    assert re.search(r'id="jobs-queued">1<', r.text)
    assert "console-host:42:abc" in r.text
    r = await client.get("/staff/settings/jobs", headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert "<html" not in r.text.lower() and "console-host:42:abc" in r.text
    await sign_in(client, personas["finance"])
    assert (await client.get("/staff/settings/jobs")).status_code == 403


# The real processes


async def outcome_of(database_url: str, email: str, within: float = 10.0) -> tuple[int, str, tuple | None]:
    """The outbox row's status and its SAQ job, once the worker has finished with both."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        with psycopg.connect(database_url) as conn:
            email_id, status = conn.execute(
                "SELECT id, status FROM outbound_emails WHERE to_addr = %s", (email,)
            ).fetchone()
            job = conn.execute(
                "SELECT status, job FROM saq_jobs WHERE key = %s", (f"mail:{email_id}",)
            ).fetchone()
        done = status != "sending" and (job is None or job[0] not in ("queued", "active"))
        if done or asyncio.get_running_loop().time() > deadline:
            return email_id, status, job
        await asyncio.sleep(0.1)


async def test_registration_e_mail_goes_from_the_web_process_through_the_worker(live_server):
    email = f"reg-{uuid.uuid4().hex[:8]}@client.test"
    async with browser(live_server) as http:
        r = await post_with_csrf(
            http,
            "/portal/register",
            "/portal/register",
            {
                "first_name": "Rita",
                "last_name": "Register",
                "email": email,
                "country": "DE",
                "password": "Tr4ding-Desk-2026!",
                "accept_terms": "on",
            },
        )
        assert r.status_code == 303, r.text[:500]
        msg = (await live_server.mailbox.await_for(email, timeout=20))[0]
        assert msg["Subject"] == "Confirm your e-mail address"
        link = re.search(r"(http://\S+/portal/verify/\S+)", body_of(msg))
        assert link and link.group(1).startswith(live_server.url)

        # The message reaches the SMTP server a moment before the worker records the outcome.
        email_id, status, job = await outcome_of(live_server.database_url, email)
        assert status == "sent"
        assert job is not None, "the web process enqueued no job"
        assert job[0] == "complete"
        stored = json.loads(bytes(job[1]))
        assert (stored["function"], stored["result"]) == ("deliver_email", "sent"), (
            "not sent by the job itself"
        )

        r = await http.get(link.group(1))
        assert r.status_code == 200
    with psycopg.connect(live_server.database_url) as conn:
        verified = conn.execute("SELECT email_verified_at FROM clients WHERE email = %s", (email,)).fetchone()
    assert verified and verified[0] is not None


async def test_the_admin_console_shows_the_live_workers_heartbeat(live_server):
    _, key = live_staff(live_server)
    with psycopg.connect(live_server.database_url) as conn:
        workers = [
            r[0]
            for r in conn.execute(
                "SELECT worker_id FROM worker_heartbeats WHERE seen_at > now() - interval '1 minute'"
            )
        ]
    assert workers, "the worker process writes a heartbeat"
    async with browser(live_server, key) as http:
        r = await http.get("/staff/settings/jobs")
    assert r.status_code == 200
    assert any(w in r.text for w in workers)
    assert re.search(r'badge-green">\d+ s ago', r.text)
