"""Trading sync jobs: one long-running loop per active server, kept alive by a cron that runs every
ten seconds, a "sync now" job for the console, and the hourly deal back-fill. Thin wrappers over
`app.trading.sync` (why a loop and not a self-rescheduling job: see that module)."""

from __future__ import annotations

import logging
from typing import Any

from app.core import db, jobs
from app.trading import sync

log = logging.getLogger(__name__)

LOOP_JOB = "trading_sync_loop"
NOW_JOB = "trading_sync_now"


def loop_key(server_id: int) -> str:
    return f"trading-sync:{server_id}"


@jobs.job
async def trading_sync_loop(ctx: dict, *, server_id: int) -> str:
    """Runs until the server is deactivated (or the worker stops: SAQ then queues it again)."""
    job = ctx.get("job")
    return await sync.run_loop(server_id, touch=job.update if job is not None else None)


@jobs.job
async def trading_sync_now(ctx: dict, *, server_id: int) -> dict[str, Any]:
    """One deal run and one state run at once (the console's "sync now"), and the loop ensured."""
    await enqueue_loops([server_id])
    deals, states = await sync.sync_once(server_id)
    return {
        "deals_inserted": deals.inserted,
        "deals_skipped": deals.skipped,
        "accounts_changed": states.accounts_changed,
    }


@jobs.cron("* * * * * */10")
async def trading_sync_ensure(ctx: dict) -> int:
    """Start the loop of every active server that has none (new server, lost job, worker restart).
    The job key makes this a no-op while a loop is queued or running."""
    rows = await db.fetch("SELECT id FROM trading_servers WHERE active ORDER BY id")
    return await enqueue_loops([r["id"] for r in rows])


@jobs.cron("17 * * * *", timeout=3600)
async def trading_sync_backfill(ctx: dict) -> dict[int, int]:
    """Re-read the last hours of deals of each active server for anything the loop missed."""
    found: dict[int, int] = {}
    for r in await db.fetch("SELECT id FROM trading_servers WHERE active ORDER BY id"):
        try:
            found[r["id"]] = (await sync.backfill(r["id"])).inserted
        except Exception:
            log.warning("deal back-fill of trading server %s failed", r["id"], exc_info=True)
    return found


async def enqueue_loops(server_ids: list[int]) -> int:
    queue = jobs.get_queue()
    if queue is None:
        return 0
    started = 0
    for server_id in server_ids:
        job = await queue.enqueue(
            LOOP_JOB,
            key=loop_key(server_id),
            server_id=server_id,
            timeout=0,  # runs for as long as the server is active
            heartbeat=60,  # the loop touches the job every 10 s; a vanished worker's loop is requeued
            retries=1_000_000,
            retry_delay=5.0,
        )
        started += job is not None
    return started
