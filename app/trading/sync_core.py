"""What deal sync and state sync share: the per-server sync row, locks, the server's clock, and
how successes and failures are written down for ops.

Every figure ops see on /staff/accounts/sync comes from `trading_sync_state`, written here. A
failure is recorded in its own short transaction (never inside the one that failed), so an outage
is visible while it lasts and the next successful run clears the status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg

from app.core import db
from app.core.db import DB
from app.trading import platform as p

log = logging.getLogger(__name__)

T = TypeVar("T")

# pg_try_advisory_xact_lock(kind, server_id): one deal sync and one state sync per server at a time,
# whichever process runs it (the loop job, "sync now", a back-fill, the bench).
LOCK_DEALS = 0x5D01
LOCK_STATES = 0x5D02
LOCK_LOOP = 0x5D03

DEALS = "deals"
STATES = "states"


@dataclass(frozen=True)
class State:
    """The sync row of one server, as read at the start of a run."""

    server_id: int
    last_deal_time: int
    last_deal_ticket: int
    clock_offset_seconds: int
    status: str
    deals_total: int
    deals_synced_at: datetime | None


@dataclass(frozen=True)
class Account:
    id: int
    client_id: int
    login: int
    status: str


async def ensure_state(server_id: int) -> State:
    """The server's sync row, created on first use (a new server starts from its full history)."""
    sql = (
        "SELECT last_deal_time, last_deal_ticket, clock_offset_seconds, status, deals_total, deals_synced_at "
        "FROM trading_sync_state WHERE server = $1"
    )
    row = await db.fetchrow(sql, server_id)
    if row is None:
        await db.fetch(
            "INSERT INTO trading_sync_state (server, last_deal_time, last_deal_ticket, clock_offset_seconds, "
            "last_error, errors_total, deals_total, status) VALUES ({}, 0, 0, 0, '', 0, 0, 'idle') "
            "ON CONFLICT (server) DO NOTHING",
            server_id,
        )
        row = await db.fetchrow(sql, server_id)
    assert row is not None
    return State(server_id, **row)


async def server_row(server_id: int) -> dict[str, Any] | None:
    return await db.fetchrow("SELECT id, name, active FROM trading_servers WHERE id = $1", server_id)


async def accounts_of(server_id: int, *, active_only: bool) -> list[Account]:
    """Accounts with a login on this server. Deals are read for every one of them (an archived
    account's late deals still belong in the books); states only for active ones."""
    sql = (
        "SELECT id, client AS client_id, login, status FROM trading_accounts "
        "WHERE server = $1 AND login IS NOT NULL"
    )
    if active_only:
        sql += " AND status = 'active'"
    conn_rows = await _raw_fetch(sql + " ORDER BY login", server_id)
    return [Account(r["id"], r["client_id"], r["login"], r["status"]) for r in conn_rows]


async def _raw_fetch(sql: str, *args: Any) -> list[dict[str, Any]]:
    assert DB.pool is not None, "database pool not started"
    async with DB.pool.acquire() as conn:
        return [dict(r) for r in await conn.fetch(sql, *args)]


class _LockKeeper:
    """Session advisory locks on one connection of this process's own, outside the pool.

    A run must not hold a pooled connection just for its lock while it waits for more pooled
    connections to do its work: a few servers synced in one worker (pool of 8) could then take
    every connection and wait for each other forever. If this connection drops, PostgreSQL
    releases its locks; at worst another process then repeats some work, which sync tolerates
    (every write is idempotent), and the next run reconnects."""

    def __init__(self) -> None:
        self.conn: asyncpg.Connection | None = None
        self.url = ""
        self.mutex: asyncio.Lock | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.held: set[tuple[int, int]] = set()

    async def _run(self, sql: str, kind: int, server_id: int) -> bool:
        loop = asyncio.get_running_loop()
        if self.mutex is None or self.loop is not loop:  # a connection belongs to one event loop
            self.mutex, self.loop, self.conn = asyncio.Lock(), loop, None
        async with self.mutex:
            if self.conn is None or self.conn.is_closed() or self.url != db.current_url():
                if self.conn is not None and not self.conn.is_closed():
                    await self.conn.close()
                self.url = db.current_url()
                self.conn = await asyncpg.connect(dsn=self.url)
            return bool(await self.conn.fetchval(sql, kind, server_id))

    async def acquire(self, kind: int, server_id: int) -> bool:
        key = (kind, server_id)
        if key in self.held:  # the same session would be granted its own lock again
            return False
        self.held.add(key)
        try:
            got = await self._run("SELECT pg_try_advisory_lock($1, $2)", kind, server_id)
        except BaseException:
            self.held.discard(key)
            raise
        if not got:
            self.held.discard(key)
        return got

    async def release(self, kind: int, server_id: int) -> None:
        self.held.discard((kind, server_id))
        try:
            await self._run("SELECT pg_advisory_unlock($1, $2)", kind, server_id)
        except Exception:
            log.warning("could not release sync lock %s/%s; dropping the lock connection", kind, server_id)
            if self.conn is not None:
                self.conn.terminate()


_locks = _LockKeeper()


@asynccontextmanager
async def server_lock(kind: int, server_id: int) -> AsyncIterator[bool]:
    """Yields whether this run holds the (kind, server) lock, in this process and across processes
    (the loop job, "sync now", a back-fill, the bench). Released however the run ends."""
    got = await _locks.acquire(kind, server_id)
    try:
        yield got
    finally:
        if got:
            await asyncio.shield(_locks.release(kind, server_id))


async def uncancellable(work: Awaitable[T]) -> T:
    """Run `work` (a transaction) to its end even when the caller is cancelled (the loop stopping,
    a sibling chunk failing, a job timeout): a Piccolo transaction cancelled while it commits never
    hands its connection back to the pool, which then hangs on close."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_retrieve)
        raise


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("sync write finished after its run was cancelled: %s", task.exception())


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def measure_clock(platform: p.TradingPlatform) -> int:
    """Platform time minus UTC, in whole seconds.

    MT5 reports its clock in whole seconds (often the broker's time zone, so hours off UTC). The
    server's second is taken to be half elapsed at the midpoint of the round trip, which makes the
    estimate exact for whole-second offsets unless the round trip itself exceeds a second.
    """
    before = time.time()
    server = await platform.server_time()
    after = time.time()
    return round(server + 0.5 - (before + after) / 2)


def error_text(exc: BaseException) -> str:
    if isinstance(exc, p.PlatformError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"[:500]


async def record_error(server_id: int, kind: str, exc: BaseException) -> None:
    """Status `error` with the message ops see; never raises (it runs while handling a failure)."""
    try:
        await uncancellable(
            db.fetch(
                "UPDATE trading_sync_state SET status = 'error', last_error = {}, last_error_at = {}, "
                "errors_total = errors_total + 1 WHERE server = {}",
                f"{kind}: {error_text(exc)}",
                datetime.now(UTC),
                server_id,
            )
        )
    except Exception:
        log.exception("could not record the sync error of server %s", server_id)


async def record_states_ok(server_id: int) -> None:
    """A successful state sync clears an `error` status only when the error was its own, so a
    working state sync does not hide a failing deal sync."""
    await db.fetch(
        "UPDATE trading_sync_state SET states_synced_at = {}, last_ok_at = {}, "
        "status = CASE WHEN status = 'error' AND last_error NOT LIKE 'states:%' THEN status "
        "WHEN status IN ('idle', 'error') THEN 'ok' ELSE status END WHERE server = {}",
        datetime.now(UTC),
        datetime.now(UTC),
        server_id,
    )


def ids_by_login(accounts: Iterable[Account]) -> dict[int, Account]:
    return {a.login: a for a in accounts}
