"""Transfers in the background. Sending and re-sending their MT5 legs is the trading sweep's work
(`app.trading.operation_jobs`): the ledger follows in the operation's transaction. What is left
here is the safety net behind that: a transfer left `pending` after its operation settled."""

from __future__ import annotations

from app.core import jobs
from app.funding import transfers


@jobs.cron("*/10 * * * *", timeout=600)
async def funding_transfers_orphans(ctx: dict) -> int:
    return await transfers.finish_orphans()
