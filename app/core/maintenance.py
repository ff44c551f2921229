"""Scheduled housekeeping: expired sessions and old login attempts."""

from __future__ import annotations

from datetime import timedelta

from app.core import jobs
from app.core.auth import sessions, throttle


@jobs.cron("*/5 * * * *")
async def purge_sessions(ctx: dict) -> int:
    """Expired sessions are useless and only grow the table; login attempts older than a day too."""
    removed = await sessions.purge_expired()
    await throttle.purge_older_than(timedelta(days=1))
    return removed
