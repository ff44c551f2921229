"""The demo broker's crowd: a few hundred generated clients, three desks, routed leads, notes,
tasks and IB referrals, so every list, filter and panel has something to show.

Deterministic (`random.Random(2026)`) and keyed by e-mail: a second run generates the same
people, finds them all present and writes nothing. Rows go in with bulk statements; only the
routing goes lead by lead, through the same service (and audit trail) real leads take.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers

from app.clients.lifecycle import label
from app.core import audit
from app.core.audit import Actor
from app.core.db import DB
from app.routing import services as routing
from app.settings import get_settings

SIZE = 300
DOMAIN = "clients.demo.fxcrm.test"

# desk -> (countries, languages routed there by rule, agents' e-mails)
DESKS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "EU desk": (
        ("DE", "AT", "CH", "FR", "ES", "IT", "GB", "NL", "PL", "GR", "CY"),
        ("de", "fr"),
        ("sales@demo.fxcrm.test", "sales.eu@demo.fxcrm.test"),
    ),
    "MENA desk": (
        ("AE", "SA", "EG", "JO", "KW", "QA"),
        ("ar",),
        ("sales.mena@demo.fxcrm.test",),
    ),
    "APAC desk": (
        ("SG", "MY", "TH", "VN", "IN", "AU", "JP"),
        (),
        ("sales@demo.fxcrm.test", "sales.mena@demo.fxcrm.test"),
    ),
}
CAPACITY = 60

# country -> (weight, language, region of names)
COUNTRIES: dict[str, tuple[int, str, str]] = {
    "DE": (14, "de", "de"),
    "AT": (4, "de", "de"),
    "CH": (3, "de", "de"),
    "FR": (7, "fr", "fr"),
    "ES": (6, "es", "es"),
    "IT": (6, "it", "it"),
    "GB": (8, "en", "en"),
    "NL": (3, "nl", "en"),
    "PL": (3, "pl", "en"),
    "GR": (2, "el", "en"),
    "CY": (2, "en", "en"),
    "AE": (8, "ar", "ar"),
    "SA": (5, "ar", "ar"),
    "EG": (4, "ar", "ar"),
    "JO": (2, "ar", "ar"),
    "SG": (4, "en", "asia"),
    "MY": (3, "ms", "asia"),
    "TH": (3, "th", "asia"),
    "VN": (3, "vi", "asia"),
    "IN": (5, "en", "asia"),
    "AU": (3, "en", "en"),
    "BR": (2, "pt", "es"),  # no rule matches: these leads wait in the unassigned pool
}
NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "de": (
        ("Jonas", "Lea", "Felix", "Mia", "Lukas", "Hannah", "Paul", "Emma"),
        ("Müller", "Schmidt", "Weber", "Fischer", "Wagner", "Becker"),
    ),
    "fr": (
        ("Louis", "Chloé", "Hugo", "Camille", "Jules", "Léa"),
        ("Martin", "Bernard", "Dubois", "Moreau", "Laurent"),
    ),
    "es": (
        ("Lucía", "Mateo", "Sofía", "Diego", "Valeria", "Pablo"),
        ("García", "López", "Martínez", "Sánchez", "Romero"),
    ),
    "it": (
        ("Giulia", "Marco", "Chiara", "Luca", "Sara", "Matteo"),
        ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi"),
    ),
    "en": (
        ("Oliver", "Amelia", "Jack", "Isla", "Harry", "Grace", "Noah", "Ella"),
        ("Smith", "Jones", "Taylor", "Brown", "Evans", "Walker"),
    ),
    "ar": (
        ("Omar", "Layla", "Yousef", "Fatima", "Khalid", "Noor", "Ahmed", "Mariam"),
        ("Al-Farsi", "Haddad", "Nasser", "Saleh", "Mansour"),
    ),
    "asia": (
        ("Wei", "Mei", "Arjun", "Priya", "Minh", "Siti", "Kenji", "Anh"),
        ("Tan", "Lim", "Sharma", "Nguyen", "Wong", "Patel"),
    ),
}
STAGE_WEIGHTS = {
    "lead": 30,
    "registered": 15,
    "kyc_pending": 10,
    "kyc_approved": 8,
    "funded": 10,
    "active": 15,
    "dormant": 7,
    "churned": 5,
}
ROAD = ("lead", "registered", "kyc_pending", "kyc_approved", "funded", "active", "dormant", "churned")
NOTES = (
    "Asked about leverage on gold; sent the product sheet.",
    "Prefers a call after 18:00 local time.",
    "Interested in the ECN account, wants to start with 2,000 USD.",
    "Did not pick up, left a voicemail.",
    "Documents promised by Friday.",
    "Compared our spreads with another broker, follow up next week.",
)
TASKS = (
    "Call back",
    "Chase KYC documents",
    "Explain the ECN account",
    "Check first deposit",
    "Win-back call",
)
IB_CODES = ("IBMASTER", "IBSUB01")


@dataclass
class Person:
    email: str
    first: str
    last: str
    phone: str
    country: str
    language: str
    stage: str
    since: datetime
    notes: list[tuple[str, bool]]  # (text, mentions a colleague)
    task: tuple[str, int, bool] | None  # (title, due in days, done)
    ib: str | None


def _phone(rng: random.Random, country: str) -> str:
    """A valid-looking mobile number in E.164: the country's example number with random last digits."""
    example = phonenumbers.example_number_for_type(country, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        return ""
    national = str(example.national_number)
    for _ in range(5):
        candidate = national[:-4] + f"{rng.randrange(10_000):04d}"
        number = phonenumbers.parse(f"+{example.country_code}{candidate}")
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)


def people(now: datetime) -> list[Person]:
    """The same crowd on every run (only the dates follow the clock)."""
    rng = random.Random(2026)  # noqa: S311 (demo data, not secrets)
    countries = list(COUNTRIES)
    weights = [COUNTRIES[c][0] for c in countries]
    stages = list(STAGE_WEIGHTS)
    crowd = []
    for i in range(SIZE):
        country = rng.choices(countries, weights)[0]
        _w, language, region = COUNTRIES[country]
        firsts, lasts = NAMES[region]
        first, last = rng.choice(firsts), rng.choice(lasts)
        stage = rng.choices(stages, [STAGE_WEIGHTS[s] for s in stages])[0]
        days = rng.uniform(0.05, 6) if stage == "lead" else rng.uniform(7, 240)
        notes = [(rng.choice(NOTES), rng.random() < 0.2) for _ in range(rng.choice((0, 0, 1, 1, 2)))]
        task = None
        if rng.random() < 0.25:
            task = (rng.choice(TASKS), rng.randint(-4, 10), rng.random() < 0.3)
        ib = rng.choice(IB_CODES) if stage != "lead" and rng.random() < 0.2 else None
        local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
        local = local.encode("ascii", "ignore").decode() or "client"
        crowd.append(
            Person(
                email=f"{local}.{i:03d}@{DOMAIN}",
                first=first,
                last=last,
                phone=_phone(rng, country),
                country=country,
                language=language,
                stage=stage,
                since=now - timedelta(days=days),
                notes=notes,
                task=task,
                ib=ib,
            )
        )
    return crowd


async def _q(sql: str, *args: Any) -> list[dict[str, Any]]:
    tx = DB.current_transaction.get()
    assert tx is not None, "the demo crowd loads inside load_demo()'s transaction"
    return [dict(r) for r in await tx.connection.fetch(sql, *args)]


async def _desks(actor: Actor) -> int:
    created = 0
    for name, (countries, languages, agents) in DESKS.items():
        row = await _q(
            "INSERT INTO routing_desks (name, active) VALUES ($1, true) ON CONFLICT (name) DO NOTHING RETURNING id",
            name,
        )
        if not row:
            continue
        desk_id = row[0]["id"]
        created += 1
        await audit.record(actor, "desk.created", "desk", desk_id, after={"name": name})
        rules = [(10, "", lang) for lang in languages] + [(20, c, "") for c in countries]
        await _q(
            "INSERT INTO routing_rules (priority, country, language, desk) "
            "SELECT p, c, l, $4 FROM unnest($1::int[], $2::text[], $3::text[]) AS r(p, c, l)",
            [r[0] for r in rules],
            [r[1] for r in rules],
            [r[2] for r in rules],
            desk_id,
        )
        await _q(
            "INSERT INTO routing_desk_members (desk, staff, capacity, active) "
            "SELECT $1, id, $2, true FROM staff_users WHERE email = ANY($3::text[]) ON CONFLICT DO NOTHING",
            desk_id,
            CAPACITY,
            list(agents),
        )
        await audit.record(
            actor,
            "desk.configured",
            "desk",
            desk_id,
            after={"rules": len(rules), "members": list(agents), "capacity": CAPACITY},
        )
    return created


async def load(actor: Actor, *, password_hash: Callable[[], str]) -> dict[str, int]:
    """Inside the caller's transaction; the counts of what this run added."""
    now = datetime.now(UTC)
    desks = await _desks(actor)
    crowd = people(now)
    pw = password_hash() if any(p.stage != "lead" for p in crowd) else None
    rows = await _q(
        "INSERT INTO clients (email, first_name, last_name, phone, country, language, password_hash, "
        "email_verified_at, stage, stage_changed_at, is_active, totp_enabled, totp_last_step, created_at) "
        "SELECT e, f, l, ph, c, lang, CASE WHEN s = 'lead' THEN NULL ELSE $8 END, "
        "CASE WHEN s = 'lead' THEN NULL ELSE t END, s, $9, true, false, 0, t "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], "
        "$10::timestamptz[]) AS x(e, f, l, ph, c, lang, s, t) "
        "ON CONFLICT (email) DO NOTHING RETURNING id, email",
        [p.email for p in crowd],
        [p.first for p in crowd],
        [p.last for p in crowd],
        [p.phone for p in crowd],
        [p.country for p in crowd],
        [p.language for p in crowd],
        [p.stage for p in crowd],
        pw,
        now,
        [p.since for p in crowd],
    )
    if not rows:
        return {"clients": 0, "desks": desks, "notes": 0, "tasks": 0, "referred": 0}
    ids = {r["email"]: r["id"] for r in rows}
    fresh = sorted((p for p in crowd if p.email in ids), key=lambda p: p.since)
    history: list[tuple[int, str | None, str, datetime]] = []
    for p in fresh:
        path = ROAD[: ROAD.index(p.stage) + 1]
        step = (now - timedelta(hours=2) - p.since) / max(len(path) - 1, 1)
        history += [
            (ids[p.email], frm, to, p.since + step * n)
            for n, (frm, to) in enumerate(zip((None, *path[:-1]), path, strict=True))
        ]
    latest = {h[0]: h[3] for h in history}  # each client's last move
    await _q(
        "UPDATE clients c SET stage_changed_at = x.t FROM unnest($1::int[], $2::timestamptz[]) AS x(id, t) "
        "WHERE c.id = x.id",
        list(latest),
        list(latest.values()),
    )
    await _q(
        "INSERT INTO client_stage_changes (client, from_stage, to_stage, reason, actor_kind, actor_id, "
        "actor_label, changed_at) SELECT c, f, s, 'demo data', $5, NULL, $6, t "
        "FROM unnest($1::int[], $2::text[], $3::text[], $4::timestamptz[]) AS x(c, f, s, t)",
        [h[0] for h in history],
        [h[1] for h in history],
        [h[2] for h in history],
        [h[3] for h in history],
        actor.kind,
        actor.label,
    )
    await _timeline(
        [
            (h[0], h[3], "stage", f"Stage: {label(h[1])} → {label(h[2])} (demo data)", "client", h[0])
            for h in history
        ]
    )
    await audit.record(
        actor, "demo.clients_generated", "client", None, after={"clients": len(fresh), "seed": 2026}
    )
    for p in fresh:
        await routing.route_lead(ids[p.email], actor)
    await _backdate_assignments(fresh, ids, now)
    notes, tasks = await _workbench(fresh, ids, now)
    referred = await _attributions(fresh, ids)
    return {"clients": len(fresh), "desks": desks, "notes": notes, "tasks": tasks, "referred": referred}


async def _timeline(events: list[tuple[int, datetime, str, str, str, int]]) -> None:
    await _q(
        "INSERT INTO client_timeline (client, occurred_at, kind, summary, ref_type, ref_id) "
        "SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::int[])",
        *([e[i] for e in events] for i in range(6)),
    )


async def _backdate_assignments(fresh: list[Person], ids: dict[str, int], now: datetime) -> None:
    """Routing ran just now; make the clocks tell the story of when each client arrived."""
    sla = timedelta(minutes=get_settings().first_contact_sla_minutes)
    rows = []
    for n, p in enumerate(fresh):
        contacted = p.stage != "lead" or n % 3 == 0
        first = p.since + timedelta(minutes=20 + n % 90) if contacted else None
        rows.append((ids[p.email], p.since, p.since + sla, min(first, now) if first else None))
    await _q(
        "UPDATE routing_assignments a SET assigned_at = x.t, first_contact_due_at = x.due, "
        "first_contact_at = x.f, last_touched_at = coalesce(x.f, x.t) "
        "FROM unnest($1::int[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[]) AS x(c, t, due, f) "
        "WHERE a.client = x.c",
        *([r[i] for r in rows] for i in range(4)),
    )


async def _workbench(fresh: list[Person], ids: dict[str, int], now: datetime) -> tuple[int, int]:
    """Notes by the client's owner (some mentioning a colleague) and tasks for the owner."""
    owners = {
        r["client"]: r["owner"]
        for r in await _q(
            "SELECT a.client, coalesce(a.owner, s.id) AS owner FROM routing_assignments a, staff_users s "
            "WHERE a.client = ANY($1::int[]) AND s.email = 'sales@demo.fxcrm.test'",
            list(ids.values()),
        )
    }
    staff = {
        r["email"]: (r["id"], r["email"].split("@")[0])
        for r in await _q("SELECT id, email FROM staff_users WHERE email LIKE '%@demo.fxcrm.test'")
    }
    colleague_id, colleague_handle = staff["sales@demo.fxcrm.test"]
    compliance_id, compliance_handle = staff["compliance@demo.fxcrm.test"]
    note_rows: list[tuple[int, int, str, datetime, int | None, bool]] = []
    task_rows: list[tuple[int, str, datetime, int, datetime | None, datetime]] = []
    for p in fresh:
        cid = ids[p.email]
        owner = owners.get(cid, colleague_id)
        for k, (text, mentions) in enumerate(p.notes):
            at = p.since + (now - p.since) * (k + 1) / (len(p.notes) + 1)
            mentioned = compliance_id if owner == colleague_id else colleague_id
            handle = compliance_handle if owner == colleague_id else colleague_handle
            body = f"{text} @{handle} please have a look." if mentions else text
            seen = at < now - timedelta(days=2)
            note_rows.append((cid, owner, body, at, mentioned if mentions else None, seen))
        if p.task:
            title, due_in, done = p.task
            created = max(p.since, now - timedelta(days=5))
            task_rows.append(
                (
                    cid,
                    title,
                    now + timedelta(days=due_in),
                    owner,
                    created + timedelta(hours=3) if done else None,
                    created,
                )
            )
    if note_rows:
        notes = await _q(
            "INSERT INTO client_notes (client, author, body, created_at) "
            "SELECT * FROM unnest($1::int[], $2::int[], $3::text[], $4::timestamptz[]) RETURNING id",
            *([r[i] for r in note_rows] for i in range(4)),
        )
        tagged = [(n["id"], r) for n, r in zip(notes, note_rows, strict=True) if r[4] is not None]
        await _q(
            "INSERT INTO note_mentions (note, staff, seen_at) "
            "SELECT * FROM unnest($1::int[], $2::int[], $3::timestamptz[])",
            [m[0] for m in tagged],
            [m[1][4] for m in tagged],
            [m[1][3] if m[1][5] else None for m in tagged],
        )
        await _timeline(
            [
                (r[0], r[3], "note", f"Note: {r[2][:120]}", "note", n["id"])
                for n, r in zip(notes, note_rows, strict=True)
            ]
        )
    if task_rows:
        tasks = await _q(
            "INSERT INTO client_tasks (client, title, due_at, assignee, created_by, done_at, created_at) "
            "SELECT c, t, d, a, a, x.done, cr FROM unnest($1::int[], $2::text[], $3::timestamptz[], $4::int[], "
            "$5::timestamptz[], $6::timestamptz[]) AS x(c, t, d, a, done, cr) RETURNING id",
            *([r[i] for r in task_rows] for i in range(6)),
        )
        await _timeline(
            [
                (r[0], r[5], "task", f"Task for {r[2]:%Y-%m-%d}: {r[1]}", "task", t["id"])
                for t, r in zip(tasks, task_rows, strict=True)
            ]
        )
    return len(note_rows), len(task_rows)


async def _attributions(fresh: list[Person], ids: dict[str, int]) -> int:
    referred = [p for p in fresh if p.ib]
    rows = await _q(
        "INSERT INTO partner_attributions (client, partner, source, click, clicked_at, landing_page, attributed_at) "
        "SELECT x.c, p.id, 'code', NULL, NULL, 'https://www.example.com/open-account', x.t "
        "FROM unnest($1::int[], $2::text[], $3::timestamptz[]) AS x(c, code, t) JOIN partners p ON p.code = x.code "
        "ON CONFLICT (client) DO NOTHING RETURNING client",
        [ids[p.email] for p in referred],
        [p.ib for p in referred],
        [p.since for p in referred],
    )
    return len(rows)
