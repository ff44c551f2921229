"""KYC's scheduled work: the daily expiry pass (reminders before, lower rights after)."""

from __future__ import annotations

from app.core import jobs
from app.kyc import expiry


@jobs.cron("20 5 * * *", timeout=1800)
async def kyc_expiry_daily(ctx: dict) -> dict[str, int]:
    """Idempotent: each document is claimed by a conditional UPDATE, so a rerun sends nothing twice."""
    return await expiry.run_daily()
