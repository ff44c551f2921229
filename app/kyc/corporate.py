"""Corporate clients (issue 4, items 1 and 5): the company, its directors and its ultimate
beneficial owners, each screened against the sanctions lists.

Registration does not ask whether an account is a company's. A client says so on the portal's
company page before sending any document (the ladder, and so the documents asked for, depends on
it), or compliance sets it on the client page (with a reason, at any time). A corporate client
then declares the company (name, registration number, country) and its related persons: at least
one director, and the beneficial owners with their shares (together at most 100 %). The corporate
ladder's documents go through the ordinary documents flow.

Each person added or changed is screened (`app.screening.services.screen_person`, subject type
`director` or `ubo`, the person's id) by a job enqueued after the commit; a sweep screens anyone a
lost job missed. Staff see each person's screening state. The client sees only "checked" or "being
checked": telling them about a possible sanctions match would be tipping off.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.clients.services import get_client_for
from app.core import audit, db, jobs, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.kyc import dossier, levels, risk
from app.kyc.corporate_forms import parse_company, parse_person, percent
from app.kyc.queue import is_reviewer, require_reviewer
from app.kyc.tables import ENTITY_TYPES
from app.screening.lists import may_screen
from app.workbench.timeline import record_event

SCREEN_JOB = "kyc_screen_related_person"
COMPANY_SCREEN_JOB = "kyc_screen_company"
ROLE_LABELS = {"director": "Director", "ubo": "Beneficial owner"}
ENTITY_LABELS = {"individual": "an individual", "corporate": "a company"}
MAX_REASON = 1000
SCREEN_STATES = {
    # state: (staff label, badge colour, what the client sees)
    "match": ("Sanctions: true match", "red", "Being checked"),
    "open": ("Sanctions: possible match, case open", "amber", "Being checked"),
    "clear": ("Sanctions: clear", "green", "Checked"),
    "pending": ("Screening pending", "grey", "Being checked"),
}


# --- reading -----------------------------------------------------------------------------------


async def company_of(client_id: int) -> dict[str, Any] | None:
    row = await db.fetchrow(
        "SELECT id, name, registration_number, country, updated_at FROM kyc_companies WHERE client = $1",
        client_id,
    )
    if row is not None:
        row["country_name"] = dossier.country_name(row["country"])
    return row


async def persons_of(client_id: int) -> list[dict[str, Any]]:
    """The active directors and owners, directors first, with their screening state."""
    rows = await db.fetch(
        "SELECT p.id, p.role, p.full_name, p.date_of_birth, p.nationality, p.ownership, p.created_at, "
        "p.updated_at, s.screened_at, "
        "EXISTS (SELECT 1 FROM screening_cases k WHERE k.subject_type = p.role AND k.subject_id = p.id "
        "AND k.status = 'true_match') AS matched, "
        "(SELECT count(*) FROM screening_cases k WHERE k.subject_type = p.role AND k.subject_id = p.id "
        "AND k.status = 'open') AS open_cases "
        "FROM kyc_related_persons p LEFT JOIN screening_subjects s ON s.subject_key = p.role || ':' || p.id "
        "WHERE p.client = {} AND p.removed_at IS NULL ORDER BY p.role, p.id",
        client_id,
    )
    for r in rows:
        if r["matched"]:
            state = "match"
        elif r["open_cases"]:
            state = "open"
        elif r["screened_at"] is not None and r["screened_at"] >= r["updated_at"]:
            state = "clear"
        else:
            state = "pending"
        r["screen_state"] = state
        r["screen_label"], r["screen_colour"], r["client_label"] = SCREEN_STATES[state]
        r["role_label"] = ROLE_LABELS[r["role"]]
        r["nationality_name"] = dossier.country_name(r["nationality"])
    return rows


async def _has_documents(client_id: int) -> bool:
    return bool(await db.fetch("SELECT 1 FROM kyc_documents WHERE client = {} LIMIT 1", client_id))


def _summary(persons: list[dict[str, Any]]) -> dict[str, Any]:
    directors = [p for p in persons if p["role"] == "director"]
    owners = [p for p in persons if p["role"] == "ubo"]
    return {
        "directors": directors,
        "owners": owners,
        "ownership_total": sum((p["ownership"] or Decimal(0) for p in owners), Decimal(0)),
    }


async def page_for(p: Principal) -> dict[str, Any]:
    """The portal's company page."""
    if not p.is_client:
        raise NotFound("company")
    profile = await levels.profile_of(p.id)
    company = await company_of(p.id)
    persons = await persons_of(p.id)
    return {
        "entity_type": profile["entity_type"],
        "can_switch": not await _has_documents(p.id),
        "company": company,
        **_summary(persons),
        "countries": dossier.country_options(),
        "form": "",
        "errors": {},
        "values": {},
        "today": datetime.now(UTC).date(),
    }


async def staff_panel_for(viewer: Principal, client_id: int) -> dict[str, Any]:
    """The company part of the client page's KYC panel (404 to whoever may not see the client)."""
    client = await get_client_for(viewer, client_id)
    profile = await levels.profile_of(client_id)
    persons = await persons_of(client_id)
    return {
        "client": client,
        "entity_type": profile["entity_type"],
        "company": await company_of(client_id),
        **_summary(persons),
        "can_set_entity": is_reviewer(viewer),
        "screening_url": f"/staff/kyc/screening?client={client_id}" if may_screen(viewer) else None,
        "entity_errors": {},
        "entity_labels": ENTITY_LABELS,
    }


# --- the entity type ---------------------------------------------------------------------------


async def _set_entity(client_id: int, entity_type: str, actor: Actor, who: str, reason: str) -> bool:
    profile = await levels.profile_of(client_id, lock=True)
    if profile["entity_type"] == entity_type:
        return False
    await db.fetch(
        "UPDATE kyc_profiles SET entity_type = {}, updated_at = now() WHERE client = {}",
        entity_type,
        client_id,
    )
    await audit.record(
        actor,
        "kyc.entity_type_changed",
        "client",
        client_id,
        before={"entity_type": profile["entity_type"]},
        after={"entity_type": entity_type, "reason": reason},
    )
    await record_event(
        client_id,
        "kyc",
        f"Verification as {ENTITY_LABELS[entity_type]} ({who}" + (f": {reason})" if reason else ")"),
        "client",
        client_id,
    )
    await levels.recompute_level(client_id, actor, f"verified as {ENTITY_LABELS[entity_type]}")
    await risk.reassess(client_id, actor, f"verified as {ENTITY_LABELS[entity_type]}")
    await live.publish(f"client:{client_id}", "kyc.level_changed", client_id=client_id)
    await live.publish(f"staff:client:{client_id}", "client_page.kyc", client_id=client_id)
    return True


async def choose_entity(p: Principal, entity_type: str, actor: Actor) -> bool:
    """The client says whether the account is a company's, before sending any document."""
    if not p.is_client:
        raise NotFound("company")
    if entity_type not in ENTITY_TYPES:
        raise FormErrors({"entity_type": "Choose a personal or a company account."})
    async with transaction():
        await db.fetch("SELECT id FROM clients WHERE id = {} FOR UPDATE", p.id)  # against a parallel upload
        if await _has_documents(p.id):
            raise FormErrors(
                {
                    "entity_type": "You have already sent documents, so this can no longer be changed here. "
                    "Please contact support."
                }
            )
        return await _set_entity(p.id, entity_type, actor, "chosen by the client", "")


async def set_entity_by_staff(
    viewer: Principal, client_id: int, entity_type: str, reason: str, actor: Actor
) -> bool:
    """Compliance corrects the entity type (documents may exist: the ladder changes under them)."""
    require_reviewer(viewer)
    await get_client_for(viewer, client_id)
    reason = " ".join((reason or "").split())
    errors = {}
    if entity_type not in ENTITY_TYPES:
        errors["entity_type"] = "Choose individual or corporate."
    if not reason:
        errors["reason"] = "Say why: it is kept for the auditors."
    elif len(reason) > MAX_REASON:
        errors["reason"] = f"Keep the reason under {MAX_REASON} characters."
    if errors:
        raise FormErrors(errors)
    async with transaction():
        return await _set_entity(client_id, entity_type, actor, f"set by {viewer.name}", reason)


async def _require_corporate(client_id: int) -> dict[str, Any]:
    profile = await levels.profile_of(client_id, lock=True)
    if profile["entity_type"] != "corporate":
        raise FormErrors({"__all__": "Choose a company account first."})
    return profile


# --- the company --------------------------------------------------------------------------------


async def save_company(p: Principal, form: Mapping[str, str], actor: Actor) -> bool:
    if not p.is_client:
        raise NotFound("company")
    data = parse_company(form)
    async with transaction():
        await _require_corporate(p.id)
        before = await db.fetchrow(
            "SELECT name, registration_number, country FROM kyc_companies WHERE client = $1", p.id
        )
        if before == data:
            return False
        await db.fetch(
            "INSERT INTO kyc_companies (client, name, registration_number, country, updated_at) "
            "VALUES ({}, {}, {}, {}, now()) ON CONFLICT (client) DO UPDATE SET name = EXCLUDED.name, "
            "registration_number = EXCLUDED.registration_number, country = EXCLUDED.country, updated_at = now()",
            p.id,
            data["name"],
            data["registration_number"],
            data["country"],
        )
        await audit.record(actor, "kyc.company_declared", "client", p.id, before=before, after=data)
        await record_event(
            p.id,
            "kyc",
            f"Company declared: {data['name']} ({data['registration_number']}, {dossier.country_name(data['country'])})",
            "client",
            p.id,
        )
        await risk.reassess(p.id, actor, "company declared")
        await live.publish(f"staff:client:{p.id}", "client_page.kyc", client_id=p.id)
        if before is None or before["name"] != data["name"]:
            jobs.enqueue_after_commit(
                COMPANY_SCREEN_JOB, key=f"kyc:company:{p.id}:{data['name']}", client_id=p.id
            )
    return True


# --- directors and owners ------------------------------------------------------------------------


async def _check_ownership(client_id: int, data: dict[str, Any], except_id: int | None) -> None:
    if data["role"] != "ubo":
        return
    row = await db.fetchrow(
        "SELECT COALESCE(sum(ownership), 0) AS total FROM kyc_related_persons WHERE client = $1 AND role = 'ubo' "
        "AND removed_at IS NULL AND id IS DISTINCT FROM $2",
        client_id,
        except_id,
    )
    others = Decimal(row["total"]) if row else Decimal(0)
    if others + data["ownership"] > 100:
        raise FormErrors(
            {
                "ownership": f"The owners' shares would add up to {percent(others + data['ownership'])} %; "
                f"together they can be at most 100 % (the others already hold {percent(others)} %)."
            }
        )


def _audited(data: dict[str, Any]) -> dict[str, Any]:
    return {
        **data,
        "date_of_birth": data["date_of_birth"].isoformat() if data["date_of_birth"] else None,
        "ownership": str(data["ownership"]) if data["ownership"] is not None else None,
    }


def _enqueue_screening(person_id: int, version: datetime) -> None:
    jobs.enqueue_after_commit(
        SCREEN_JOB, key=f"kyc:person:{person_id}:{version.timestamp()}", person_id=person_id
    )


async def add_person(p: Principal, role: str, form: Mapping[str, str], actor: Actor) -> int:
    if not p.is_client:
        raise NotFound("company")
    data = parse_person(form, role)
    now = datetime.now(UTC)
    async with transaction():
        await _require_corporate(p.id)  # the profile row locked: one change of the list at a time
        await _check_ownership(p.id, data, None)
        row = await db.fetchrow(
            "INSERT INTO kyc_related_persons (client, role, full_name, date_of_birth, nationality, ownership, "
            "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
            p.id,
            role,
            data["full_name"],
            data["date_of_birth"],
            data["nationality"],
            data["ownership"],
            now,
        )
        assert row is not None
        person_id = int(row["id"])
        await audit.record(
            actor,
            "kyc.related_person_added",
            "client",
            p.id,
            after={"person_id": person_id, **_audited(data)},
        )
        share = f", {percent(data['ownership'])} %" if data["ownership"] is not None else ""
        await record_event(
            p.id,
            "kyc",
            f"{ROLE_LABELS[role]} declared: {data['full_name']} ({data['nationality']}{share})",
            "related_person",
            person_id,
            at=now,
        )
        await risk.reassess(p.id, actor, f"{ROLE_LABELS[role].lower()} declared")
        await live.publish(f"staff:client:{p.id}", "client_page.kyc", client_id=p.id)
        _enqueue_screening(person_id, now)
    return person_id


async def _person(client_id: int, person_id: int, *, lock: bool = True) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT id, role, full_name, date_of_birth, nationality, ownership FROM kyc_related_persons "
        "WHERE id = $1 AND client = $2 AND removed_at IS NULL" + (" FOR UPDATE" if lock else ""),
        person_id,
        client_id,
    )
    if row is None:
        raise NotFound("person")
    return row


async def update_person(p: Principal, person_id: int, form: Mapping[str, str], actor: Actor) -> bool:
    if not p.is_client:
        raise NotFound("company")
    now = datetime.now(UTC)
    await _person(p.id, person_id, lock=False)  # someone else's person: 404, whatever else is wrong
    async with transaction():
        await _require_corporate(p.id)
        before = await _person(p.id, person_id)
        data = parse_person(form, before["role"])
        await _check_ownership(p.id, data, person_id)
        old = {k: before[k] for k in data}
        if old == data:
            return False
        await db.fetch(
            "UPDATE kyc_related_persons SET full_name = {}, date_of_birth = {}, nationality = {}, ownership = {}, "
            "updated_at = {} WHERE id = {}",
            data["full_name"],
            data["date_of_birth"],
            data["nationality"],
            data["ownership"],
            now,
            person_id,
        )
        await audit.record(
            actor,
            "kyc.related_person_changed",
            "client",
            p.id,
            before={"person_id": person_id, **_audited(old)},
            after={"person_id": person_id, **_audited(data)},
        )
        await record_event(
            p.id,
            "kyc",
            f"{ROLE_LABELS[data['role']]} details changed: {data['full_name']}",
            "related_person",
            person_id,
            at=now,
        )
        await risk.reassess(p.id, actor, f"{ROLE_LABELS[data['role']].lower()} changed")
        await live.publish(f"staff:client:{p.id}", "client_page.kyc", client_id=p.id)
        _enqueue_screening(person_id, now)
    return True


async def remove_person(p: Principal, person_id: int, actor: Actor) -> None:
    if not p.is_client:
        raise NotFound("company")
    await _person(p.id, person_id, lock=False)
    async with transaction():
        await _require_corporate(p.id)
        person = await _person(p.id, person_id)
        if person["role"] == "director":
            others = await db.fetch(
                "SELECT 1 FROM kyc_related_persons WHERE client = {} AND role = 'director' "
                "AND removed_at IS NULL AND id <> {}",
                p.id,
                person_id,
            )
            if not others:
                raise FormErrors(
                    {
                        "__all__": "A company needs at least one director: add the new director first, "
                        "then remove this one."
                    }
                )
        await db.fetch("UPDATE kyc_related_persons SET removed_at = now() WHERE id = {}", person_id)
        await audit.record(
            actor,
            "kyc.related_person_removed",
            "client",
            p.id,
            before={"person_id": person_id, **_audited({k: person[k] for k in person if k != "id"})},
        )
        await record_event(
            p.id,
            "kyc",
            f"{ROLE_LABELS[person['role']]} removed: {person['full_name']}",
            "related_person",
            person_id,
        )
        await risk.reassess(p.id, actor, f"{ROLE_LABELS[person['role']].lower()} removed")
        await live.publish(f"staff:client:{p.id}", "client_page.kyc", client_id=p.id)
