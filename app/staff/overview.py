"""Figures for the console's overview page, chosen by what the viewer's roles may see."""

from __future__ import annotations

from typing import Any

from app.clients.tables import STAGES, Client
from app.core import jobs
from app.core.auth.principal import Principal
from app.core.tables import AuditEvent
from app.partners.tables import Partner


async def for_staff(p: Principal) -> dict[str, Any]:
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
