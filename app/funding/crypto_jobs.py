"""The chain feed poller: once a minute a job polls the feed every few seconds for most of the
minute, so confirmations reach the portal within seconds without a second-level scheduler.
`crypto.poll` itself is idempotent (items once per tx hash, cursor stored after they are in), so an
overlapping or retried run does nothing twice."""

from __future__ import annotations

import asyncio
import logging
import time

from app.core import jobs
from app.core.audit import Actor
from app.funding import crypto
from app.funding.providers import ProviderError

log = logging.getLogger(__name__)

SYSTEM = Actor.system("crypto feed")
EVERY_SECONDS = 5.0
RUN_FOR_SECONDS = 50.0


async def poll_for(seconds: float, every: float = EVERY_SECONDS) -> int:
    """Poll repeatedly for `seconds`; how many feed items were applied. An unreachable chain is
    logged once and tried again by the next run."""
    applied = 0
    deadline = time.monotonic() + seconds
    while True:
        try:
            applied += (await crypto.poll(SYSTEM)).items
        except ProviderError as exc:  # tried again by next minute's run, not every few seconds
            log.warning("crypto feed: %s", exc.message)
            return applied
        if time.monotonic() + every > deadline:
            return applied
        await asyncio.sleep(every)


@jobs.cron("* * * * *", timeout=90)
async def funding_crypto_poll(ctx: dict) -> int:
    return await poll_for(RUN_FOR_SECONDS)
