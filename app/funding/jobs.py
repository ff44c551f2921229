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
async def funding_reconcile_now(ctx: dict, *, requested_by: str, requested_by_id: str = "") -> int:
    """The console's "reconcile now" button for a large book (`app.funding.reconcile_runs`):
    the officer who pressed it travels as the run's trigger and the audit's actor."""
    actor = Actor(kind="staff", id=requested_by_id or None, label=requested_by)
    return await reconcile.run_reconciliation(actor)
