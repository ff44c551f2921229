"""Test harness: real PostgreSQL, one fresh database per test, fixed personas.

PostgreSQL: the server on 127.0.0.1:5432 when one answers (CI and our machines), otherwise the
embedded one from the wheel. The schema is migrated once into a template database; every test
gets its own copy (CREATE DATABASE … TEMPLATE), so tests never see each other's rows and the
append-only audit table needs no special cleaning.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from app.core import db
from app.settings import ROOT, load_settings, use_settings

pytest_plugins = ["tests.personas", "tests.servers"]

TEST_VAR = Path(os.environ.get("FXCRM_TEST_VAR", ROOT / "var" / "test"))
SECRET = "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def _server_url() -> str:
    """A PostgreSQL URL with rights to create databases (without a database name)."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        return explicit
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if os.environ.get("FXCRM_TEST_PG") == "embedded":  # what a fresh machine without a server does
        TEST_VAR.mkdir(parents=True, exist_ok=True)
        return db.start_embedded(TEST_VAR).replace("/fxcrm?", "/postgres?")
    try:
        with psycopg.connect(local, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return local
    except psycopg.OperationalError:
        TEST_VAR.mkdir(parents=True, exist_ok=True)
        return db.start_embedded(TEST_VAR).replace("/fxcrm?", "/postgres?")


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _admin(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def test_settings(database_url: str, **env: str):
    base = {
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "FXCRM_VAR_DIR": str(TEST_VAR),
        "BASE_URL": "http://testserver.local",
    }
    base.update(env)
    return load_settings(base)


def forget_process_caches() -> None:
    """In-process caches outlive a test's database; a new database starts with none."""
    from app.core import cache
    from app.core.auth import sessions
    from app.staff import overview

    sessions.forget_all()
    overview.forget()
    cache.forget_all()


@pytest.fixture(scope="session")
def pg_server() -> str:
    return _server_url()


@pytest.fixture(scope="session")
async def template_db(pg_server: str) -> AsyncIterator[str]:
    from app.core.migrate import migrate

    name = f"fxcrm_tpl_{os.getpid()}"
    _admin(pg_server, f'DROP DATABASE IF EXISTS "{name}"')
    _admin(pg_server, f'CREATE DATABASE "{name}"')
    url = with_database(pg_server, name)
    db.configure(url)
    use_settings(test_settings(url))
    await db.start_pool(min_size=1, max_size=2)
    await migrate()
    await db.close_pool()
    yield name
    _admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Copies:
    """Copies of the template made one test ahead, and dropped after the test, on a thread of their
    own: CREATE DATABASE (~0.9 s, mostly waiting for the disk) overlaps the test before, instead of
    adding to every test's time."""

    def __init__(self, pg_server: str, template: str) -> None:
        self.pg_server, self.template = pg_server, template
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-copies")
        self.next: Future[str] | None = None

    def _create(self) -> str:
        name = f"fxcrm_t_{uuid.uuid4().hex[:10]}"
        _admin(self.pg_server, f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return name

    def take(self) -> str:
        name = (self.next or self.pool.submit(self._create)).result()
        self.next = self.pool.submit(self._create)
        return name

    def drop(self, name: str) -> None:
        self.pool.submit(_admin, self.pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self.next is not None:
            self.drop(self.next.result())
        self.pool.shutdown(wait=True)


@pytest.fixture(scope="session")
def _copies(pg_server: str, template_db: str) -> Iterator[_Copies]:
    copies = _Copies(pg_server, template_db)
    yield copies
    copies.close()


@pytest.fixture
async def database(pg_server: str, _copies: _Copies) -> AsyncIterator[str]:
    """A fresh, migrated database for this test, with the shared engine pointed at it."""
    name = _copies.take()
    url = with_database(pg_server, name)
    db.configure(url)
    use_settings(test_settings(url))
    forget_process_caches()
    await db.start_pool(min_size=1, max_size=5)
    try:
        yield url
    finally:
        await db.close_pool()
        _copies.drop(name)


@pytest.fixture
def settings(database: str):
    s = test_settings(database)
    use_settings(s)
    return s


@pytest.fixture
async def app(settings):
    from app.asgi import create_app

    return create_app(settings, start_queue=False)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app, in the test's own event loop (so it shares the test's pool)."""
    for hook in app.on_startup:
        await hook()
    try:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as c:
            yield c
    finally:
        for hook in app.on_shutdown:
            await hook()


CSRF_RE = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def csrf_token(client: httpx.AsyncClient, page: str) -> str:
    """The token a real browser would have: from the form on `page` (and its cookie)."""
    r = await client.get(page)
    m = CSRF_RE.search(r.text)
    assert m, f"no CSRF field on {page} (status {r.status_code})"
    return m.group(1)


async def post_form(
    client: httpx.AsyncClient, url: str, data: dict, *, page: str | None = None, htmx: bool = False
):
    token = await csrf_token(client, page or url)
    headers = {"HX-Request": "true"} if htmx else {}
    return await client.post(url, data={**data, "_csrf_token": token}, headers=headers)
