"""Screening jobs: a new client (or lead), a console upload, a re-screening of everyone, and a sweep
for work whose job was lost. Thin wrappers over the services; each is safe to run twice."""

from __future__ import annotations

import logging
from typing import Any

from app.core import db, jobs
from app.core.errors import NotFound
from app.screening import lists, runs, services

log = logging.getLogger(__name__)

CLIENT_JOB = "screening_screen_client"


@jobs.job
async def screening_screen_client(ctx: dict, *, client_id: int) -> dict[str, Any]:
    """Enqueued after a registration or lead capture commits (and whenever a name changes)."""
    try:
        result = await services.screen_client(client_id, services.ACTOR)
    except NotFound:
        return {"status": "no such client"}
    return {"status": "screened", "hits": len(result.hits), "cases": result.case_ids}


@jobs.job
async def screening_load_upload(ctx: dict, *, upload_id: int) -> str:
    return await lists.process_upload(upload_id)


@jobs.job
async def screening_rescreen(ctx: dict, *, run_id: int) -> dict[str, Any]:
    """Every client against the active releases; a retry resumes after the last committed batch."""
    job = ctx.get("job")
    touch = job.update if job is not None else None
    try:
        return await runs.process(run_id, touch=touch)
    except Exception as exc:
        if job is None or job.attempts >= job.retries:
            await runs.fail(run_id, f"{type(exc).__name__}: {exc}")
        raise


@jobs.cron("*/2 * * * *")
async def screening_sweep(ctx: dict) -> int:
    """Queue again the runs and uploads whose job was lost; the job keys stop doubles."""
    queue = jobs.get_queue()
    if queue is None:
        return 0
    await db.fetch(
        "UPDATE screening_uploads SET status = 'queued' WHERE status = 'loading' "
        "AND created_at < now() - interval '30 minutes'"
    )
    count = 0
    for r in await db.fetch(runs.stalled_sql()):
        await queue.enqueue(
            lists.RESCREEN_JOB,
            key=f"screening-rescreen:{r['id']}",
            run_id=r["id"],
            timeout=3600,
            heartbeat=600,
        )
        count += 1
    for r in await db.fetch(
        "SELECT id FROM screening_uploads WHERE status = 'queued' AND created_at < now() - interval '1 minute'"
    ):
        await queue.enqueue(
            lists.UPLOAD_JOB, key=f"screening-upload:{r['id']}", upload_id=r["id"], timeout=1800
        )
        count += 1
    return count
