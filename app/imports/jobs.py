"""The import's background job, and a sweep for runs whose job was lost."""

from __future__ import annotations

import logging
from typing import Any

from app.core import db, jobs
from app.imports import runner, services

log = logging.getLogger(__name__)


@jobs.job
async def run_client_import(ctx: dict, *, run_id: int) -> str:
    """Idempotent: resumes at the committed position. On its last attempt a failure ends the run."""
    job = ctx.get("job")
    touch = job.update if job is not None else None
    try:
        return await runner.run_import(run_id, touch=touch)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        if job is None or job.attempts >= job.retries:
            await runner.fail(run_id, f"The import stopped: {message}")
            raise
        await runner.note_error(run_id, f"A batch failed and will be retried: {message}")
        raise


@jobs.cron("* * * * *")
async def sweep_client_imports(ctx: dict) -> int:
    """Queue the runs that are unfinished (an enqueue lost with a crash); the job key stops doubles."""
    queue = jobs.get_queue()
    if queue is None:
        return 0
    rows = await db.fetch(runner.unfinished_sql())
    for r in rows:
        job: Any = await queue.enqueue(
            services.JOB,
            key=f"client-import:{r['id']}",
            run_id=r["id"],
            timeout=3600,
            heartbeat=300,
            retries=5,
            retry_delay=2.0,
            retry_backoff=True,
        )
        if job is not None:
            log.info("re-queued client import %s", r["id"])
    return len(rows)
