"""Real servers for tests that need them: an SMTP server on loopback, and the app itself
(web + worker as separate processes) for browser and WebSocket tests."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import httpx
import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    def wait_for(self, address: str, timeout: float = 20.0, count: int = 1) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(
            f"no e-mail to {address} within {timeout}s (got {[str(m['To']) for m in self.messages]})"
        )

    async def await_for(self, address: str, timeout: float = 20.0, count: int = 1) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"no e-mail to {address} within {timeout}s")


def body_of(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content() if part else ""


@contextmanager
def running_smtp() -> Iterator[tuple[str, Mailbox]]:
    """A real SMTP server on loopback; yields (SMTP_URL, mailbox)."""
    box = Mailbox()
    port = free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield f"smtp://127.0.0.1:{port}", box
    finally:
        ctl.stop()


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, Mailbox]]:
    with running_smtp() as server:
        yield server


@pytest.fixture(scope="session")
def session_smtp() -> Iterator[tuple[str, Mailbox]]:
    """The one the live server sends to, for the whole session."""
    with running_smtp() as server:
        yield server


@dataclass
class LiveServer:
    url: str
    database_url: str
    mailbox: object
    procs: list[subprocess.Popen]


def _wait_ready(url: str, procs: list[subprocess.Popen], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"server process exited with {p.returncode}")
        try:
            r = httpx.get(url + "/readyz", timeout=2)
            if r.status_code == 200:
                return
            last = r.text
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise RuntimeError(f"app not ready in {timeout}s: {last}")


@pytest.fixture(scope="session")
def live_server(pg_server: str, template_db: str, session_smtp) -> Iterator[LiveServer]:
    """`fxcrm web` and `fxcrm worker` as real processes on a database of their own."""
    import psycopg

    from tests.conftest import SECRET, TEST_VAR, with_database

    name = f"fxcrm_live_{os.getpid()}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    db_url = with_database(pg_server, name)
    smtp_url, box = session_smtp
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SECRET_KEY": SECRET,
        "SMTP_URL": smtp_url,
        "APP_ENV": "development",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "BASE_URL": base,
        "FXCRM_VAR_DIR": str(TEST_VAR),
        "MAIL_FROM": "FX CRM <no-reply@fxcrm.test>",
    }
    log_dir = TEST_VAR / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app", "web"],
            env=env,
            stdout=open(log_dir / "web.log", "w"),
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            env=env,
            stdout=open(log_dir / "worker.log", "w"),
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        _wait_ready(base, procs)
        yield LiveServer(base, db_url, box, procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
