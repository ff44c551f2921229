"""Each client's money-laundering risk (issue 4, item 6): low, medium or high, with its reasons.

The model is additive and explainable. Every factor is assessed to a level (low, medium, high); a
medium factor adds `risk.points_medium` points, a high one `risk.points_high`, and the sum against
`risk.medium_from` / `risk.high_from` gives the level. Two factors are decisive whatever the sum,
because the law asks for enhanced due diligence whenever they hold: a politically exposed person,
and a sanctions hit (a confirmed match, or a case still open). The factors:

- country: the residence, the declared nationality, the issuing country of approved identity
  documents and, for a company, its country and its directors' and owners' nationalities, against
  the editable country list (seeded with the FATF lists: call for action → high, increased
  monitoring → medium; a country not on the list is low);
- PEP: the profile's `pep` flag, set by compliance;
- sanctions: `app.screening` (a standing block or an open case → high);
- source of funds: the declared value, rated in the editable list of sources;
- deposit volume: `deposit_volume`, the client's completed deposits in USD (funding's figure).

`reassess(client_id, actor, reason)` stores the result on the profile (`risk` is the level, the
column the review queue's risk filter reads) and is called by every service that changes an
input: registration (through the screening job), screening cases opened and decided, document
approvals, the questionnaire's source of funds, the corporate declaration, compliance's PEP flag,
and (as a job) edits of the country list and of the model's parameters. A change of level is
audited and told on the timeline; becoming high opens one enhanced-due-diligence task per
high-risk episode, for the least-loaded active compliance officer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.clients.services import get_client_for
from app.core import audit, db, jobs, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.kyc import dossier, levels, parameters
from app.kyc.queue import is_reviewer, require_reviewer
from app.workbench.tables import Task
from app.workbench.timeline import record_event

log = logging.getLogger(__name__)

ACTOR = Actor.system("risk assessment")
RANK = {"low": 0, "medium": 1, "high": 2}
LEVEL_LABELS = {"": "not assessed yet", "low": "low", "medium": "medium", "high": "high"}
SOURCE_LABELS = {
    "fatf_call_for_action": "FATF call for action",
    "fatf_increased_monitoring": "FATF increased monitoring",
    "internal": "our own assessment",
}
REASSESS_JOB = "kyc_risk_reassess_many"
CLIENTS_JOB = "kyc_risk_reassess_clients"
MAX_NOTE = 1000
BATCH = 500


@dataclass(frozen=True)
class Factor:
    key: str  # country | pep | sanctions | source_of_funds | deposits
    level: str
    points: int
    detail: str
    decisive: bool = False


@dataclass(frozen=True)
class Assessment:
    level: str
    score: int
    factors: list[Factor]

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.factors]


# --- inputs -------------------------------------------------------------------------------------


async def deposit_volume(client_id: int) -> Decimal:
    """The client's completed deposits in USD (funding owns the figure and its conversion)."""
    from app.funding.deposit_checks import deposit_volume_usd

    return await deposit_volume_usd(client_id)


async def _countries(client_id: int, profile: dict[str, Any]) -> dict[str, list[str]]:
    """Each country connected to the client, with how ("residence", "nationality", …)."""
    found: dict[str, list[str]] = {}

    def add(code: str | None, how: str) -> None:
        code = (code or "").strip().upper()
        if len(code) == 2 and how not in found.setdefault(code, []):
            found[code].append(how)

    client = await db.fetchrow("SELECT country FROM clients WHERE id = $1", client_id)
    if client is None:
        raise NotFound("client")
    add(client["country"], "residence")
    add(profile["nationality"], "nationality")
    for r in await db.fetch(
        "SELECT DISTINCT issuing_country FROM kyc_documents WHERE client = {} AND status = 'approved' "
        "AND category = 'identity' AND issuing_country <> ''",
        client_id,
    ):
        add(r["issuing_country"], "identity document")
    if profile["entity_type"] == "corporate":
        company = await db.fetchrow("SELECT country FROM kyc_companies WHERE client = $1", client_id)
        if company:
            add(company["country"], "company")
        for r in await db.fetch(
            "SELECT role, nationality FROM kyc_related_persons WHERE client = {} AND removed_at IS NULL",
            client_id,
        ):
            add(r["nationality"], "director" if r["role"] == "director" else "beneficial owner")
    return found


def _level_from_score(score: int, p: dict[str, Any]) -> str:
    if score >= p["risk.high_from"]:
        return "high"
    if score >= p["risk.medium_from"]:
        return "medium"
    return "low"


async def assess(client_id: int, *, deposits: Decimal | None = None) -> Assessment:
    """The client's risk as the inputs stand now (nothing is stored)."""
    p = await parameters.values()
    points = {"low": 0, "medium": int(p["risk.points_medium"]), "high": int(p["risk.points_high"])}
    profile = await levels.profile_of(client_id)
    factors: list[Factor] = []

    countries = await _countries(client_id, profile)
    listed = {
        r["country"]: r
        for r in await db.fetch(
            "SELECT country, risk, source FROM kyc_country_risks WHERE country = ANY({})", list(countries)
        )
    }
    for code, how in countries.items():
        row = listed.get(code)
        level = row["risk"] if row else "low"
        why = f" ({SOURCE_LABELS.get(row['source'], row['source'] or 'listed')})" if row else ""
        factors.append(
            Factor("country", level, points[level], f"{dossier.country_name(code)}{why}: {', '.join(how)}")
        )
    if not countries:
        factors.append(Factor("country", "low", 0, "No country on file"))

    if profile["pep"]:
        factors.append(
            Factor("pep", "high", points["high"], "Politically exposed person (compliance)", decisive=True)
        )
    else:
        factors.append(Factor("pep", "low", 0, "Not a politically exposed person"))

    sanctions = await db.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM compliance_blocks WHERE active_client = $1) AS blocked, "
        "(SELECT count(*) FROM screening_cases WHERE client = $1 AND status = 'open') AS open_cases, "
        "EXISTS (SELECT 1 FROM screening_subjects WHERE client = $1) AS screened",
        client_id,
    )
    assert sanctions is not None
    if sanctions["blocked"]:
        factors.append(
            Factor("sanctions", "high", points["high"], "Confirmed sanctions match: blocked", decisive=True)
        )
    elif sanctions["open_cases"]:
        n = int(sanctions["open_cases"])
        factors.append(
            Factor(
                "sanctions",
                "high",
                points["high"],
                f"{n} open sanctions case{'s' if n != 1 else ''} awaiting a decision",
                decisive=True,
            )
        )
    else:
        detail = "No open sanctions case" if sanctions["screened"] else "Not screened yet"
        factors.append(Factor("sanctions", "low", 0, detail))

    code = profile["source_of_funds"]
    source = (
        await db.fetchrow("SELECT label, risk FROM kyc_funds_sources WHERE code = $1", code) if code else None
    )
    if source is None:
        factors.append(
            Factor("source_of_funds", "low", 0, "Source of funds not declared" if not code else code)
        )
    else:
        level = source["risk"] if source["risk"] in RANK else "low"
        factors.append(Factor("source_of_funds", level, points[level], f"Source of funds: {source['label']}"))

    total = await deposit_volume(client_id) if deposits is None else deposits
    level = (
        "high"
        if total >= p["risk.deposits_high"]
        else "medium"
        if total >= p["risk.deposits_medium"]
        else "low"
    )
    factors.append(Factor("deposits", level, points[level], f"Deposits: {total:,.0f} USD"))

    score = sum(f.points for f in factors)
    overall = _level_from_score(score, p)
    for f in factors:
        if f.decisive and RANK[f.level] > RANK[overall]:
            overall = f.level
    return Assessment(overall, score, factors)


# --- storing it ---------------------------------------------------------------------------------


async def reassess(
    client_id: int, actor: Actor, reason: str, *, deposits: Decimal | None = None
) -> dict[str, Any]:
    """Assess and store; in the caller's transaction (or its own), with the profile locked.
    Returns {"level", "previous", "score", "changed"}."""
    if await db.fetchrow("SELECT 1 FROM clients WHERE id = $1", client_id) is None:
        raise NotFound("client")
    async with transaction():
        profile = await levels.profile_of(client_id, lock=True)
        result = await assess(client_id, deposits=deposits)
        old = profile["risk"] or ""
        factors = result.as_json()
        stored = profile["risk_factors"]
        stored = json.loads(stored) if isinstance(stored, str) else stored
        same = old == result.level and profile["risk_score"] == result.score and stored == factors
        edd_task = profile["risk_edd_task"]
        if result.level != "high" and edd_task is not None:
            edd_task = None  # the high-risk episode is over; the next one gets its own task
        if old != result.level:
            await audit.record(
                actor,
                "kyc.risk_changed",
                "client",
                client_id,
                before={"risk": old or None, "score": profile["risk_score"]},
                after={"risk": result.level, "score": result.score, "factors": factors, "reason": reason},
            )
            reasons = "; ".join(f.detail for f in result.factors if f.level != "low") or "no risk factor"
            if not old:
                verb = f"assessed as {result.level}"
            elif RANK[result.level] > RANK[old]:
                verb = f"raised from {old} to {result.level}"
            else:
                verb = f"lowered from {old} to {result.level}"
            await record_event(
                client_id,
                "kyc",
                f"Risk {verb} (score {result.score}): {reasons}. Why now: {reason}",
                "client",
                client_id,
            )
            if result.level == "high" and edd_task is None:
                edd_task = await _open_edd_task(client_id, result, actor)
        await db.fetch(
            "UPDATE kyc_profiles SET risk = {}, risk_score = {}, risk_factors = {}::jsonb, risk_assessed_at = now(), "
            "risk_edd_task = {} WHERE client = {}",
            result.level,
            result.score,
            json.dumps(factors),
            edd_task,
            client_id,
        )
        if not same:
            await live.publish(f"staff:client:{client_id}", "client_page.kyc", client_id=client_id)
    return {"level": result.level, "previous": old, "score": result.score, "changed": old != result.level}


async def _edd_assignee() -> dict[str, Any] | None:
    """The active compliance officer with the fewest open tasks (an administrator if there is none)."""
    for role in ("compliance", "admin"):
        row = await db.fetchrow(
            "SELECT s.id, s.name FROM staff_users s WHERE s.is_active AND $1 = ANY(s.roles) "
            "ORDER BY (SELECT count(*) FROM client_tasks t WHERE t.assignee = s.id AND t.done_at IS NULL), s.id "
            "LIMIT 1",
            role,
        )
        if row is not None:
            return row
    return None


async def _open_edd_task(client_id: int, result: Assessment, actor: Actor) -> int | None:
    """No colleague asked for this task, so it is created by (and for) the officer it goes to; the
    audit row names whoever's change triggered the reassessment, and says the assessment opened it."""
    assignee = await _edd_assignee()
    if assignee is None:
        log.warning(
            "client %s is high risk but there is no active compliance officer for the EDD task", client_id
        )
        await record_event(
            client_id, "task", "Enhanced due diligence needed: no active compliance officer to assign it to"
        )
        return None
    days = int(await parameters.value("risk.edd_due_days"))
    now = datetime.now(UTC)
    reasons = ", ".join(f.detail for f in result.factors if f.level == "high") or "risk score"
    title = f"Enhanced due diligence (high risk): {reasons}"[:200]
    task = Task(
        client=client_id,
        title=title,
        due_at=now + timedelta(days=days),
        assignee=assignee["id"],
        created_by=assignee["id"],
        created_at=now,
    )
    await task.save()
    await audit.record(
        actor,
        "client.task_added",
        "client",
        client_id,
        after={
            "task_id": task.id,
            "title": title,
            "due_at": task.due_at.isoformat(),
            "assignee": assignee["id"],
            "opened_by": "risk assessment",
        },
    )
    await record_event(
        client_id, "task", f"Task for {task.due_at:%Y-%m-%d} ({assignee['name']}): {title}", "task", task.id
    )
    await live.publish(f"staff:client:{client_id}", "client_page.tasks", client_id=client_id)
    return int(task.id)


async def reassess_many(
    *, country: str = "", after_id: int = 0, limit: int | None = None
) -> tuple[int, int | None]:
    """A batch of clients (every client, or those connected to `country`), from `after_id`;
    (how many were reassessed, the last id or None when done). Used by the jobs."""
    where = "TRUE"
    args: list[Any] = [after_id]
    if country:
        where = (
            "(c.country = {c} OR p.nationality = {c} OR EXISTS (SELECT 1 FROM kyc_companies k WHERE k.client = c.id "
            "AND k.country = {c}) OR EXISTS (SELECT 1 FROM kyc_related_persons r WHERE r.client = c.id AND "
            "r.removed_at IS NULL AND r.nationality = {c}) OR EXISTS (SELECT 1 FROM kyc_documents d WHERE "
            "d.client = c.id AND d.status = 'approved' AND d.issuing_country = {c}))"
        ).replace("{c}", "{}")
        args += [country] * 5
    limit = limit or BATCH
    rows = await db.fetch(
        f"SELECT c.id FROM clients c LEFT JOIN kyc_profiles p ON p.client = c.id WHERE c.id > {{}} AND {where} "
        f"ORDER BY c.id LIMIT {int(limit)}",
        *args,
    )
    reason = f"the risk of {dossier.country_name(country)} changed" if country else "the risk model changed"
    for r in rows:
        await reassess(int(r["id"]), ACTOR, reason)
    return len(rows), (int(rows[-1]["id"]) if len(rows) == limit else None)


async def reassess_unassessed(limit: int | None = None) -> int:
    """Clients never assessed (before this model existed, or whose job was lost)."""
    limit = limit or BATCH
    rows = await db.fetch(
        "SELECT c.id FROM clients c LEFT JOIN kyc_profiles p ON p.client = c.id "
        f"WHERE COALESCE(p.risk, '') = '' ORDER BY c.id LIMIT {int(limit)}"
    )
    for r in rows:
        await reassess(int(r["id"]), ACTOR, "first assessment")
    return len(rows)


def enqueue_clients(client_ids: list[int], reason: str) -> None:
    """Reassess these clients by a job once the current transaction commits."""
    jobs.enqueue_after_commit(
        CLIENTS_JOB,
        key=f"kyc:risk:clients:{client_ids[0]}:{len(client_ids)}:{datetime.now(UTC).timestamp()}",
        client_ids=client_ids,
        reason=reason,
    )


def enqueue_reassessment(country: str = "") -> None:
    jobs.enqueue_after_commit(
        REASSESS_JOB, key=f"kyc:risk:many:{country or 'all'}:{datetime.now(UTC).timestamp()}", country=country
    )


# --- staff: a client's risk ----------------------------------------------------------------------


async def funds_sources(*, active_only: bool = True) -> list[dict[str, Any]]:
    return await db.fetch(
        "SELECT id, code, label, risk, sort_order, active FROM kyc_funds_sources "
        + ("WHERE active " if active_only else "")
        + "ORDER BY sort_order, id"
    )


async def panel_for(viewer: Principal, client_id: int) -> dict[str, Any]:
    """The risk part of the client page's KYC panel (404 to whoever may not see the client)."""
    client = await get_client_for(viewer, client_id)
    profile = await levels.profile_of(client_id)
    factors = profile["risk_factors"]
    factors = json.loads(factors) if isinstance(factors, str) else factors
    task = None
    if profile["risk_edd_task"] is not None:
        task = await db.fetchrow(
            "SELECT t.id, t.title, t.due_at, t.done_at, s.name AS assignee_name FROM client_tasks t "
            "JOIN staff_users s ON s.id = t.assignee WHERE t.id = $1",
            profile["risk_edd_task"],
        )
    sources = await funds_sources(active_only=False)
    return {
        "client": client,
        "risk_profile": profile,
        "risk_label": LEVEL_LABELS.get(profile["risk"], profile["risk"]),
        "risk_factors": factors,
        "risk_task": task,
        "risk_can_edit": is_reviewer(viewer),
        "funds_sources": sources,
        "funds_label": next((s["label"] for s in sources if s["code"] == profile["source_of_funds"]), ""),
        "risk_errors": {},
        "risk_values": {},
    }


async def set_inputs(
    viewer: Principal, client_id: int, pep: bool, source_of_funds: str, note: str, actor: Actor
) -> dict[str, Any]:
    """Compliance records the PEP status and the source of funds (with why), then reassesses."""
    require_reviewer(viewer)
    await get_client_for(viewer, client_id)
    note = " ".join((note or "").split())
    code = (source_of_funds or "").strip()
    errors: dict[str, str] = {}
    if code and not await db.fetchrow("SELECT 1 FROM kyc_funds_sources WHERE code = $1", code):
        errors["source_of_funds"] = "Choose a source of funds from the list."
    if len(note) > MAX_NOTE:
        errors["note"] = f"Keep the note under {MAX_NOTE} characters."
    async with transaction():
        profile = await levels.profile_of(client_id, lock=True)
        before = {"pep": profile["pep"], "source_of_funds": profile["source_of_funds"]}
        after = {"pep": bool(pep), "source_of_funds": code}
        if before != after and not note and "note" not in errors:
            errors["note"] = "Say why (what you checked, and where): it is kept for the auditors."
        if errors:
            raise FormErrors(errors)
        if before == after:
            return await reassess(client_id, actor, f"reassessed by {viewer.name}")
        await db.fetch(
            "UPDATE kyc_profiles SET pep = {}, source_of_funds = {}, updated_at = now() WHERE client = {}",
            bool(pep),
            code,
            client_id,
        )
        await audit.record(
            actor,
            "kyc.risk_inputs_changed",
            "client",
            client_id,
            before=before,
            after={**after, "note": note},
        )
        changes = []
        if before["pep"] != after["pep"]:
            changes.append(
                "marked as a politically exposed person" if pep else "no longer a politically exposed person"
            )
        if before["source_of_funds"] != code:
            changes.append(f"source of funds recorded as {code or 'not declared'}")
        await record_event(
            client_id, "kyc", f"{viewer.name}: {', '.join(changes)} ({note})", "client", client_id
        )
        return await reassess(client_id, actor, f"{', '.join(changes)} by {viewer.name}")


async def reassess_by(viewer: Principal, client_id: int, actor: Actor) -> dict[str, Any]:
    require_reviewer(viewer)
    await get_client_for(viewer, client_id)
    return await reassess(client_id, actor, f"reassessed by {viewer.name}")
