"""Figures for the console's overview page, chosen by what the viewer's roles may see."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

from app.clients.scoping import is_desk_scoped, visible_client_sql
from app.clients.tables import STAGES
from app.core import db, jobs
from app.core.auth.principal import Principal
from app.core.tables import AuditEvent
from app.partners.tables import Partner

# The overview is the console's landing page, opened constantly and refreshed every 30 s by
# every open console; its figures may be a few seconds old, so one computation serves them all.
log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
# Keyed by what the figures depend on: the roles that add panels, or, for a desk-scoped agent,
# the agent (their counts cover only the clients they may see).
_Key = frozenset[str] | tuple[str, int]
_cache: dict[_Key, tuple[float, dict[str, Any]]] = {}
_locks: dict[_Key, asyncio.Lock] = {}
_refreshing: dict[_Key, asyncio.Task[None]] = {}


async def for_staff(p: Principal) -> dict[str, Any]:
    key: _Key = (
        ("agent", p.id)
        if is_desk_scoped(p)
        else frozenset(r for r in p.roles if r in ("admin", "compliance"))
    )
    hit = _cache.get(key)
    if hit is not None:
        if time.monotonic() - hit[0] >= CACHE_SECONDS and key not in _refreshing:
            # Stale: answer with it now and refresh once in the background, so no request waits.
            task = asyncio.get_running_loop().create_task(_refresh(key, p))
            _refreshing[key] = task
            task.add_done_callback(lambda _t: _refreshing.pop(key, None))
        return hit[1]
    async with _locks.setdefault(key, asyncio.Lock()):  # first view: compute once for everyone waiting
        hit = _cache.get(key)
        if hit is None:
            hit = (time.monotonic(), await _compute(p))
            _cache[key] = hit
        return hit[1]


async def _refresh(key: _Key, p: Principal) -> None:
    try:
        _cache[key] = (time.monotonic(), await _compute(p))
    except Exception:  # keep serving the previous figures; the next view tries again
        log.exception("refreshing the console overview failed")


def forget() -> None:
    """Drop the figures (e.g. when the process switches databases)."""
    for task in list(_refreshing.values()):
        task.cancel()
    _refreshing.clear()
    _cache.clear()


_versions = itertools.count(1)


async def _compute(p: Principal) -> dict[str, Any]:
    """The figures, with a `version` that changes with every computation (for fragment caching)."""
    scope, args = visible_client_sql(p)
    rows = await db.fetch(
        f"SELECT c.stage, count(*) AS n FROM clients c WHERE {scope} GROUP BY c.stage", *args
    )
    by_stage = {r["stage"]: r["n"] for r in rows}
    data: dict[str, Any] = {
        "stages": [(s, by_stage.get(s, 0)) for s in STAGES],
        "clients_total": sum(by_stage.values()),
        "partners_total": await Partner.count(),
        "scoped": scope != "TRUE",
    }
    if p.has_role("admin", "compliance"):
        data["recent_audit"] = await AuditEvent.select().order_by(AuditEvent.seq, ascending=False).limit(8)
    if p.has_role("admin"):
        data["jobs"] = await jobs.health()
    data["version"] = next(_versions)
    return data
