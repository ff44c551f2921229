"""Client jobs: lifecycle upkeep (active clients who stopped coming become dormant, and back)
and large bulk actions from the staff client list.

Until trading exists, activity means logging in to the portal (the issue's interim rule).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.clients import bulk
from app.clients.lifecycle import change_stage
from app.core import db, jobs
from app.core.audit import Actor
from app.core.errors import FormErrors
from app.settings import get_settings

BATCH = 500

# Active, and neither a login nor the move to active within the window.
_GONE_QUIET = (
    "SELECT id FROM clients WHERE stage = 'active' AND id > {} "
    "AND COALESCE(last_login_at, created_at) < {} AND stage_changed_at < {} ORDER BY id LIMIT {}"
)
# Dormant, with a login within the window that came after they became dormant (so a client
# staff marked dormant last week is not flipped back by a login from before that decision).
_CAME_BACK = (
    "SELECT id FROM clients WHERE stage = 'dormant' AND id > {} "
    "AND last_login_at >= {} AND last_login_at > stage_changed_at ORDER BY id LIMIT {}"
)


async def recompute_dormancy(days: int | None = None, *, now: datetime | None = None) -> dict[str, int]:
    """Idempotent: a second run finds nobody to move. Each client moves in its own transaction,
    through `change_stage`, which re-reads the stage under the row lock."""
    days = days if days is not None else get_settings().dormant_after_days
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    actor = Actor.system("dormancy job")
    moved = {"dormant": 0, "active": 0}
    passes = (
        ("dormant", _GONE_QUIET, (cutoff, cutoff), f"No login for {days} days."),
        ("active", _CAME_BACK, (cutoff,), "Logged in again."),
    )
    for to_stage, sql, params, reason in passes:
        last_id = 0
        while True:
            rows = await db.fetch(sql, last_id, *params, BATCH)
            for row in rows:
                try:
                    await change_stage(row["id"], to_stage, actor, reason=reason)
                except FormErrors:  # the client moved elsewhere meanwhile (e.g. churned by staff)
                    continue
                moved[to_stage] += 1
            if len(rows) < BATCH:
                break
            last_id = rows[-1]["id"]
    return moved


@jobs.cron("17 * * * *")
async def recompute_client_dormancy(ctx: dict) -> dict[str, int]:
    return await recompute_dormancy()


@jobs.job
async def run_client_bulk(ctx: dict, *, run_id: int) -> dict[str, int]:
    """A bulk action over more clients than a request should wait for; a retry resumes where it stopped."""
    return await bulk.process(run_id)


@jobs.cron("*/5 * * * *")
async def resume_stalled_bulk_runs(ctx: dict) -> int:
    """Bulk runs whose job was never delivered or died half-way carry on from their position."""
    return await bulk.resume_stalled()
