"""Screening a corporate client's company and its directors and owners (the jobs' work; safe to
repeat: screening opens one case per entry and does not ask a decided question again)."""

from __future__ import annotations

from app.core import db

# --- screening ------------------------------------------------------------------------------------


async def screen(person_id: int) -> str:
    """Screen one director or owner as declared now (the job's work; safe to repeat: screening opens
    one case per entry and does not ask a decided question again)."""
    from app.screening import services as screening

    person = await db.fetchrow(
        "SELECT id, client, role, full_name, date_of_birth, nationality, removed_at FROM kyc_related_persons "
        "WHERE id = $1",
        person_id,
    )
    if person is None or person["removed_at"] is not None:
        return "gone"
    result = await screening.screen_person(
        person["role"],
        person["id"],
        person["full_name"],
        screening.ACTOR,
        client_id=person["client"],
        dob=person["date_of_birth"],
        nationality=person["nationality"],
    )
    if not result.list_ids:
        return "no list loaded"
    return f"{len(result.case_ids)} case(s) opened"


async def screen_company(client_id: int) -> str:
    """Screen the company itself, as an entity, against the lists' entities (its country a hint)."""
    from app.screening import services as screening

    company = await db.fetchrow("SELECT id, name, country FROM kyc_companies WHERE client = $1", client_id)
    if company is None:
        return "gone"
    result = await screening.screen_person(
        "company",
        company["id"],
        company["name"],
        screening.ACTOR,
        client_id=client_id,
        kind="entity",
        nationality=company["country"],
    )
    if not result.list_ids:
        return "no list loaded"
    return f"{len(result.case_ids)} case(s) opened"


async def unscreened(limit: int = 200) -> list[int]:
    """Active persons not screened since their last change (a lost job, or no list loaded then)."""
    rows = await db.fetch(
        "SELECT p.id FROM kyc_related_persons p LEFT JOIN screening_subjects s "
        "ON s.subject_key = p.role || ':' || p.id WHERE p.removed_at IS NULL "
        "AND (s.screened_at IS NULL OR s.screened_at < p.updated_at) ORDER BY p.id LIMIT {}",
        limit,
    )
    return [int(r["id"]) for r in rows]
