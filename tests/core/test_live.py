"""The live channel: a WebSocket per open page, authenticated by the session and its Origin,
fed by events that PostgreSQL delivers only when the publishing transaction commits."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.core import live, live_socket
from app.core.db import transaction
from app.core.live import Event, hub
from app.core.tables import WebSession
from tests.personas import make_client, session_for
from tests.servers import free_port

CSRF_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')


# People on the live server, written straight into its database (as a finished login would leave them).


def _session(conn: psycopg.Connection, kind: str, user_id: int, *, mfa_passed: bool = True) -> str:
    key = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO web_sessions (key_hash, user_kind, user_id, created_at, last_seen_at, idle_expires_at,"
        " absolute_expires_at, mfa_passed, ip, user_agent)"
        " VALUES (%s, %s, %s, now(), now(), now() + interval '30 minutes', now() + interval '12 hours', %s,"
        " '127.0.0.1', 'pytest')",
        (hashlib.sha256(key.encode()).hexdigest(), kind, user_id, mfa_passed),
    )
    return key


def live_staff(
    live_server, roles: tuple[str, ...] = ("admin",), *, mfa_passed: bool = True
) -> tuple[int, str]:
    """A staff member with 2FA enrolled on the live server; returns (id, session cookie key)."""
    with psycopg.connect(live_server.database_url, autocommit=True) as conn:
        staff_id = conn.execute(
            "INSERT INTO staff_users (email, name, password_hash, roles, totp_secret, totp_enabled, created_at)"
            " VALUES (%s, 'Live Staff', '!', %s, 'JBSWY3DPEHPK3PXP', true, now()) RETURNING id",
            (f"staff-{uuid.uuid4().hex[:8]}@staff.test", list(roles)),
        ).fetchone()[0]
        return staff_id, _session(conn, "staff", staff_id, mfa_passed=mfa_passed)


def live_client(live_server) -> tuple[int, str]:
    """A verified client on the live server; returns (id, session cookie key)."""
    with psycopg.connect(live_server.database_url, autocommit=True) as conn:
        client_id = conn.execute(
            "INSERT INTO clients (email, first_name, last_name, country, stage, stage_changed_at, created_at,"
            " password_hash, email_verified_at) VALUES (%s, 'Live', 'Client', 'DE', 'registered', now(), now(), '!', now())"
            " RETURNING id",
            (f"client-{uuid.uuid4().hex[:8]}@client.test",),
        ).fetchone()[0]
        return client_id, _session(conn, "client", client_id)


def browser(live_server, key: str | None = None) -> httpx.AsyncClient:
    cookies = {"fxsid": key} if key else {}
    return httpx.AsyncClient(base_url=live_server.url, cookies=cookies, timeout=15)


async def post_with_csrf(http: httpx.AsyncClient, page: str, url: str, data: dict) -> httpx.Response:
    r = await http.get(page)
    m = CSRF_RE.search(r.text)
    assert m, f"no CSRF field on {page} ({r.status_code})"
    return await http.post(url, data={**data, "_csrf_token": m.group(1)})


def open_socket(live_server, key: str | None, *, origin: str | None = None):
    headers = {"Cookie": f"fxsid={key}"} if key else {}
    return connect(
        live_server.url.replace("http://", "ws://") + "/live",
        origin=origin or live_server.url,  # type: ignore[arg-type]
        additional_headers=headers,
        open_timeout=10,
    )


async def nothing_arrives(ws: ClientConnection, seconds: float) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), timeout=seconds)
    except TimeoutError:
        return True
    return False


# The socket on the real server


async def test_a_socket_from_another_origin_is_refused(live_server):
    _, key = live_client(live_server)
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(live_server, key, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with open_socket(live_server, key) as ws:
        assert await nothing_arrives(ws, 0.2)


async def test_a_socket_without_an_origin_is_refused(live_server):
    _, key = live_client(live_server)
    with pytest.raises(InvalidStatus):
        async with connect(
            live_server.url.replace("http://", "ws://") + "/live",
            additional_headers={"Cookie": f"fxsid={key}"},
        ):
            pass


async def test_a_socket_without_a_session_is_refused(live_server):
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(live_server, None):
            pass
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        async with open_socket(live_server, "not-a-session-key"):
            pass


async def test_a_staff_socket_before_the_second_factor_is_refused(live_server):
    _, halfway = live_staff(live_server, mfa_passed=False)
    with pytest.raises(InvalidStatus):
        async with open_socket(live_server, halfway):
            pass
    _, complete = live_staff(live_server)
    async with open_socket(live_server, complete) as ws:
        assert await nothing_arrives(ws, 0.3)


async def test_a_staff_message_updates_only_that_clients_counter(live_server):
    staff_id, staff_key = live_staff(live_server, ("sales",))
    client_a, key_a = live_client(live_server)
    with psycopg.connect(live_server.database_url, autocommit=True) as conn:  # desk scoping: the agent's
        conn.execute(
            "INSERT INTO routing_assignments (client, desk, owner, assigned_at, first_contact_due_at,"
            " last_touched_at) VALUES (%s, NULL, %s, now(), now() + interval '1 hour', now())",
            (client_a, staff_id),
        )
    _, key_b = live_client(live_server)
    async with (
        open_socket(live_server, key_a) as ws_a,
        open_socket(live_server, key_b) as ws_b,
        browser(live_server, staff_key) as staff,
    ):
        r = await post_with_csrf(
            staff,
            f"/staff/clients/{client_a}",
            f"/staff/clients/{client_a}/messages",
            {"subject": "Your account review", "body": "All documents received."},
        )
        assert r.status_code == 303, r.text[:300]
        html = await asyncio.wait_for(ws_a.recv(), timeout=10)
        assert 'id="unread-counter"' in html
        assert re.search(r'<span id="unread-counter"[^>]*hx-swap-oob="true"[^>]*>1</span>', html)
        assert "Your account review" in html
        assert await nothing_arrives(ws_b, 1.5)


async def test_the_server_closes_the_socket_when_the_session_ends(live_server):
    _, key = live_client(live_server)
    _, other_key = live_client(live_server)
    async with (
        open_socket(live_server, key) as ws,
        open_socket(live_server, other_key) as other,
        browser(live_server, key) as http,
    ):
        r = await post_with_csrf(http, "/portal", "/portal/logout", {})
        assert r.status_code == 303
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        assert await nothing_arrives(other, 0.3)
    with pytest.raises(InvalidStatus):
        async with open_socket(live_server, key):
            pass


# The same app served in this process (so the test can shorten its timers)


class _InProcessServer(uvicorn.Server):
    def capture_signals(self):  # pytest owns the signals
        return contextlib.nullcontext()


@pytest.fixture
async def served(app):
    """The test's app on a real port, in the test's event loop and database."""
    server = _InProcessServer(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", ws="websockets-sansio")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started
    try:
        yield type("Served", (), {"url": f"http://127.0.0.1:{server.config.port}"})()
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def test_a_socket_is_closed_once_its_session_expires_even_while_events_flow(served, monkeypatch):
    monkeypatch.setattr(live_socket, "SESSION_RECHECK_SECONDS", 0.5)
    person = await make_client("expiring_client")
    key = await session_for(person)
    async with open_socket(served, key) as ws:
        await WebSession.update({WebSession.idle_expires_at: datetime.now(UTC) - timedelta(seconds=1)}).where(
            (WebSession.user_kind == "client") & (WebSession.user_id == person.id)
        )

        async def busy_channel() -> None:
            while True:
                async with transaction():
                    await live.publish(f"client:{person.id}", "message.read", message_id=0)
                await asyncio.sleep(0.1)

        publisher = asyncio.create_task(busy_channel())
        try:
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(5):
                    while True:
                        await ws.recv()
        finally:
            publisher.cancel()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


# Publishing, in process, on the test database


@pytest.fixture
async def listening(database):
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


async def test_an_event_published_in_a_rolled_back_transaction_never_arrives(listening):
    queue = listening.subscribe({"client:41"})
    try:
        with pytest.raises(ValueError):
            async with transaction():
                await live.publish("client:41", "message.created", message_id=7)
                raise ValueError("the change failed")
        await asyncio.sleep(0.5)
        assert queue.empty()

        async with transaction():
            await live.publish("client:41", "message.created", message_id=8)
            await asyncio.sleep(0.3)
            assert queue.empty(), "delivered before the transaction committed"
        event = await asyncio.wait_for(queue.get(), timeout=5)
        assert event == Event("client:41", "message.created", {"message_id": 8})
    finally:
        listening.unsubscribe(queue)


async def test_a_subscriber_gets_only_its_own_topics(listening):
    mine = listening.subscribe({"client:1", "session:9"})
    theirs = listening.subscribe({"client:2"})
    try:
        async with transaction():
            await live.publish("client:2", "message.created", message_id=1)
            await live.publish("client:1", "message.read", message_id=2)
        got = await asyncio.wait_for(mine.get(), timeout=5)
        assert (got.topic, got.type) == ("client:1", "message.read")
        other = await asyncio.wait_for(theirs.get(), timeout=5)
        assert (other.topic, other.ids) == ("client:2", {"message_id": 1})
        await asyncio.sleep(0.2)
        assert mine.empty() and theirs.empty()
    finally:
        listening.unsubscribe(mine)
        listening.unsubscribe(theirs)
    assert listening.connection_count == 0


async def test_an_event_names_the_session_whose_request_caused_it(listening):
    queue = listening.subscribe({"staff:client:5"})
    try:
        token = live.ORIGIN.set(77)
        try:
            await live.publish("staff:client:5", "client_page.stage", client_id=5)
        finally:
            live.ORIGIN.reset(token)
        await live.publish("staff:client:5", "client_page.stage", client_id=5)  # from a job: no origin
        first = await asyncio.wait_for(queue.get(), timeout=5)
        second = await asyncio.wait_for(queue.get(), timeout=5)
        assert (first.origin, second.origin) == (77, None)
    finally:
        listening.unsubscribe(queue)
