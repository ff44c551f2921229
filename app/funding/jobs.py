"""Funding's background work: the daily reconciliation finance reads in the morning."""

from __future__ import annotations

from app.core import jobs
from app.core.audit import Actor
from app.funding import reconcile

SYSTEM = Actor.system("funding reconciliation")


@jobs.cron("40 2 * * *", timeout=3600)
async def funding_reconcile_daily(ctx: dict) -> int:
    """Safe to repeat: a run only reads the ledger and stores what it found."""
    return await reconcile.run_reconciliation(SYSTEM)


@jobs.job
async def funding_reconcile_now(ctx: dict, *, requested_by: str) -> int:
    """The console's "reconcile now" button (finance's label travels as the run's trigger)."""
    return await reconcile.run_reconciliation(Actor(kind="staff", label=requested_by))
