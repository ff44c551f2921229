"""Keeping the CRM in step with each trading server: the services and the per-server loop.

- `sync_deals(server_id)` (`sync_deals.py`): new deals, incremental, stored once, gaps detected.
- `sync_states(server_id)` (`sync_states.py`): balances, equity, margin, positions; live events.
- `backfill(server_id, hours)`: re-read recent hours for deals the incremental runs missed.
- `run_loop(server_id)`: what the worker runs for each active server, deals every second and
  states every 1.5 s, for as long as the server is active.

Why a long-running loop rather than a job that re-enqueues itself each second: SAQ schedules in
whole seconds and its worker looks for due jobs once a second, so a self-rescheduling job would
run every 1–2 s plus queue overhead, and it cannot enqueue its own key while it is still active.
Live figures within ~2 s of the server need a steadier beat. One loop per server is guaranteed by a
session advisory lock held for its whole life (on a connection of its own: if the worker dies, the
connection and the lock go with it); the job's heartbeat lets SAQ's sweep requeue a loop whose
worker vanished, and the `trading_sync_ensure` cron starts any loop that is missing within seconds.
Each run inside also takes its own per-server lock, so "sync now", a back-fill or the bench running
beside the loop never does the same work twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from app.core import db
from app.trading.sync_core import LOCK_LOOP, error_text, server_row
from app.trading.sync_deals import DealsResult, backfill, backfill_logins, sync_deals
from app.trading.sync_states import StatesResult, sync_states

__all__ = [
    "DealsResult",
    "StatesResult",
    "backfill",
    "backfill_logins",
    "run_loop",
    "sync_deals",
    "sync_once",
    "sync_states",
]

log = logging.getLogger(__name__)

DEALS_EVERY = 1.0
STATES_EVERY = 1.5
CHECK_EVERY = 10.0  # seconds between heartbeats / checks that the server is still active
MAX_BACKOFF = 30.0
STOP_GRACE = 30.0


async def sync_once(server_id: int) -> tuple[DealsResult, StatesResult]:
    """Deals then states, once ("sync now", the CLI, tests)."""
    return await sync_deals(server_id), await sync_states(server_id)


async def run_loop(
    server_id: int,
    *,
    touch: Callable[[], Awaitable[Any]] | None = None,
    stop: asyncio.Event | None = None,
    deals_every: float = DEALS_EVERY,
    states_every: float = STATES_EVERY,
) -> str:
    """Sync one server until it is deactivated or deleted, `stop` is set, or the task is cancelled.

    Returns why it ended. Refuses to start ("already running") when another loop holds the server."""
    stop = stop or asyncio.Event()
    conn = await asyncpg.connect(dsn=db.current_url())
    try:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_LOOP, server_id):
            return "already running"
        row = await server_row(server_id)
        if row is None or not row["active"]:
            return "server inactive"
        log.info("sync loop for trading server %s started", server_id)
        tasks = [
            asyncio.create_task(_beat(server_id, "deals", sync_deals, deals_every, stop)),
            asyncio.create_task(_beat(server_id, "states", sync_states, states_every, stop, rest=1.0)),
        ]
        why = "stopped"
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=CHECK_EVERY)
                except TimeoutError:
                    pass
                if touch is not None:
                    await touch()
                if conn.is_closed():
                    why = "lock connection lost"
                    break
                row = await server_row(server_id)
                if row is None or not row["active"]:
                    why = "server inactive"
                    break
        finally:
            # Let the runs in progress finish (a run cut short only repeats, but finishing is cleaner);
            # cancel what is still running after the grace period.
            stop.set()
            _done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        log.info("sync loop for trading server %s ended: %s", server_id, why)
        return why
    finally:
        if not conn.is_closed():
            await conn.close()  # closing the session releases its advisory lock


async def _beat(
    server_id: int,
    what: str,
    run: Callable[[int], Awaitable[Any]],
    every: float,
    stop: asyncio.Event,
    rest: float = 0.0,
) -> None:
    """Run `run` every `every` seconds (from start to start), but rest at least `rest` times as
    long as the run took: on a big server a state run (every account read and compared) can take
    a second, and back-to-back state runs would starve the deal runs sharing this process, whose
    lag matters more. After a failure wait longer each time (1, 2, 4 … 30 s), so an unreachable
    server is not hammered; back to the normal beat after the first success. Errors are already
    recorded for ops by the services."""
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            await run(server_id)
            failures = 0
            took = time.monotonic() - started
            wait = max(every - took, rest * took)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            wait = min(MAX_BACKOFF, every * 2 ** min(failures - 1, 5))
            log.warning("%s sync of trading server %s failed (%s); next try in %.0f s", what, server_id,
                        error_text(exc), wait)  # fmt: skip
        if wait > 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass
