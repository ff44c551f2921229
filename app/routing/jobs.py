"""Scheduled routing upkeep: leads nobody touched go back to their desk's pool."""

from __future__ import annotations

from app.core import jobs
from app.routing.services import return_idle_leads


@jobs.cron("*/15 * * * *")
async def return_idle_leads_to_pool(ctx: dict) -> int:
    return await return_idle_leads()
