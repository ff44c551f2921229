"""Funding background jobs for withdrawals: the payout of an approved withdrawal, and the sweep
that finishes payouts whose job was lost or whose outcome is unknown (thin wrappers over
`app.funding.payouts`, which never pays twice however often they run)."""

from __future__ import annotations

from app.core import jobs
from app.funding import payouts


@jobs.job
async def pay_out_withdrawal(ctx: dict, *, withdrawal_id: int) -> str:
    return await payouts.pay_out(withdrawal_id)


@jobs.cron("* * * * *", timeout=300)
async def sweep_withdrawal_payouts(ctx: dict) -> dict[str, int]:
    return await payouts.sweep()
