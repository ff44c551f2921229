"""Screening subjects against the active lists, the cases hits open, and the blocks they lead to.

A hit at or above the threshold opens a case for a person in compliance to decide; nothing is
decided automatically. One subject has one open case per listed entry, however often it is
screened (the case's `open_key`), and a case decided as a false positive is not reopened while
neither the subject's screened data nor the entry changed (the case's fingerprint): compliance
answers each question once. A true match blocks the client: `is_blocked` is what rights checks in
other domains ask, and the client's sessions end at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from app.core import audit, db, live
from app.core.audit import Actor, Entry
from app.core.auth import sessions
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.screening import lists
from app.screening.lists import PROGRESS_TOPICS, require_compliance
from app.screening.loaders.common import country_code, one_date
from app.screening.matching import Hit, Subject
from app.screening.tables import CASE_STATUSES, SUBJECT_TYPES
from app.settings import get_settings
from app.workbench.timeline import record_event

MAX_REASON = 2000
DECISIONS = {"true_match": "True match", "false_positive": "False positive"}
STATUS_LABELS = {
    "blocked": "Sanctions: blocked",
    "open": "Sanctions: open case",
    "clear": "Sanctions: clear",
    "unscreened": "Sanctions: not screened yet",
}
ACTOR = Actor.system("sanctions screening")


def threshold() -> int:
    return get_settings().screening_threshold


@dataclass(frozen=True)
class Screened:
    """One screened subject and what came of it."""

    subject_type: str
    subject_id: int
    client_id: int | None
    subject: Subject
    hits: list[Hit]


@dataclass(frozen=True)
class ScreenResult:
    list_ids: list[int]
    hits: list[Hit]
    case_ids: list[int]


def fingerprint(subject: Subject, hit: Hit) -> str:
    """The question a case answers: this subject's screened data against this entry's data."""
    data = [
        hit.explanation["subject"]["normalised"],
        subject.dob,
        sorted(subject.nationalities),
        hit.entry.fingerprint,
    ]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


def _dob(value: date | str | None) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value.isoformat()
    parsed = one_date(str(value))
    if parsed is None:
        raise ValueError(f"not a date of birth: {value!r}")
    return parsed


def _nationalities(values: Sequence[str] | str | None) -> tuple[str, ...]:
    if not values:
        return ()
    if isinstance(values, str):
        values = [values]
    return tuple(dict.fromkeys(c for c in (country_code(v) for v in values if v) if c))


# --- screening --------------------------------------------------------------------------------------


async def screen_client(
    client_id: int,
    actor: Actor,
    *,
    dob: date | str | None = None,
    nationality: Sequence[str] | str | None = None,
) -> ScreenResult:
    """Screen a client by the name on file; their country of residence is a weak nationality hint.
    Date of birth and nationality come from KYC when it has them."""
    row = await db.fetchrow(
        "SELECT c.first_name, c.last_name, c.country, k.date_of_birth, k.nationality "
        "FROM clients c LEFT JOIN kyc_profiles k ON k.client = c.id WHERE c.id = $1",
        client_id,
    )
    if row is None:
        raise NotFound("client")
    if dob is None:
        dob = row["date_of_birth"]  # as declared to KYC (app.kyc.personal)
    if nationality is None and row["nationality"]:
        nationality = row["nationality"]
    subject = Subject(
        name=f"{row['first_name']} {row['last_name']}".strip(),
        dob=_dob(dob),
        nationalities=_nationalities(nationality),
        country=(row["country"] or "").upper(),
    )
    return await screen_subjects([Screened("client", client_id, client_id, subject, [])], actor)


async def screen_person(
    subject_type: str,
    subject_id: int,
    name: str,
    actor: Actor,
    *,
    client_id: int | None = None,
    kind: str = "person",
    dob: date | str | None = None,
    nationality: Sequence[str] | str | None = None,
    country: str = "",
) -> ScreenResult:
    """Screen someone who is not a client themselves: a corporate client's director or beneficial
    owner (`client_id` the corporate client, whose page shows the case), or a company (`kind`)."""
    if subject_type not in SUBJECT_TYPES:
        raise ValueError(f"unknown subject type {subject_type!r}")
    subject = Subject(
        name=" ".join(name.split()),
        kind=kind,
        dob=_dob(dob),
        nationalities=_nationalities(nationality),
        country=(country_code(country) or "") if country else "",
    )
    return await screen_subjects([Screened(subject_type, subject_id, client_id, subject, [])], actor)


async def screen_subjects(subjects: list[Screened], actor: Actor) -> ScreenResult:
    """Screen against every active release, open cases for the hits, record who was screened."""
    active = [r["id"] for r in await lists.active_lists()]
    if not active:
        return ScreenResult([], [], [])
    index = await lists.index_for(active)
    level = threshold()
    screened = [
        Screened(s.subject_type, s.subject_id, s.client_id, s.subject, index.screen(s.subject, level))
        for s in subjects
    ]
    async with transaction():
        case_ids = await record_screening(screened, active, actor, audit_each=True)
    return ScreenResult(active, [h for s in screened for h in s.hits], case_ids)


async def record_screening(
    screened: list[Screened], list_ids: list[int], actor: Actor, *, audit_each: bool
) -> list[int]:
    """Inside the caller's transaction: cases for the hits (with their audit rows and timeline
    events) and the subjects' screening record. `audit_each` also audits each screening (a
    re-screening of everyone is audited once, as a run, with the subjects table as the detail)."""
    opened = await _open_cases(screened)
    await _mark_screened(screened, list_ids)
    entries = [
        Entry(
            "screening.case_opened",
            "screening_case",
            c["id"],
            after={
                "subject_type": c["subject_type"],
                "subject_id": c["subject_id"],
                "client_id": c["client"],
                "list": c["source"],
                "external_id": c["external_id"],
                "score": c["score"],
            },
        )
        for c in opened
    ]
    if audit_each:
        entries += [
            Entry(
                "screening.subject_screened",
                s.subject_type,
                s.subject_id,
                after={
                    "name": s.subject.name,
                    "lists": list_ids,
                    "hits": len(s.hits),
                    "threshold": threshold(),
                },
            )
            for s in screened
        ]
    if entries:
        await audit.record_many(actor, entries)
    for c in opened:
        if c["client"] is not None:
            who = "" if c["subject_type"] == "client" else f"{c['subject_type']} {c['subject_name']}: "
            await record_event(
                c["client"],
                "kyc",
                f"Sanctions screening: {who}possible match with {c['entry_name']} "
                f"({c['source'].upper()} {c['external_id']}, score {c['score']:.0f}); compliance to review",
                "screening_case",
                c["id"],
            )
    if opened:
        for topic in PROGRESS_TOPICS:
            await live.publish(topic, "screening.cases_changed", count=len(opened))
    # A single screening (registration, a name change, a director) reassesses its client's risk;
    # a re-screening of everyone only the clients it opened cases for.
    _reassess_risk(
        [s.client_id for s in screened] if audit_each else [c["client"] for c in opened],
        "sanctions case opened" if opened else "sanctions screening",
    )
    return [c["id"] for c in opened]


def _reassess_risk(client_ids: Sequence[int | None], reason: str) -> None:
    """A client's KYC risk follows their sanctions status (app.kyc.risk), by a job once this
    transaction commits: screening stays quick and its own. Imported here, not at the top: KYC
    builds on screening, not the other way round."""
    from app.kyc import risk

    ids = sorted({c for c in client_ids if c is not None})
    if ids:
        risk.enqueue_clients(ids, reason)


async def _open_cases(screened: list[Screened]) -> list[dict[str, Any]]:
    cols: dict[str, list[Any]] = {
        k: [] for k in ("st", "sid", "cid", "name", "entry", "list", "src", "ext", "score", "expl", "fp")
    }
    for s in screened:
        for h in s.hits:
            cols["st"].append(s.subject_type)
            cols["sid"].append(s.subject_id)
            cols["cid"].append(s.client_id)
            cols["name"].append(s.subject.name[:400])
            cols["entry"].append(h.entry.id)
            cols["list"].append(h.entry.list_id)
            cols["src"].append(h.entry.source)
            cols["ext"].append(h.entry.external_id)
            cols["score"].append(h.score)
            cols["expl"].append(json.dumps(h.explanation, ensure_ascii=False))
            cols["fp"].append(fingerprint(s.subject, h))
    if not cols["st"]:
        return []
    return await db.fetch(
        "INSERT INTO screening_cases (subject_type, subject_id, client, subject_name, entry, sanctions_list, "
        "source, external_id, score, explanation, fingerprint, status, open_key, opened_at) "
        "SELECT u.st, u.sid, u.cid, u.name, u.entry, u.list, u.src, u.ext, u.score, u.expl::jsonb, u.fp, 'open', "
        "u.st || ':' || u.sid || ':' || u.src || ':' || u.ext, now() "
        "FROM unnest({}::text[], {}::int[], {}::int[], {}::text[], {}::int[], {}::int[], {}::text[], {}::text[], "
        "{}::float8[], {}::text[], {}::text[]) AS u(st, sid, cid, name, entry, list, src, ext, score, expl, fp) "
        "WHERE NOT EXISTS (SELECT 1 FROM screening_cases c WHERE c.subject_id = u.sid AND c.subject_type = u.st "
        "AND c.source = u.src AND c.external_id = u.ext "
        "AND (c.status = 'true_match' OR (c.status = 'false_positive' AND c.fingerprint = u.fp))) "
        "ON CONFLICT (open_key) DO NOTHING "
        "RETURNING id, subject_type, subject_id, client, subject_name, source, external_id, score, "
        "explanation->'entry'->>'primary_name' AS entry_name",
        *cols.values(),
    )


async def _mark_screened(screened: list[Screened], list_ids: list[int]) -> None:
    if not screened:
        return
    await db.fetch(
        "INSERT INTO screening_subjects (subject_key, subject_type, subject_id, client, name, list_ids, hits, "
        "screened_at) SELECT u.st || ':' || u.sid, u.st, u.sid, u.cid, u.name, {}::jsonb, u.hits, now() "
        "FROM unnest({}::text[], {}::int[], {}::int[], {}::text[], {}::int[]) AS u(st, sid, cid, name, hits) "
        "ON CONFLICT (subject_key) DO UPDATE SET name = EXCLUDED.name, list_ids = EXCLUDED.list_ids, "
        "hits = EXCLUDED.hits, screened_at = EXCLUDED.screened_at",
        json.dumps(sorted(list_ids)),
        [s.subject_type for s in screened],
        [s.subject_id for s in screened],
        [s.client_id for s in screened],
        [s.subject.name[:400] for s in screened],
        [len(s.hits) for s in screened],
    )


# --- cases ------------------------------------------------------------------------------------------

_CASE_SELECT = (
    "SELECT k.id, k.subject_type, k.subject_id, k.client, k.subject_name, k.source, k.external_id, k.score, "
    "k.explanation, k.status, k.opened_at, k.decided_at, k.reason, s.name AS decided_by_name, "
    "c.email AS client_email, c.country AS client_country, l.version AS list_version, l.active AS list_active "
    "FROM screening_cases k LEFT JOIN clients c ON c.id = k.client "
    "LEFT JOIN staff_users s ON s.id = k.decided_by JOIN screening_lists l ON l.id = k.sanctions_list "
)


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    if isinstance(row.get("explanation"), str):
        row["explanation"] = json.loads(row["explanation"])
    row["status_label"] = {"open": "Open", **DECISIONS}.get(row["status"], row["status"])
    return row


async def open_cases_for(
    viewer: Principal, *, client_id: int | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Open cases, oldest first (the queue compliance works through)."""
    require_compliance(viewer)
    where, args = "k.status = 'open'", [limit]
    if client_id is not None:
        where += " AND k.client = {}"
        args.insert(0, client_id)
    rows = await db.fetch(_CASE_SELECT + f"WHERE {where} ORDER BY k.opened_at, k.id LIMIT {{}}", *args)
    return [_shape(r) for r in rows]


async def count_open() -> int:
    row = await db.fetchrow("SELECT count(*) AS n FROM screening_cases WHERE status = 'open'")
    return int(row["n"]) if row else 0


async def recent_decisions_for(viewer: Principal, limit: int = 20) -> list[dict[str, Any]]:
    require_compliance(viewer)
    rows = await db.fetch(
        _CASE_SELECT + "WHERE k.status <> 'open' ORDER BY k.decided_at DESC, k.id DESC LIMIT {}", limit
    )
    return [_shape(r) for r in rows]


async def case_for(viewer: Principal, case_id: int) -> dict[str, Any]:
    require_compliance(viewer)
    rows = await db.fetch(_CASE_SELECT + "WHERE k.id = {}", case_id)
    if not rows:
        raise NotFound("case")
    return _shape(rows[0])


async def decide(viewer: Principal, case_id: int, decision: str, reason: str, actor: Actor) -> dict[str, Any]:
    """Close an open case: a true match blocks the client, a false positive needs its reason."""
    require_compliance(viewer)
    reason = reason.strip()
    errors: dict[str, str] = {}
    if decision not in DECISIONS:
        errors["decision"] = "Choose “true match” or “false positive”."
    if decision == "false_positive" and not reason:
        errors["reason"] = (
            "Say why this is not the listed person or entity; the reason is kept for the auditors."
        )
    if len(reason) > MAX_REASON:
        errors["reason"] = f"Keep the reason under {MAX_REASON} characters."
    if errors:
        raise FormErrors(errors)
    async with transaction():
        case = await db.fetchrow(
            "SELECT id, status, client, subject_type, subject_id, subject_name, source, external_id, score, "
            "explanation->'entry'->>'primary_name' AS entry_name FROM screening_cases WHERE id = $1 FOR UPDATE",
            case_id,
        )
        if case is None:
            raise NotFound("case")
        if case["status"] != "open":
            raise FormErrors(
                {"__all__": "This case was decided meanwhile; the page now shows that decision."}
            )
        await db.fetch(
            "UPDATE screening_cases SET status = {}, open_key = NULL, decided_by = {}, decided_at = now(), "
            "reason = {} WHERE id = {}",
            decision,
            viewer.id,
            reason,
            case_id,
        )
        await audit.record(
            actor,
            "screening.case_decided",
            "screening_case",
            case_id,
            before={"status": "open"},
            after={"status": decision, "reason": reason, "client_id": case["client"], "score": case["score"]},
        )
        client_id = case["client"]
        if client_id is not None:
            await record_event(
                client_id,
                "kyc",
                f"Sanctions case #{case_id} ({case['entry_name']}) decided by {viewer.name}: "
                f"{DECISIONS[decision].lower()}" + (f" ({reason})" if reason else ""),
                "screening_case",
                case_id,
            )
            if decision == "true_match":
                await _block(
                    client_id, case_id, reason or f"Sanctions true match: {case['entry_name']}", viewer, actor
                )
            _reassess_risk([client_id], f"sanctions case #{case_id} decided")
            await live.publish(f"staff:client:{client_id}", "screening.status_changed", client_id=client_id)
        for topic in PROGRESS_TOPICS:
            await live.publish(topic, "screening.cases_changed", count=-1)
    return await case_for(viewer, case_id)


async def _block(client_id: int, case_id: int, reason: str, viewer: Principal, actor: Actor) -> None:
    row = await db.fetchrow(
        'INSERT INTO compliance_blocks (client, "case", reason, active_client, created_by, created_at) '
        "VALUES ($1, $2, $3, $1, $4, now()) ON CONFLICT (active_client) DO NOTHING RETURNING id",
        client_id,
        case_id,
        reason,
        viewer.id,
    )
    if row is None:  # already blocked (another true match): the standing block stays
        return
    revoked = await sessions.revoke_all("client", client_id)
    await audit.record(
        actor,
        "screening.client_blocked",
        "client",
        client_id,
        before={"blocked": False},
        after={"blocked": True, "block_id": row["id"], "case_id": case_id, "sessions_revoked": len(revoked)},
    )
    await record_event(
        client_id, "kyc", f"Blocked by compliance after sanctions case #{case_id}", "screening_case", case_id
    )


# --- what other domains ask ---------------------------------------------------------------------------


async def is_blocked(client_id: int) -> bool:
    """For rights checks (live accounts, deposits, withdrawals): a standing compliance block."""
    return (
        await db.fetchrow("SELECT 1 FROM compliance_blocks WHERE active_client = $1", client_id) is not None
    )


async def status_for(client_id: int, viewer: Principal | None = None) -> dict[str, Any]:
    """The client page's sanctions badge: blocked, open case, clear (screened, no open case) or not
    screened yet. The link to the cases is given only to those who may open them."""
    row = await db.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM compliance_blocks WHERE active_client = $1) AS blocked, "
        "(SELECT count(*) FROM screening_cases WHERE client = $1 AND status = 'open') AS open_cases, "
        "(SELECT max(screened_at) FROM screening_subjects WHERE client = $1) AS screened_at",
        client_id,
    )
    assert row is not None
    state = (
        "blocked"
        if row["blocked"]
        else "open"
        if row["open_cases"]
        else "clear"
        if row["screened_at"]
        else "unscreened"
    )
    return {
        "state": state,
        "label": STATUS_LABELS[state],
        "open_cases": int(row["open_cases"]),
        "screened_at": row["screened_at"],
        "url": f"/staff/kyc/screening?client={client_id}"
        if viewer is not None and lists.may_screen(viewer)
        else None,
    }


__all__ = [
    "CASE_STATUSES",
    "DECISIONS",
    "ScreenResult",
    "case_for",
    "decide",
    "is_blocked",
    "open_cases_for",
    "screen_client",
    "screen_person",
    "status_for",
]
