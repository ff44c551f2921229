"""Figures for the console's overview page, chosen by what the viewer's roles may see."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.clients.tables import STAGES, Client
from app.core import jobs
from app.core.auth.principal import Principal
from app.core.tables import AuditEvent
from app.partners.tables import Partner

# The overview is the console's landing page, opened constantly and refreshed every 30 s by
# every open console; its figures may be a few seconds old, so one computation serves them all.
CACHE_SECONDS = 5.0
_cache: dict[frozenset[str], tuple[float, dict[str, Any]]] = {}
_locks: dict[frozenset[str], asyncio.Lock] = {}


async def for_staff(p: Principal) -> dict[str, Any]:
    key = frozenset(r for r in p.roles if r in ("admin", "compliance"))
    hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    # One computation at a time per key: when the figures expire under load, the requests that
    # arrive meanwhile wait for it instead of each running the same six queries.
    async with _locks.setdefault(key, asyncio.Lock()):
        hit = _cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1]
        data = await _compute(p)
        _cache[key] = (time.monotonic(), data)
        return data


async def _compute(p: Principal) -> dict[str, Any]:
    rows = await Client.raw("SELECT stage, count(*) AS n FROM clients GROUP BY stage")
    by_stage = {r["stage"]: r["n"] for r in rows}
    data: dict[str, Any] = {
        "stages": [(s, by_stage.get(s, 0)) for s in STAGES],
        "clients_total": sum(by_stage.values()),
        "partners_total": await Partner.count(),
    }
    if p.has_role("admin", "compliance"):
        data["recent_audit"] = await AuditEvent.select().order_by(AuditEvent.seq, ascending=False).limit(8)
    if p.has_role("admin"):
        data["jobs"] = await jobs.health()
    return data
