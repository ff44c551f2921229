"""The compliance review queue: what waits for a reviewer, oldest first, with its age against the SLA.

Proofs of address are kept apart ("waiting for identity") until the client has an approved,
unexpired identity document: reviewing an address before the identity it belongs to is wasted
work, and an address alone earns no level. Reviewers are compliance and administrators, the roles
of the console's "kyc" section; everyone else gets a 404 here (the router's guard answers first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pycountry

from app.clients.scoping import visible_client_sql
from app.core import db
from app.core.auth.principal import Principal
from app.core.errors import NotFound
from app.kyc.tables import CATEGORIES
from app.settings import get_settings

REVIEWER_ROLES = ("admin", "compliance")  # as the console's "kyc" section (app/staff/navigation.py)
STALE_CLAIM = timedelta(minutes=30)  # a claim untouched this long may be taken over by a colleague
SLA = timedelta(hours=24)  # a document waiting longer than this is overdue
SLA_WARNING = timedelta(hours=12)
QUEUE_LIMIT = 200
RISK_LEVELS = ("low", "medium", "high")

IDENTITY_APPROVED = (
    "EXISTS (SELECT 1 FROM kyc_documents i WHERE i.client = d.client AND i.category = 'identity' "
    "AND i.status = 'approved' AND (i.expires_on IS NULL OR i.expires_on >= {}))"
)
"""SQL (one `{}`: today) true when the client of document `d` holds a valid identity document."""
REVIEWABLE = f"(d.category <> 'address' OR {IDENTITY_APPROVED})"


def is_reviewer(viewer: Principal) -> bool:
    return viewer.is_staff and viewer.has_role(*REVIEWER_ROLES)


def require_reviewer(viewer: Principal) -> None:
    if not is_reviewer(viewer):
        raise NotFound("document")


@dataclass(frozen=True)
class QueueFilters:
    """The queue's filters, as they travel in the URL; bad values are dropped with a note."""

    level: int | None = None
    country: str = ""
    category: str = ""
    risk: str = ""  # honoured only once kyc_profiles has a risk column (see `risk_filter_available`)
    notes: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> QueueFilters:
        notes: list[str] = []
        level: int | None = None
        raw_level = (params.get("level") or "").strip()
        if raw_level:
            if raw_level.isdigit() and len(raw_level) < 3:
                level = int(raw_level)
            else:
                notes.append(f"“{raw_level[:20]}” is not a level; showing every level.")
        country = (params.get("country") or "").strip().upper()
        if country and pycountry.countries.get(alpha_2=country) is None:
            notes.append(f"“{country[:20]}” is not an ISO country code; showing every country.")
            country = ""
        category = (params.get("category") or "").strip()
        if category and category not in CATEGORIES:
            notes.append("Unknown document category; showing every category.")
            category = ""
        risk = (params.get("risk") or "").strip()
        if risk and risk not in RISK_LEVELS:
            risk = ""
        return cls(level=level, country=country, category=category, risk=risk, notes=tuple(notes))

    def query(self) -> str:
        pairs = [
            ("level", "" if self.level is None else str(self.level)),
            ("country", self.country),
            ("category", self.category),
            ("risk", self.risk),
        ]
        return urlencode([(k, v) for k, v in pairs if v])


async def risk_filter_available() -> bool:
    """The hook for the risk work (issue 4, item 6): once it adds `kyc_profiles.risk` (one of
    RISK_LEVELS), the queue offers and applies the risk filter; until then both stay off."""
    rows = await db.fetch(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'kyc_profiles' AND column_name = 'risk'"
    )
    return bool(rows)


def age_of(submitted_at: datetime | None, now: datetime) -> tuple[str, str]:
    """("3 h 20 min", "ok" | "warning" | "overdue") for how long a document has been waiting."""
    if submitted_at is None:
        return "—", "ok"
    waited = max(now - submitted_at, timedelta(0))
    minutes = int(waited.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    label = f"{days} d {hours} h" if days else (f"{hours} h {mins} min" if hours else f"{mins} min")
    state = "overdue" if waited > SLA else ("warning" if waited > SLA_WARNING else "ok")
    return label, state


async def _queue_rows(
    viewer: Principal, f: QueueFilters, today: date, *, reviewable: bool, risk: bool
) -> list[dict[str, Any]]:
    scope, scope_args = visible_client_sql(viewer)
    where = ["d.status IN ('pending', 'in_review')", scope, REVIEWABLE if reviewable else f"NOT {REVIEWABLE}"]
    args: list[Any] = [*scope_args, today]
    if f.level is not None:
        where.append("COALESCE(p.level, 0) = {}")
        args.append(f.level)
    if f.country:
        where.append("c.country = {}")
        args.append(f.country)
    if f.category:
        where.append("d.category = {}")
        args.append(f.category)
    if f.risk and risk:
        where.append("p.risk = {}")
        args.append(f.risk)
    return await db.fetch(
        "SELECT d.id, d.client AS client_id, d.category, d.status, d.submitted_at, d.claimed_by, "
        "d.claimed_at, t.name AS type_name, c.first_name, c.last_name, c.email, c.country, "
        "COALESCE(p.level, 0) AS level, s.name AS claimed_by_name, count(*) OVER () AS total "
        "FROM kyc_documents d JOIN kyc_document_types t ON t.id = d.doc_type "
        "JOIN clients c ON c.id = d.client LEFT JOIN kyc_profiles p ON p.client = d.client "
        "LEFT JOIN staff_users s ON s.id = d.claimed_by "
        f"WHERE {' AND '.join(where)} ORDER BY d.submitted_at NULLS LAST, d.id LIMIT {QUEUE_LIMIT}",
        *args,
    )


def claim_state(row: dict[str, Any], viewer: Principal, now: datetime) -> str:
    """unclaimed | mine | stale (claimed, but may be taken over) | taken (someone else's)."""
    if row["status"] != "in_review" or row["claimed_by"] is None:
        return "unclaimed"
    if row["claimed_by"] == viewer.id:
        return "mine"
    if row["claimed_at"] is None or row["claimed_at"] < now - STALE_CLAIM:
        return "stale"
    return "taken"


async def queue_for(
    viewer: Principal, filters: QueueFilters | None = None, *, now: datetime | None = None
) -> dict[str, Any]:
    """The review queue (oldest submission first), the address documents waiting for an identity
    approval, and the approved documents about to expire."""
    require_reviewer(viewer)
    now = now or datetime.now(UTC)
    today = now.date()
    f = filters or QueueFilters()
    risk = await risk_filter_available()
    if f.risk and not risk:
        f = replace(f, risk="")
    rows = await _queue_rows(viewer, f, today, reviewable=True, risk=risk)
    waiting = await _queue_rows(viewer, f, today, reviewable=False, risk=risk)
    for r in (*rows, *waiting):
        r["age"], r["sla"] = age_of(r["submitted_at"], now)
        r["claim"] = claim_state(r, viewer, now)
    return {
        "rows": rows,
        "total": rows[0]["total"] if rows else 0,
        "waiting": waiting,
        "waiting_total": waiting[0]["total"] if waiting else 0,
        "expiring": await expiring_for(viewer, today=today),
        "f": f,
        "risk_available": risk,
        "risk_levels": RISK_LEVELS,
        "levels": sorted({r["rank"] for r in await db.fetch("SELECT rank FROM kyc_levels")}),
        "categories": CATEGORIES,
        "limit": QUEUE_LIMIT,
        "reminder_days": get_settings().kyc.expiry_reminder_days,
        "now": now,
    }


async def expiring_for(viewer: Principal, *, today: date | None = None) -> list[dict[str, Any]]:
    """Approved documents expiring within the reminder window (and whether the client was told)."""
    require_reviewer(viewer)
    today = today or datetime.now(UTC).date()
    scope, scope_args = visible_client_sql(viewer)
    return await db.fetch(
        "SELECT d.id, d.client AS client_id, d.category, d.expires_on, d.expiry_reminded_on, "
        "t.name AS type_name, c.first_name, c.last_name "
        "FROM kyc_documents d JOIN kyc_document_types t ON t.id = d.doc_type JOIN clients c ON c.id = d.client "
        f"WHERE d.status = 'approved' AND d.expires_on BETWEEN {{}} AND {{}} AND {scope} "
        "ORDER BY d.expires_on, d.id LIMIT 100",
        today,
        today + timedelta(days=get_settings().kyc.expiry_reminder_days),
        *scope_args,
    )
