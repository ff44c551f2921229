"""SAQ on PostgreSQL: the queue, job registration, enqueue-after-commit and the worker.

Jobs are thin wrappers over services and must be idempotent: each claims its work with a
conditional UPDATE, so a retried or duplicated job does nothing the second time.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from saq import CronJob, Queue
from saq.queue.postgres import PostgresQueue

from app.core import db

log = logging.getLogger(__name__)

JOB_MODULES: tuple[str, ...]
JOB_MODULES = ("app.core.mail", "app.core.maintenance", "app.clients.jobs")
JOB_MODULES += ("app.routing.jobs",)
JOB_MODULES += ("app.imports.jobs",)
JOB_MODULES += ("app.kyc.jobs",)
JOB_MODULES += ("app.screening.jobs",)
JOB_MODULES += ("app.trading.operation_jobs",)
JOB_MODULES += ("app.trading.jobs",)
JOB_MODULES += ("app.funding.jobs", "app.funding.deposit_jobs", "app.funding.crypto_jobs")
JOB_MODULES += ("app.funding.withdrawal_jobs", "app.funding.transfer_jobs")

_functions: dict[str, Callable[..., Any]] = {}
_crons: list[CronJob] = []
_queue: Queue | None = None


def job(fn: Callable[..., Any]) -> Callable[..., Any]:
    _functions[fn.__name__] = fn
    return fn


def cron(schedule: str, *, timeout: int = 300) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        _functions[fn.__name__] = fn
        _crons.append(CronJob(fn, cron=schedule, timeout=timeout, unique=True))
        return fn

    return wrap


def load_job_modules() -> None:
    for name in JOB_MODULES:
        importlib.import_module(name)


def make_queue(url: str) -> PostgresQueue:
    return PostgresQueue.from_url(url, name="fxcrm", min_size=1, max_size=4)


async def connect(url: str) -> Queue:
    global _queue
    if _queue is None:
        _queue = make_queue(url)
        await _queue.connect()
    return _queue


async def disconnect() -> None:
    global _queue
    if _queue is not None:
        await _queue.disconnect()
        _queue = None


def get_queue() -> Queue | None:
    return _queue


def enqueue_after_commit(function: str, *, key: str | None = None, retries: int = 5, **kwargs: Any) -> None:
    """Enqueue once the surrounding transaction commits. A lost enqueue is caught by the sweeps."""

    async def send() -> None:
        queue = _queue
        if queue is None:
            log.info("no queue connected in this process; %s will be picked up by its sweep", function)
            return
        await queue.enqueue(function, key=key, retries=retries, retry_delay=2.0, retry_backoff=True, **kwargs)

    db.after_commit(send)


async def heartbeat(worker_id: str, started_at: datetime, stop: asyncio.Event, every: float = 5.0) -> None:
    from app.core.tables import WorkerHeartbeat

    host, pid = socket.gethostname(), os.getpid()
    while not stop.is_set():
        try:
            now = datetime.now(UTC)
            await WorkerHeartbeat.raw(
                "INSERT INTO worker_heartbeats (worker_id, hostname, pid, started_at, seen_at) "
                "VALUES ({}, {}, {}, {}, {}) ON CONFLICT (worker_id) DO UPDATE SET seen_at = EXCLUDED.seen_at",
                worker_id,
                host,
                pid,
                started_at,
                now,
            )
        except Exception:
            log.exception("worker heartbeat failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            pass


async def run_worker(url: str, concurrency: int = 8) -> None:
    """Run a SAQ worker (with its cron schedule) until cancelled."""
    from saq import Worker

    load_job_modules()
    queue = await connect(url)
    stop = asyncio.Event()
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    beat = asyncio.create_task(heartbeat(worker_id, datetime.now(UTC), stop))
    worker = Worker(
        queue, functions=list(_functions.values()), cron_jobs=list(_crons), concurrency=concurrency
    )
    try:
        await worker.start()
    finally:
        stop.set()
        await beat
        await worker.stop()


async def health() -> dict[str, Any]:
    """Queue figures for the admin console and /readyz."""
    from app.core.tables import WorkerHeartbeat

    rows = (
        await db.fetch("SELECT status, count(*) AS n FROM saq_jobs WHERE queue = {} GROUP BY status", "fxcrm")
        if await _table_exists("saq_jobs")
        else []
    )
    counts = {r["status"]: r["n"] for r in rows}
    workers = await WorkerHeartbeat.select().order_by(WorkerHeartbeat.seen_at, ascending=False).limit(20)
    now = datetime.now(UTC)
    for w in workers:
        w["age_seconds"] = int((now - w["seen_at"]).total_seconds())
    return {
        "queued": counts.get("queued", 0),
        "active": counts.get("active", 0),
        "failed": counts.get("failed", 0),
        "aborted": counts.get("aborted", 0),
        "complete": counts.get("complete", 0),
        "workers": workers,
        "last_heartbeat_age": workers[0]["age_seconds"] if workers else None,
    }


async def _table_exists(name: str) -> bool:
    rows = await db.fetch("SELECT to_regclass({}) AS t", name)
    return bool(rows and rows[0]["t"])
