"""What staff see of a client's KYC: the review page's context (the document beside what the client
declared, their earlier documents and decisions, screening) and the KYC panel of the client page.

Read-only. Access is decided here, not in templates: the review page is for reviewers who may see
the client; the client-page panel is for anyone who may see the client, and only reviewers get
the links into the review pages.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime
from typing import Any

import pycountry

from app.clients.services import get_client_for
from app.core import db
from app.core.auth.principal import Principal
from app.kyc import documents, levels, queue, reasons, review
from app.screening import services as screening
from app.settings import get_settings

SIDE_ORDER = {"front": 0, "back": 1, "single": 2}


@functools.cache
def age_on(born: date, today: date) -> int:
    """Whole years from `born` to `today` (a birthday counts from its day)."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def country_options() -> tuple[tuple[str, str], ...]:
    """(ISO code, name) for every country, by name: the issuing-country choices."""
    return tuple(sorted(((c.alpha_2, c.name) for c in pycountry.countries), key=lambda pair: pair[1]))


def country_name(code: str | None) -> str:
    if not code:
        return ""
    found = pycountry.countries.get(alpha_2=code)
    return found.name if found else code


async def documents_of(client_id: int) -> list[dict[str, Any]]:
    """Every document of the client, newest first, with who decided it and what the client was told."""
    today = datetime.now(UTC).date()
    reminder = get_settings().kyc.expiry_reminder_days
    rows = await db.fetch(
        "SELECT d.id, d.category, d.status, d.created_at, d.submitted_at, d.reviewed_at, d.claimed_at, "
        "d.reason_code, d.client_message, d.doc_number, d.issuing_country, d.expires_on, d.expiry_reminded_on, "
        "t.name AS type_name, r.name AS reviewed_by_name, s.name AS claimed_by_name "
        "FROM kyc_documents d JOIN kyc_document_types t ON t.id = d.doc_type "
        "LEFT JOIN staff_users r ON r.id = d.reviewed_by LEFT JOIN staff_users s ON s.id = d.claimed_by "
        "WHERE d.client = {} ORDER BY d.id DESC",
        client_id,
    )
    for r in rows:
        r["shown_status"] = documents.display_status(r, today, reminder)
        r["reason_label"] = (
            reasons.BY_CODE[r["reason_code"]].label if r["reason_code"] in reasons.BY_CODE else ""
        )
    return rows


async def screening_for(viewer: Principal, client_id: int) -> dict[str, Any]:
    """The client's sanctions-screening status (blocked, open case, clear, not screened yet)."""
    return await screening.status_for(client_id, viewer)


async def review_page_for(viewer: Principal, document_id: int) -> dict[str, Any]:
    """The review page: the document, its sides, the client's declared data and history."""
    now = datetime.now(UTC)
    doc = await review.document_for(viewer, document_id)  # reviewers who may see the client, else 404
    client_id = doc["client"]
    client = await get_client_for(viewer, client_id)
    files = await db.fetch(
        "SELECT id, side, mime, size, uploaded_at FROM kyc_document_files WHERE document = {}", document_id
    )
    files.sort(key=lambda f: SIDE_ORDER.get(f["side"], 9))
    profile = await levels.profile_of(client_id)
    identity_ok = bool(
        await db.fetch(
            f"SELECT 1 FROM kyc_documents d WHERE d.id = {{}} AND {queue.IDENTITY_APPROVED}",
            document_id,
            now.date(),
        )
    )
    doc["claim"] = (
        queue.claim_state(doc, viewer, now) if doc["status"] in ("pending", "in_review") else "closed"
    )
    doc["age"], doc["sla"] = queue.age_of(doc["submitted_at"], now)
    return {
        "doc": doc,
        "files": files,
        "client": client,
        "profile": profile,
        "nationality_name": country_name(profile["nationality"]),
        "rights": await levels.rights_for(client_id),
        "history": [d for d in await documents_of(client_id) if d["id"] != document_id],
        "screening": await screening_for(viewer, client_id),
        "waiting_for_identity": doc["category"] == "address" and not identity_ok,
        "can_decide": doc["status"] == "in_review" and doc["claimed_by"] == viewer.id,
        "reasons": reasons.REASONS,
        "countries": country_options(),
        "status_labels": review.STATUS_LABELS,
        "stale_minutes": int(queue.STALE_CLAIM.total_seconds() // 60),
    }


async def client_panel_for(viewer: Principal, client_id: int) -> dict[str, Any]:
    """The client page's KYC panel: level, rights, documents and their expiry (404 to outsiders)."""
    client = await get_client_for(viewer, client_id)
    profile = await levels.profile_of(client_id)
    return {
        "client": client,
        "kyc_profile": profile,
        "kyc_rights": await levels.rights_for(client_id),
        "kyc_documents": await documents_of(client_id),
        "kyc_can_review": queue.is_reviewer(viewer),
        "kyc_status_labels": review.STATUS_LABELS,
        "kyc_loaded": True,
    }
