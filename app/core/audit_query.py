"""Browsing the audit trail: filters from the URL, keyset pagination by sequence number."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from app.core.tables import AuditEvent

PAGE = 50


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class AuditFilters:
    action: str = ""
    actor: str = ""
    subject_type: str = ""
    subject_id: str = ""
    since: date | None = None
    until: date | None = None
    before_seq: int | None = None

    @classmethod
    def from_query(cls, q: Any) -> AuditFilters:
        before = q.get("before")
        return cls(
            action=(q.get("action") or "").strip()[:80],
            actor=(q.get("actor") or "").strip()[:255],
            subject_type=(q.get("subject_type") or "").strip()[:40],
            subject_id=(q.get("subject_id") or "").strip()[:64],
            since=_date(q.get("since")),
            until=_date(q.get("until")),
            before_seq=int(before) if before and before.isdigit() else None,
        )

    def query_string(self, **override: Any) -> str:
        from urllib.parse import urlencode

        values = {
            "action": self.action,
            "actor": self.actor,
            "subject_type": self.subject_type,
            "subject_id": self.subject_id,
            "since": self.since or "",
            "until": self.until or "",
        } | override
        return urlencode({k: v for k, v in values.items() if v})


async def search(f: AuditFilters) -> dict[str, Any]:
    q = AuditEvent.select().order_by(AuditEvent.seq, ascending=False).limit(PAGE + 1)
    if f.action:
        q = q.where(AuditEvent.action.ilike(f"{f.action}%"))
    if f.actor:
        q = q.where(AuditEvent.actor_label.ilike(f"%{f.actor}%"))
    if f.subject_type:
        q = q.where(AuditEvent.subject_type == f.subject_type)
    if f.subject_id:
        q = q.where(AuditEvent.subject_id == f.subject_id)
    if f.since:
        q = q.where(AuditEvent.occurred_at >= datetime.combine(f.since, time.min, UTC))
    if f.until:
        q = q.where(AuditEvent.occurred_at < datetime.combine(f.until + timedelta(days=1), time.min, UTC))
    if f.before_seq:
        q = q.where(AuditEvent.seq < f.before_seq)
    rows = await q
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return {"rows": rows, "next_before": rows[-1]["seq"] if more and rows else None}
