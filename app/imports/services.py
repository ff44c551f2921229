"""CSV import of clients, as staff see it: upload, map and preview, start; the run's page and report.

Who may import: admin and sales (the people who bring leads in). A run belongs to whoever
uploaded it; admins see every run, everyone else gets the 404 an unknown run gets (the file
holds personal data of people the viewer may not otherwise see). The run itself is
`app.imports.runner`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from app.clients.export import neutralise
from app.clients.scoping import is_desk_scoped, visible_client_sql
from app.core import audit, db, jobs, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.imports import reading, rows
from app.imports.tables import ImportRun

ROLES = ("admin", "sales")
PREVIEW_ROWS = 10
PREVIEW_SCAN = 1000
RECENT_RUNS = 20
JOB = "run_client_import"
ENCODING_NAMES = {"utf-8-sig": "UTF-8 (with BOM)", "utf-8": "UTF-8", "cp1252": "Windows-1252"}

_RUN_COLUMNS = (
    "id, created_by, filename, size, sha256, encoding, delimiter, header, total_rows, mapping, mode, "
    "desk, owner, status, position, created, updated, unchanged, rejected, error, created_at, "
    "started_at, finished_at"
)


def may_import(p: Principal) -> bool:
    return p.is_staff and p.has_role(*ROLES)


def _require(p: Principal) -> None:
    if not may_import(p):
        raise PermissionError("Your role does not allow importing clients.")


def _decoded(run: dict[str, Any]) -> dict[str, Any]:
    for key in ("header", "mapping"):
        if isinstance(run.get(key), str):
            run[key] = json.loads(run[key])
    if run.get("mapping") is not None:
        run["mapping"] = {int(k): v for k, v in run["mapping"].items()}
    return run


async def load_run(run_id: int) -> dict[str, Any] | None:
    """The run without its file (for jobs and renderers, which decide access themselves)."""
    row = await db.fetchrow(f"SELECT {_RUN_COLUMNS} FROM client_imports WHERE id = $1", run_id)
    return _decoded(row) if row else None


async def get_run_for(viewer: Principal, run_id: int) -> dict[str, Any]:
    """The run if the viewer started it (or is an admin); 404 otherwise."""
    if not may_import(viewer):
        raise NotFound("import")
    run = await load_run(run_id)
    if run is None or (run["created_by"] != viewer.id and not viewer.has_role("admin")):
        raise NotFound("import")
    return run


async def file_of(run_id: int) -> bytes | None:
    row = await db.fetchrow("SELECT content FROM client_imports WHERE id = $1", run_id)
    return None if row is None else row["content"]


async def runs_for(viewer: Principal) -> list[dict[str, Any]]:
    _require(viewer)
    mine = "" if viewer.has_role("admin") else "WHERE i.created_by = {} "
    args: list[Any] = [] if not mine else [viewer.id]
    return [
        _decoded(r)
        for r in await db.fetch(
            "SELECT i.id, i.filename, i.status, i.mode, i.total_rows, i.position, i.created, i.updated, "
            "i.unchanged, i.rejected, i.created_at, s.name AS created_by_name "
            "FROM client_imports i LEFT JOIN staff_users s ON s.id = i.created_by "
            + mine
            + "ORDER BY i.id DESC LIMIT {}",
            *args,
            RECENT_RUNS,
        )
    ]


async def upload(
    viewer: Principal,
    filename: str,
    data: bytes,
    actor: Actor,
    *,
    encoding: str = "utf-8",
    delimiter: str = "",
) -> int:
    """Check the file (text, size, encoding, delimiter, structure) and keep it for the run; nothing
    is stored when it cannot be read."""
    _require(viewer)
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()[:255] or "upload.csv"
    parsed = reading.read(data, encoding, delimiter)
    digest = hashlib.sha256(data).hexdigest()
    async with transaction():
        run = ImportRun(
            created_by=viewer.id,
            filename=name,
            content=data,
            size=len(data),
            sha256=digest,
            encoding=parsed.encoding,
            delimiter=parsed.delimiter,
            header=json.dumps(parsed.header),
            total_rows=parsed.total_rows,
            status="uploaded",
            created_at=datetime.now(UTC),
        )
        await run.save()
        await audit.record(
            actor,
            "clients.import_uploaded",
            "client_import",
            run.id,
            after={
                "filename": name,
                "size": len(data),
                "sha256": digest,
                "encoding": parsed.encoding,
                "delimiter": reading.DELIMITERS[parsed.delimiter],
                "columns": len(parsed.header),
                "rows": parsed.total_rows,
            },
        )
    return int(run.id)


# --- mapping, preview and start -------------------------------------------------------------------


async def assign_choices(viewer: Principal) -> list[tuple[str, str]]:
    """Where created clients may go: a desk's pool or one of its agents. A desk-scoped agent may
    only choose their own desks (and themselves), and must choose one: they would not see a client
    without it."""
    scoped = is_desk_scoped(viewer)
    desk_sql = "SELECT d.id, d.name FROM routing_desks d WHERE d.active"
    args: list[Any] = []
    if scoped:
        desk_sql += " AND d.id IN (SELECT desk FROM routing_desk_members WHERE staff = {} AND active)"
        args.append(viewer.id)
    desks = await db.fetch(desk_sql + " ORDER BY d.name, d.id", *args)
    members = await db.fetch(
        "SELECT m.desk, s.id, s.name FROM routing_desk_members m JOIN staff_users s ON s.id = m.staff "
        "WHERE m.active AND s.is_active ORDER BY s.name, s.id"
    )
    options: list[tuple[str, str]] = (
        [] if scoped else [("", "Nobody: leave them unassigned (no desk, no owner)")]
    )
    for d in desks:
        options.append((f"desk:{d['id']}", f"{d['name']} — the desk’s pool"))
        for m in members:
            if m["desk"] == d["id"] and (not scoped or m["id"] == viewer.id):
                options.append((f"desk:{d['id']}:owner:{m['id']}", f"{d['name']} — {m['name']}"))
    return options


def _assignment(value: str) -> tuple[int | None, int | None]:
    parts = value.split(":")
    desk = int(parts[1]) if len(parts) >= 2 else None
    owner = int(parts[3]) if len(parts) == 4 else None
    return desk, owner


async def _choice(viewer: Principal, run: dict[str, Any], form: Mapping[str, str]) -> rows.Choice:
    choice = rows.parse_choice(form, len(run["header"]))
    options = dict(await assign_choices(viewer))
    if choice.assign not in options:
        message = (
            "Choose one of your desks: you would not see clients outside them."
            if is_desk_scoped(viewer)
            else "Choose where the new clients go."
        )
        if is_desk_scoped(viewer) and not options:
            message = "You are not on any desk, so you could not see what you import. Ask an administrator."
        choice.errors["assign"] = message
    return choice


async def mapping_for(
    viewer: Principal, run: dict[str, Any], form: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """What the mapping step shows: the columns with their (guessed or chosen) field, mode and desk."""
    if form is None:
        guessed = run["mapping"] or rows.guess_mapping(run["header"])
        values = {f"col_{i}": f for i, f in guessed.items()}
        values["mode"] = run["mode"] or "create"
        options = await assign_choices(viewer)
        values["assign"] = options[0][0] if options else ""
    else:
        values = dict(form)
    return {
        "values": values,
        "fields": rows.FIELDS,
        "modes": rows.MODE_LABELS,
        "assign_options": await assign_choices(viewer),
        "scoped": is_desk_scoped(viewer),
    }


def _text(run: dict[str, Any], content: bytes) -> str:
    return reading.decode(content, "cp1252" if run["encoding"] == "cp1252" else "utf-8")[0]


async def preview(viewer: Principal, run_id: int, form: Mapping[str, str]) -> dict[str, Any]:
    """The first rows checked cell by cell with this mapping, what each would become, and how many
    of the first PREVIEW_SCAN rows have a problem (existing clients are checked for the shown rows)."""
    run = await get_run_for(viewer, run_id)
    if run["status"] != "uploaded":
        raise FormErrors({"__all__": "This import has already started."})
    choice = await _choice(viewer, run, form)
    content = await file_of(run_id)
    if content is None:
        raise NotFound("import")
    width = len(run["header"])
    shown: list[rows.Row] = []
    seen: dict[str, int] = {}
    bad = scanned = 0
    for line, cells in islice(reading.records(_text(run, content), run["delimiter"]), PREVIEW_SCAN):
        row = rows.check(line, cells, width, choice.mapping, choice.mode)
        if row.blank:
            continue
        scanned += 1
        key = rows.email_key(cells, choice.mapping)
        if row.ok and key in seen:
            row.errors["email"] = f"Duplicate in the file: first on line {seen[key]}."
        if key:
            seen.setdefault(key, line)
        bad += 0 if row.ok else 1
        if len(shown) < PREVIEW_ROWS:
            shown.append(row)
    outcomes = await _outcomes(viewer, choice.mode, [r for r in shown if r.ok])
    by_column = {f: i for i, f in choice.mapping.items()}
    return {
        "choice": choice,
        "errors": choice.errors,
        "rows": [
            {
                "line": r.line,
                "cells": [(r.cells[i] if i < len(r.cells) else "") for i in range(width)],
                "cell_errors": {by_column[f]: msg for f, msg in r.errors.items() if f in by_column},
                "row_error": r.errors.get(""),
                "outcome": outcomes.get(r.line) if r.ok else "rejected",
            }
            for r in shown
        ],
        "bad": bad,
        "scanned": scanned,
    }


async def _outcomes(viewer: Principal, mode: str, good: list[rows.Row]) -> dict[int, str]:
    if not good:
        return {}
    scope, params = visible_client_sql(viewer)
    found = {
        r["email"]: r
        for r in await db.fetch(
            f"SELECT lower(c.email) AS email, ({scope}) AS visible FROM clients c "
            "WHERE lower(c.email) = ANY({}::text[])",
            *params,
            [r.email for r in good],
        )
    }
    out: dict[int, str] = {}
    for r in good:
        hit = found.get(r.email)
        if mode == "create":
            out[r.line] = "rejected: e-mail exists" if hit else "create"
        elif hit is not None and hit["visible"]:
            out[r.line] = "update"
        elif hit is not None:
            out[r.line] = "rejected: outside your desks"
        else:
            out[r.line] = "create" if mode == "upsert" else "rejected: no such client"
    return out


async def start(viewer: Principal, run_id: int, form: Mapping[str, str], actor: Actor) -> None:
    """Fix the mapping and queue the run; the job is enqueued once this commits. Only the uploader
    starts it: the run acts for them (their desks, their audit trail), so nobody else chooses for them."""
    run = await get_run_for(viewer, run_id)
    if run["created_by"] != viewer.id:
        raise PermissionError("Only the colleague who uploaded this file may start its import.")
    if run["status"] != "uploaded":
        raise FormErrors({"__all__": "This import has already started."})
    choice = await _choice(viewer, run, form)
    if choice.errors:
        raise FormErrors(choice.errors)
    desk, owner = _assignment(choice.assign)
    mapping = {str(i): f for i, f in sorted(choice.mapping.items())}
    async with transaction():
        claimed = await db.fetch(
            "UPDATE client_imports SET status = 'queued', mapping = {}::jsonb, mode = {}, desk = {}, owner = {}, "
            "actor_ip = {}, actor_user_agent = {} WHERE id = {} AND status = 'uploaded' RETURNING id",
            json.dumps(mapping),
            choice.mode,
            desk,
            owner,
            actor.ip,
            actor.user_agent,
            run_id,
        )
        if not claimed:
            raise FormErrors({"__all__": "This import has already started."})
        await audit.record(
            actor,
            "clients.import_started",
            "client_import",
            run_id,
            after={
                "filename": run["filename"],
                "sha256": run["sha256"],
                "rows": run["total_rows"],
                "mode": choice.mode,
                "mapping": {run["header"][int(i)] or f"column {int(i) + 1}": f for i, f in mapping.items()},
                "desk": desk,
                "owner": owner,
            },
        )
        await live.publish(f"staff:user:{run['created_by']}", "import.progress", run_id=run_id)
        jobs.enqueue_after_commit(
            JOB, key=f"client-import:{run_id}", run_id=run_id, timeout=3600, heartbeat=300
        )


# --- what the run page shows ------------------------------------------------------------------------


def progress(run: dict[str, Any]) -> dict[str, Any]:
    total = run["total_rows"] or 0
    done = min(run["position"], total)
    return {
        **run,
        "percent": 100 if run["status"] == "finished" else (int(100 * done / total) if total else 0),
        "done": done,
        "active": run["status"] in ("queued", "running"),
        "mapped": {
            (run["header"][i] if i < len(run["header"]) else "") or f"column {i + 1}": rows.FIELDS.get(f, f)
            for i, f in (run["mapping"] or {}).items()
        },
        "delimiter_name": reading.DELIMITERS.get(run["delimiter"], run["delimiter"]),
        "encoding_name": ENCODING_NAMES.get(run["encoding"], run["encoding"]),
    }


async def rejections_for(viewer: Principal, run_id: int, limit: int = 20) -> list[dict[str, Any]]:
    await get_run_for(viewer, run_id)
    found = await db.fetch(
        "SELECT line, cells, reason FROM client_import_rejections WHERE run = {} ORDER BY line, id LIMIT {}",
        run_id,
        limit,
    )
    for r in found:
        if isinstance(r["cells"], str):
            r["cells"] = json.loads(r["cells"])
    return found


async def rejected_csv(viewer: Principal, run_id: int) -> tuple[str, AsyncIterator[bytes]]:
    """The rejected rows as the file had them, with their line and the reason (UTF-8 with BOM, and
    cells that a spreadsheet would run as formulas neutralised)."""
    run = await get_run_for(viewer, run_id)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", run["filename"].rsplit(".", 1)[0])[:80] or "import"

    async def chunks() -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["line", *(neutralise(h) for h in run["header"]), "reason"])
        yield ("\ufeff" + buffer.getvalue()).encode()
        after = 0
        while True:
            page = await db.fetch(
                "SELECT id, line, cells, reason FROM client_import_rejections WHERE run = {} AND id > {} "
                "ORDER BY id LIMIT 5000",
                run_id,
                after,
            )
            if not page:
                return
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            for r in page:
                raw = json.loads(r["cells"]) if isinstance(r["cells"], str) else r["cells"]
                writer.writerow([r["line"], *(neutralise(str(c)) for c in raw), neutralise(r["reason"])])
            yield buffer.getvalue().encode()
            after = page[-1]["id"]

    return f"{name}-rejected-rows.csv", chunks()
