"""Running an import: the file in batches, each batch one transaction, set-based SQL throughout.

A batch commits its clients, their stage history and timeline rows, assignments, tags, lead
sources, the audit events (one per created or changed client, appended with
`audit.record_many`), the rejected rows and the run's new `position`, all together or not at
all. A retried job starts at the committed position; the run row is locked per batch and its
position compared, so two runners of one import cannot both write a batch. E-mail uniqueness
(`ON CONFLICT (email) DO NOTHING`) is the second guard against creating anyone twice.

Within one file, the first row with an e-mail wins: every later (otherwise valid) row with the
same e-mail is rejected as a duplicate, even when the first was rejected for another reason, so
what happens to a row never depends on how the file was split into batches.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from app.clients import lifecycle
from app.clients.cache import summaries
from app.clients.scoping import is_desk_scoped, visible_client_sql
from app.core import audit, db, live
from app.core.audit import Actor, Entry
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.imports import reading, rows
from app.imports.services import _text, file_of, load_run, may_import
from app.settings import get_settings

log = logging.getLogger(__name__)

BATCH = 2000
LEAD_SOURCE_CHANNEL = "import"


async def _importer(run: dict[str, Any]) -> tuple[Principal, Actor] | str:
    """Who the run acts for, as they are now (a deactivated or demoted importer stops it)."""
    row = await db.fetchrow(
        "SELECT id, email, name, roles, is_active FROM staff_users WHERE id = $1", run["created_by"]
    )
    if row is None or not row["is_active"]:
        return "The colleague who started this import is no longer active."
    p = Principal(
        kind="staff",
        id=row["id"],
        email=row["email"],
        name=row["name"],
        session_id=0,
        mfa_passed=True,
        totp_enabled=True,
        roles=frozenset(row["roles"] or ()),
    )
    if not may_import(p):
        return "The colleague who started this import no longer has a role that may import clients."
    return p, Actor("staff", str(p.id), p.email, run.get("actor_ip"), run.get("actor_user_agent"))


async def _run_file(run: dict[str, Any]) -> tuple[dict[str, Any], bytes] | None:
    row = await db.fetchrow("SELECT actor_ip, actor_user_agent FROM client_imports WHERE id = $1", run["id"])
    content = await file_of(run["id"])
    if row is None or content is None:
        return None
    return {**run, **row}, content


async def run_import(run_id: int, *, touch: Callable[[], Awaitable[Any]] | None = None) -> str:
    """Import what is left of the run; returns its status. Safe to call again at any time."""
    run = await load_run(run_id)
    if run is None or run["status"] not in ("queued", "running"):
        return "missing" if run is None else str(run["status"])
    loaded = await _run_file(run)
    if loaded is None:
        return await fail(run_id, "The uploaded file is no longer stored.")
    run, content = loaded
    who = await _importer(run)
    if isinstance(who, str):
        return await fail(run_id, who)
    viewer, actor = who
    text = _text(run, content)
    first_seen = _first_lines(text, run["delimiter"], run["mapping"])
    claimed = await db.fetchrow(
        "UPDATE client_imports SET status = 'running', started_at = COALESCE(started_at, now()) "
        "WHERE id = $1 AND status IN ('queued', 'running') RETURNING position",
        run_id,
    )
    if claimed is None:
        return "finished"
    position = int(claimed["position"])
    records = reading.records(text, run["delimiter"], skip=position)
    while batch := list(islice(records, BATCH)):
        if not await _batch(run, viewer, actor, batch, position, first_seen):
            return "superseded"  # another runner holds this import; it carries on
        position += len(batch)
        if touch is not None:
            await touch()
    return await _finish(run, actor)


def _first_lines(text: str, delimiter: str, mapping: dict[int, str]) -> dict[str, int]:
    first: dict[str, int] = {}
    for line, cells in reading.records(text, delimiter):
        key = rows.email_key(cells, mapping)
        if key and key not in first:
            first[key] = line
    return first


async def _batch(
    run: dict[str, Any],
    viewer: Principal,
    actor: Actor,
    batch: list[tuple[int, list[str]]],
    start: int,
    first_seen: dict[str, int],
) -> bool:
    mapping, mode, width = run["mapping"], run["mode"], len(run["header"])
    rejects: list[tuple[int, list[str], str]] = []
    good: list[rows.Row] = []
    for line, cells in batch:
        row = rows.check(line, cells, width, mapping, mode)
        if row.blank:
            continue
        first = first_seen.get(rows.email_key(cells, mapping))
        if not row.ok:
            rejects.append((line, row.raw(), row.reason()))
        elif first is not None and first != line:
            rejects.append((line, row.raw(), f"Duplicate e-mail in the file: its first row is line {first}."))
        else:
            good.append(row)
    async with transaction():
        lock = await db.fetchrow(
            "SELECT position, status FROM client_imports WHERE id = $1 FOR UPDATE", run["id"]
        )
        if lock is None or lock["status"] != "running" or lock["position"] != start:
            return False
        existing = await _existing(viewer, [r.email for r in good])
        creates: list[rows.Row] = []
        updates: list[tuple[rows.Row, dict[str, Any]]] = []
        scoped = is_desk_scoped(viewer)
        for r in good:
            hit = existing.get(r.email)
            if mode == "create" and hit is not None:
                rejects.append((r.line, r.raw(), "A client with this e-mail already exists."))
            elif hit is not None and not hit["visible"]:
                rejects.append((r.line, r.raw(), "A client with this e-mail exists outside your desks."))
            elif hit is not None:
                updates.append((r, hit))
            elif mode == "update":
                reason = "No client with this e-mail" + (" in your desks." if scoped else ".")
                rejects.append((r.line, r.raw(), reason))
            else:
                creates.append(r)
        now = datetime.now(UTC)
        created, conflicts = await _create(run, actor, creates, now)
        for r in conflicts:
            rejects.append((r.line, r.raw(), "A client with this e-mail was created while the import ran."))
        changed, unchanged = await _update(run, updates, now)
        entries = [_created_entry(run, r, client_id) for r, client_id, _ in created]
        entries += [_updated_entry(run, r, hit, diff, tags) for r, hit, diff, tags in changed]
        await audit.record_many(actor, entries)
        await _reject(run["id"], sorted(rejects, key=lambda x: x[0]))
        await db.fetch(
            "UPDATE client_imports SET position = {}, created = created + {}, updated = updated + {}, "
            "unchanged = unchanged + {}, rejected = rejected + {} WHERE id = {}",
            start + len(batch),
            len(created),
            len(changed),
            unchanged,
            len(rejects),
            run["id"],
        )
        if any(diff for _, _, diff, _ in changed):
            await summaries.forget(None)  # the portal's cached names: forget them all once per batch
        await live.publish(f"staff:user:{run['created_by']}", "import.progress", run_id=run["id"])
    return True


async def _existing(viewer: Principal, emails: list[str]) -> dict[str, dict[str, Any]]:
    """Clients with these e-mails (compared lower-cased), locked, with whether the importer sees them."""
    if not emails:
        return {}
    scope, params = visible_client_sql(viewer)
    found: dict[str, dict[str, Any]] = {}
    for r in await db.fetch(
        f"SELECT c.id, lower(c.email) AS key, c.first_name, c.last_name, c.phone, c.country, c.language, "
        f"({scope}) AS visible FROM clients c WHERE lower(c.email) = ANY({{}}::text[]) "
        "ORDER BY c.id FOR UPDATE OF c",
        *params,
        emails,
    ):
        found.setdefault(r["key"], r)  # the oldest, should a legacy row differ only in case
    return found


async def _create(
    run: dict[str, Any], actor: Actor, creates: list[rows.Row], now: datetime
) -> tuple[list[tuple[rows.Row, int, list[str]]], list[rows.Row]]:
    """Insert the new clients with everything a captured lead gets; (row, id, tags) and the rows
    another writer created meanwhile."""
    if not creates:
        return [], []
    inserted = await db.fetch(
        "INSERT INTO clients (email, first_name, last_name, phone, country, language, stage, "
        "stage_changed_at, created_at, is_active, totp_enabled, totp_last_step) "
        "SELECT u.email, u.first_name, u.last_name, u.phone, u.country, u.language, 'lead', {}, {}, true, "
        "false, 0 FROM unnest({}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[]) "
        "WITH ORDINALITY AS u(email, first_name, last_name, phone, country, language, n) ORDER BY u.n "
        "ON CONFLICT (email) DO NOTHING RETURNING id, email",
        now,
        now,
        [r.email for r in creates],
        [r.values["first_name"] for r in creates],
        [r.values["last_name"] for r in creates],
        [r.values.get("phone", "") for r in creates],
        [r.values.get("country", "") for r in creates],
        [r.values.get("language") or "en" for r in creates],
    )
    ids = {r["email"]: int(r["id"]) for r in inserted}
    made = [(r, ids[r.email], r.tags) for r in creates if r.email in ids]
    conflicts = [r for r in creates if r.email not in ids]
    if not made:
        return [], conflicts
    client_ids = [cid for _, cid, _ in made]
    reason = f"imported from {run['filename']}"
    await db.fetch(
        "INSERT INTO client_stage_changes (client, from_stage, to_stage, reason, actor_kind, actor_id, "
        "actor_label, changed_at) SELECT c, NULL, 'lead', {}, {}, {}, {}, {} FROM unnest({}::int[]) AS c",
        reason,
        actor.kind,
        actor.id,
        actor.label[:320],
        now,
        client_ids,
    )
    stage = f"Stage: {lifecycle.label(None)} → {lifecycle.label('lead')} ({reason})"
    await _timeline(
        [(cid, "stage", stage, "client", cid) for cid in client_ids]
        + [
            (cid, "lead", f"Imported from {run['filename']} (line {r.line})", "client_import", run["id"])
            for r, cid, _ in made
        ],
        now,
    )
    if run["desk"] is not None:
        due = now + timedelta(minutes=get_settings().first_contact_sla_minutes)
        await db.fetch(
            "INSERT INTO routing_assignments (client, desk, owner, assigned_at, first_contact_due_at, "
            "last_touched_at) SELECT c, {}, {}, {}, {}, {} FROM unnest({}::int[]) AS c "
            "ON CONFLICT (client) DO NOTHING",
            run["desk"],
            run["owner"],
            now,
            due,
            now,
            client_ids,
        )
    await _tags(run, [(cid, tags) for _, cid, tags in made], now)
    await _sources([(r, cid) for r, cid, _ in made], now)
    return made, conflicts


async def _update(
    run: dict[str, Any], updates: list[tuple[rows.Row, dict[str, Any]]], now: datetime
) -> tuple[list[tuple[rows.Row, dict[str, Any], dict[str, tuple[str, str]], list[str]]], int]:
    """Apply the non-empty values that differ; (row, client, {field: (old, new)}, tags added), unchanged."""
    if not updates:
        return [], 0
    diffs = {
        hit["id"]: {
            f: (hit[f], r.values[f]) for f in rows.PROFILE_FIELDS if f in r.values and r.values[f] != hit[f]
        }
        for r, hit in updates
    }
    added = await _tags(run, [(hit["id"], r.tags) for r, hit in updates], now)
    sourced = {hit["id"] for r, hit in updates if any(r.values.get(f) for f in rows.SOURCE_FIELDS)}
    changed = [
        (r, hit, diffs[hit["id"]], added.get(hit["id"], []))
        for r, hit in updates
        if diffs[hit["id"]] or added.get(hit["id"]) or hit["id"] in sourced
    ]
    profile = [(hit, diff) for _, hit, diff, _ in changed if diff]
    if profile:

        def final(hit: dict[str, Any], diff: dict[str, tuple[str, str]], f: str) -> str:
            return diff[f][1] if f in diff else hit[f]

        await db.fetch(
            "UPDATE clients c SET first_name = u.first_name, last_name = u.last_name, phone = u.phone, "
            "country = u.country, language = u.language FROM unnest({}::int[], {}::text[], {}::text[], "
            "{}::text[], {}::text[], {}::text[]) AS u(id, first_name, last_name, phone, country, language) "
            "WHERE c.id = u.id",
            [hit["id"] for hit, _ in profile],
            *([final(hit, diff, f) for hit, diff in profile] for f in rows.PROFILE_FIELDS),
        )
    await _sources([(r, hit["id"]) for r, hit, _, _ in changed if hit["id"] in sourced], now)
    await _timeline(
        [
            (
                hit["id"],
                "lead",
                f"Updated by import from {run['filename']} (line {r.line}): "
                + ", ".join(
                    [rows.FIELDS[f].lower() for f in diff] + (["tags"] if tags else []) or ["source"]
                ),
                "client_import",
                run["id"],
            )
            for r, hit, diff, tags in changed
        ],
        now,
    )
    return changed, len(updates) - len(changed)


async def _timeline(events: list[tuple[int, str, str, str, int]], now: datetime) -> None:
    if not events:
        return
    await db.fetch(
        "INSERT INTO client_timeline (client, occurred_at, kind, summary, ref_type, ref_id) "
        "SELECT c, {}, k, s, t, r FROM unnest({}::int[], {}::text[], {}::text[], {}::text[], {}::int[]) "
        "AS u(c, k, s, t, r)",
        now,
        [e[0] for e in events],
        [e[1] for e in events],
        [e[2][:500] for e in events],
        [e[3] for e in events],
        [e[4] for e in events],
    )


async def _tags(
    run: dict[str, Any], pairs: list[tuple[int, list[str]]], now: datetime
) -> dict[int, list[str]]:
    """Add the tags (a tag the client has already is no change); the ones added, per client."""
    flat = [(cid, tag) for cid, tags in pairs for tag in tags]
    if not flat:
        return {}
    added: dict[int, list[str]] = {}
    for r in await db.fetch(
        "INSERT INTO client_tags (client, tag, created_at, created_by) "
        "SELECT c, t, {}, {} FROM unnest({}::int[], {}::text[]) AS u(c, t) "
        "ON CONFLICT (client, tag) DO NOTHING RETURNING client, tag",
        now,
        run["created_by"],
        [c for c, _ in flat],
        [t for _, t in flat],
    ):
        added.setdefault(r["client"], []).append(r["tag"])
    return added


async def _sources(pairs: list[tuple[rows.Row, int]], now: datetime) -> None:
    """A lead-source row (channel "import") for each row that carries campaign or UTM values."""
    pairs = [(r, cid) for r, cid in pairs if any(r.values.get(f) for f in rows.SOURCE_FIELDS)]
    if not pairs:
        return
    await db.fetch(
        "INSERT INTO lead_sources (client, channel, campaign, utm_source, utm_medium, utm_campaign, "
        "utm_term, utm_content, created_at) SELECT c, {}, a, b, d, e, f, g, {} FROM unnest({}::int[], "
        "{}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[]) AS u(c, a, b, d, e, f, g)",
        LEAD_SOURCE_CHANNEL,
        now,
        [cid for _, cid in pairs],
        *([r.values.get(f, "") for r, _ in pairs] for f in rows.SOURCE_FIELDS),
    )


def _created_entry(run: dict[str, Any], r: rows.Row, client_id: int) -> Entry:
    after: dict[str, Any] = {"import": run["id"], "line": r.line, "stage": "lead", **r.values}
    after.setdefault("language", "en")
    if run["desk"] is not None:
        after.update(desk=run["desk"], owner=run["owner"])
    if r.tags:
        after["tags"] = r.tags
    return Entry("client.imported", "client", client_id, None, after)


def _updated_entry(
    run: dict[str, Any], r: rows.Row, hit: dict[str, Any], diff: dict[str, tuple[str, str]], tags: list[str]
) -> Entry:
    after: dict[str, Any] = {"import": run["id"], "line": r.line, **{f: new for f, (_, new) in diff.items()}}
    if tags:
        after["tags_added"] = tags
    sources = {f: r.values[f] for f in rows.SOURCE_FIELDS if r.values.get(f)}
    if sources:
        after["source"] = sources
    return Entry(
        "client.import_updated", "client", hit["id"], {f: old for f, (old, _) in diff.items()}, after
    )


async def _reject(run_id: int, rejects: list[tuple[int, list[str], str]]) -> None:
    if not rejects:
        return
    await db.fetch(
        "INSERT INTO client_import_rejections (run, line, cells, reason) "
        "SELECT {}, l, r::jsonb, m FROM unnest({}::int[], {}::text[], {}::text[]) AS u(l, r, m)",
        run_id,
        [x[0] for x in rejects],
        [json.dumps(x[1], ensure_ascii=False) for x in rejects],
        [x[2] for x in rejects],
    )


async def _finish(run: dict[str, Any], actor: Actor) -> str:
    async with transaction():
        row = await db.fetchrow(
            "UPDATE client_imports SET status = 'finished', finished_at = now(), content = NULL "
            "WHERE id = $1 AND status = 'running' RETURNING created, updated, unchanged, rejected, position",
            run["id"],
        )
        if row is None:
            return "finished"
        await audit.record(actor, "clients.import_finished", "client_import", run["id"], after=dict(row))
        await live.publish(f"staff:user:{run['created_by']}", "import.progress", run_id=run["id"])
    return "finished"


async def fail(run_id: int, message: str) -> str:
    """Stop the run for good, keeping what was committed; the file is dropped with it."""
    async with transaction():
        row = await db.fetchrow(
            "UPDATE client_imports SET status = 'failed', error = $2, finished_at = now(), content = NULL "
            "WHERE id = $1 AND status IN ('queued', 'running') RETURNING created_by, position",
            run_id,
            message[:2000],
        )
        if row is None:
            return "failed"
        await audit.record(
            Actor.system("client import"),
            "clients.import_failed",
            "client_import",
            run_id,
            after={"error": message[:2000], "position": row["position"]},
        )
        await live.publish(f"staff:user:{row['created_by']}", "import.progress", run_id=run_id)
    log.warning("client import %s failed: %s", run_id, message)
    return "failed"


async def note_error(run_id: int, message: str) -> None:
    """A batch failed and the job will retry from the committed position: say so on the page."""
    async with transaction():
        row = await db.fetchrow(
            "UPDATE client_imports SET error = $2 WHERE id = $1 RETURNING created_by", run_id, message[:2000]
        )
        if row is not None:
            await live.publish(f"staff:user:{row['created_by']}", "import.progress", run_id=run_id)


def unfinished_sql() -> str:
    return "SELECT id FROM client_imports WHERE status IN ('queued', 'running') ORDER BY id LIMIT 100"
