"""Deposit background work, each minute: webhook events still to process, card deposits whose
webhook never came (ask the provider), and paid deposits that waited for an exchange rate."""

from __future__ import annotations

from app.core import jobs
from app.core.audit import Actor
from app.funding import deposit_events, deposits
from app.settings import get_settings

SYSTEM = Actor.system("deposit sweeps")


@jobs.cron("* * * * *", timeout=120)
async def funding_webhook_sweep(ctx: dict) -> int:
    """Safe to overlap: the inbox claims each event with FOR UPDATE SKIP LOCKED."""
    return await deposit_events.sweep_webhooks()


@jobs.cron("* * * * *", timeout=120)
async def funding_deposit_stale_check(ctx: dict) -> int:
    """Missed webhooks: the provider's own answer settles the deposit (idempotently)."""
    return await deposit_events.check_stale(SYSTEM, get_settings().payments.stale_minutes)


@jobs.cron("*/5 * * * *", timeout=120)
async def funding_deposit_awaiting_rate(ctx: dict) -> int:
    """Paid deposits left pending without a rate: completed once finance records one."""
    return await deposits.retry_awaiting(SYSTEM)
