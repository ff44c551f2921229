"""Re-screening every client when a release is loaded: batches, progress, resumable.

The job claims its run with a conditional UPDATE and moves `position` (the last client id handled)
in the same transaction as each batch's cases, so a retried or resumed job never screens a batch
twice and a crash loses at most the batch in flight. Each batch publishes `screening.progress` to
compliance (and administrators), whose screening page shows the bar move.

The match index over the active releases is built once in the worker and kept in memory, so a
client costs a few dictionary look-ups and the fuzzy scoring of the few names that share blocking
keys with theirs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.core import audit, db, live
from app.core.db import transaction
from app.screening import lists
from app.screening.lists import PROGRESS_TOPICS
from app.screening.matching import ListIndex, Subject
from app.screening.services import ACTOR, Screened, record_screening, threshold

BATCH = 5000
STALLED_AFTER_SECONDS = 600


class Superseded(Exception):
    """A newer run took over (another release was loaded): this one stops."""


def _screen_batch(index: ListIndex, rows: list[dict[str, Any]], level: int) -> list[Screened]:
    out = []
    for r in rows:
        subject = Subject(
            name=f"{r['first_name']} {r['last_name']}",
            dob=r["date_of_birth"].isoformat() if r["date_of_birth"] else None,
            nationalities=(r["nationality"],) if r["nationality"] else (),
            country=(r["country"] or "").upper(),
        )
        out.append(Screened("client", r["id"], r["id"], subject, index.screen(subject, level)))
    return out


async def process(run_id: int, *, touch: Callable[[], Awaitable[Any]] | None = None) -> dict[str, Any]:
    """Run (or resume) a re-screening to its end; returns its figures."""
    started = time.monotonic()
    run = await db.fetchrow(
        "UPDATE screening_runs SET status = 'running', started_at = coalesce(started_at, now()), updated_at = now(), "
        "total = (SELECT count(*) FROM clients) WHERE id = $1 AND status IN ('queued', 'running') "
        "RETURNING id, position, sanctions_list",
        run_id,
    )
    if run is None:
        return {"status": "not runnable"}
    position = int(run["position"])
    level = threshold()
    try:
        while True:
            active = [r["id"] for r in await lists.active_lists()]
            if not active:
                break
            index = await lists.index_for(active)
            rows = await db.fetch(
                "SELECT c.id, c.first_name, c.last_name, c.country, k.date_of_birth, k.nationality "
                "FROM clients c LEFT JOIN kyc_profiles k ON k.client = c.id WHERE c.id > {} ORDER BY c.id LIMIT {}",
                position,
                BATCH,
            )
            if not rows:
                break
            before = index.stats.pairs_scored
            screened = await asyncio.to_thread(_screen_batch, index, rows, level)
            pairs = index.stats.pairs_scored - before
            hits = sum(len(s.hits) for s in screened)
            position = rows[-1]["id"]
            async with transaction():
                opened = await record_screening(screened, active, ACTOR, audit_each=False)
                moved = await db.fetch(
                    "UPDATE screening_runs SET position = {}, done = done + {}, hits = hits + {}, "
                    "cases_opened = cases_opened + {}, pairs_scored = pairs_scored + {}, updated_at = now() "
                    "WHERE id = {} AND status = 'running' RETURNING id",
                    position,
                    len(rows),
                    hits,
                    len(opened),
                    pairs,
                    run_id,
                )
                if not moved:
                    raise Superseded
                for topic in PROGRESS_TOPICS:
                    await live.publish(topic, "screening.progress", run_id=run_id)
            if touch is not None:
                await touch()
    except Superseded:
        return {"status": "superseded"}
    async with transaction():
        final = await db.fetchrow(
            "UPDATE screening_runs SET status = 'finished', finished_at = now(), updated_at = now() "
            "WHERE id = $1 AND status = 'running' RETURNING total, done, hits, cases_opened, pairs_scored",
            run_id,
        )
        if final is None:
            return {"status": "superseded"}
        figures = {k: int(final[k]) for k in ("total", "done", "hits", "cases_opened", "pairs_scored")}
        await audit.record(ACTOR, "screening.rescreen_finished", "screening_run", run_id, after=figures)
        for topic in PROGRESS_TOPICS:
            await live.publish(topic, "screening.progress", run_id=run_id)
    return {"status": "finished", "seconds": round(time.monotonic() - started, 1), **figures}


async def fail(run_id: int, message: str) -> None:
    async with transaction():
        await db.fetch(
            "UPDATE screening_runs SET status = 'failed', error = {}, updated_at = now() WHERE id = {} "
            "AND status IN ('queued', 'running')",
            message[:2000],
            run_id,
        )
        await audit.record(
            ACTOR, "screening.rescreen_failed", "screening_run", run_id, after={"error": message[:500]}
        )
        for topic in PROGRESS_TOPICS:
            await live.publish(topic, "screening.progress", run_id=run_id)


async def latest() -> dict[str, Any] | None:
    """The most recent run, shaped for the progress bar."""
    row = await db.fetchrow(
        "SELECT r.id, r.status, r.total, r.done, r.hits, r.cases_opened, r.pairs_scored, r.error, r.created_at, "
        "r.started_at, r.finished_at, l.source, l.version FROM screening_runs r "
        "JOIN screening_lists l ON l.id = r.sanctions_list ORDER BY r.id DESC LIMIT 1"
    )
    if row is None:
        return None
    total = max(int(row["total"]), int(row["done"]), 1)
    row["percent"] = 100 if row["status"] == "finished" else min(99, int(100 * row["done"] / total))
    return row


def stalled_sql() -> str:
    """Runs whose job was lost (never delivered, or a worker died mid-run): the sweep queues them again."""
    return (
        "SELECT id FROM screening_runs WHERE (status = 'queued' AND created_at < now() - interval '1 minute') "
        f"OR (status = 'running' AND updated_at < now() - interval '{STALLED_AFTER_SECONDS} seconds') ORDER BY id"
    )
