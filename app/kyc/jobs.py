"""KYC's background work: the daily expiry pass (reminders before, lower rights after), risk
reassessments and the screening of corporate clients' directors and owners."""

from __future__ import annotations

from app.core import jobs
from app.core.errors import NotFound
from app.kyc import corporate_screening, expiry, risk


@jobs.cron("20 5 * * *", timeout=1800)
async def kyc_expiry_daily(ctx: dict) -> dict[str, int]:
    """Idempotent: each document is claimed by a conditional UPDATE, so a rerun sends nothing twice."""
    return await expiry.run_daily()


# --- risk and corporate screening (app.kyc.risk, app.kyc.corporate) -------------------------------


@jobs.job
async def kyc_risk_reassess_clients(ctx: dict, *, client_ids: list[int], reason: str) -> int:
    """After a screening or a sanctions decision committed: those clients' risk. Safe to repeat."""
    for client_id in client_ids:
        try:
            await risk.reassess(int(client_id), risk.ACTOR, reason)
        except NotFound:
            continue
    return len(client_ids)


@jobs.job
async def kyc_risk_reassess_many(ctx: dict, *, country: str = "") -> int:
    """After the country list or the risk model changed: every client concerned, batch by batch."""
    done, after = 0, 0
    while True:
        count, last = await risk.reassess_many(country=country, after_id=after)
        done += count
        if last is None:
            return done
        after = last


@jobs.cron("*/15 * * * *", timeout=900)
async def kyc_risk_sweep(ctx: dict) -> int:
    """Clients never assessed: registered before the model, while no sanctions list was loaded (the
    screening job then has nothing to record), or whose job was lost."""
    total = 0
    while count := await risk.reassess_unassessed():
        total += count
    return total


@jobs.job
async def kyc_screen_related_person(ctx: dict, *, person_id: int) -> str:
    """Enqueued after a director or owner is declared or changed."""
    return await corporate_screening.screen(person_id)


@jobs.job
async def kyc_screen_company(ctx: dict, *, client_id: int) -> str:
    """Enqueued after a company is declared or renamed."""
    return await corporate_screening.screen_company(client_id)


@jobs.cron("*/5 * * * *", timeout=600)
async def kyc_related_persons_sweep(ctx: dict) -> int:
    """Directors and owners no job screened since their last change (a lost job, no list loaded)."""
    ids = await corporate_screening.unscreened()
    for person_id in ids:
        await corporate_screening.screen(person_id)
    return len(ids)
