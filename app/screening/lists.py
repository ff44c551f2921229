"""List releases: loading one (from the CLI or a console upload), which are active, and the
in-memory match index over the active ones.

A release is identified by its fingerprint: loading the same files twice changes nothing. A
release of a source replaces that source's active one unless it is older (by the date the file
states); replacing one queues a re-screening of every client. Nothing of a bad file is stored: it
is parsed completely before the transaction that stores it begins.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.core import audit, db, jobs, live
from app.core.audit import Actor
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors
from app.screening import loaders
from app.screening.loaders import FORMATS, SOURCES, Files, ListFileError, ParsedList
from app.screening.loaders.common import MAX_FILE_BYTES
from app.screening.matching import IndexedEntry, ListedDob, ListIndex
from app.screening.tables import ListUpload, ScreeningRun

log = logging.getLogger(__name__)

ROLES = ("compliance",)  # besides admin: who sees lists, cases and decides
RESCREEN_JOB = "screening_rescreen"
UPLOAD_JOB = "screening_load_upload"
INSERT_CHUNK = 5000
PROGRESS_TOPICS = ("staff:role:compliance", "staff:role:admin")


def may_screen(p: Principal) -> bool:
    return allowed(p, *ROLES)


def require_compliance(p: Principal) -> None:
    if not may_screen(p):
        raise PermissionError("Only compliance officers and administrators work with sanctions screening.")


@dataclass(frozen=True)
class LoadResult:
    list_id: int
    created: bool  # False: this release was already loaded (a no-op)
    active: bool
    source: str
    version: str
    entry_count: int
    replaced: int | None = None  # the release it replaced as the source's active one
    run_id: int | None = None  # the re-screening it queued

    @property
    def message(self) -> str:
        what = f"{SOURCES.get(self.source, self.source)} {self.version}"
        if not self.created:
            return f"{what} was already loaded (list #{self.list_id}); nothing changed."
        if not self.active:
            return f"{what} loaded ({self.entry_count} entries) but kept inactive: a newer release is active."
        return f"{what} loaded ({self.entry_count} entries) and active; re-screening of every client queued."


# --- loading a release ----------------------------------------------------------------------------


async def load_release(
    files: Files, actor: Actor, *, fmt: str | None = None, filename: str = ""
) -> LoadResult:
    """Parse, then store the release with its entries in one transaction (or nothing at all)."""
    sha = loaders.fingerprint(files)
    if found := await _existing(sha):
        return found
    parsed: ParsedList = await asyncio.to_thread(loaders.parse, files, fmt)
    version = parsed.version or sha[:12]
    filename = (filename or ", ".join(sorted(files)))[:255]
    async with transaction():
        await db.fetch(
            "SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", f"screening:load:{parsed.source}"
        )
        if found := await _existing(sha):  # the same release, loaded meanwhile by someone else
            return found
        current = await db.fetchrow(
            "SELECT id, version, published_at FROM screening_lists WHERE source = $1 AND active FOR UPDATE",
            parsed.source,
        )
        newer = (
            current is None
            or parsed.published_at is None
            or current["published_at"] is None
            or parsed.published_at >= current["published_at"]
        )
        row = await db.fetchrow(
            "INSERT INTO screening_lists (source, format, version, published_at, sha256, filename, entry_count, "
            "active, loaded_at, loaded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), $9) RETURNING id",
            parsed.source,
            parsed.format,
            version[:64],
            parsed.published_at,
            sha,
            filename,
            len(parsed.entries),
            newer,
            actor.label[:320],
        )
        assert row is not None
        list_id = int(row["id"])
        await _insert_entries(list_id, parsed)
        replaced = None
        if newer and current is not None:
            await db.fetch("UPDATE screening_lists SET active = false WHERE id = {}", current["id"])
            replaced = int(current["id"])
        await audit.record(
            actor,
            "screening.list_loaded",
            "sanctions_list",
            list_id,
            before={"active_list_id": current["id"], "active_version": current["version"]}
            if current
            else None,
            after={
                "source": parsed.source,
                "format": parsed.format,
                "version": version,
                "sha256": sha,
                "entries": len(parsed.entries),
                "active": newer,
                "filename": filename,
            },
        )
        run_id = await queue_rescreen(list_id, actor) if newer else None
    forget_indexes()
    return LoadResult(list_id, True, newer, parsed.source, version, len(parsed.entries), replaced, run_id)


async def _existing(sha: str) -> LoadResult | None:
    row = await db.fetchrow(
        "SELECT id, source, version, active, entry_count FROM screening_lists WHERE sha256 = $1", sha
    )
    if row is None:
        return None
    return LoadResult(row["id"], False, row["active"], row["source"], row["version"], row["entry_count"])


async def _insert_entries(list_id: int, parsed: ParsedList) -> None:
    for start in range(0, len(parsed.entries), INSERT_CHUNK):
        chunk = parsed.entries[start : start + INSERT_CHUNK]
        await db.fetch(
            "INSERT INTO screening_entries (sanctions_list, external_id, kind, primary_name, aliases, "
            "dates_of_birth, nationalities, programmes, remarks) "
            "SELECT {}, u.ext, u.kind, u.name, u.aliases::jsonb, u.dobs::jsonb, u.nats::jsonb, u.progs::jsonb, u.remarks "
            "FROM unnest({}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[], {}::text[], "
            "{}::text[]) AS u(ext, kind, name, aliases, dobs, nats, progs, remarks)",
            list_id,
            [e.external_id[:64] for e in chunk],
            [e.kind for e in chunk],
            [e.primary_name for e in chunk],
            [json.dumps(e.aliases, ensure_ascii=False) for e in chunk],
            [json.dumps(e.dates_of_birth) for e in chunk],
            [json.dumps(e.nationalities, ensure_ascii=False) for e in chunk],
            [json.dumps(e.programmes, ensure_ascii=False) for e in chunk],
            [e.remarks for e in chunk],
        )


async def queue_rescreen(list_id: int, actor: Actor) -> int:
    """A run re-screening every client, started after this transaction commits. Earlier runs that
    have not finished are superseded: the new one covers the same clients against newer lists."""
    now = datetime.now(UTC)
    await db.fetch(
        "UPDATE screening_runs SET status = 'superseded', updated_at = now() WHERE status IN ('queued', 'running')"
    )
    run = ScreeningRun(sanctions_list=list_id, status="queued", created_at=now, updated_at=now)
    await run.save()
    await audit.record(
        actor, "screening.rescreen_queued", "screening_run", run.id, after={"list_id": list_id}
    )
    jobs.enqueue_after_commit(
        RESCREEN_JOB, key=f"screening-rescreen:{run.id}", run_id=run.id, timeout=3600, heartbeat=600
    )
    for topic in PROGRESS_TOPICS:
        await live.publish(topic, "screening.progress", run_id=run.id)
    return int(run.id)


SAMPLES = Path(__file__).resolve().parent / "samples"


async def load_samples(actor: Actor) -> list[LoadResult]:
    """The synthetic sample lists (invented names) for a demo: OFAC's CSV trio, the UN and EU XML.
    Idempotent, like every load."""
    results = []
    for path in (
        SAMPLES / "ofac-csv" / "sdn.csv",
        SAMPLES / "consolidated.xml",
        SAMPLES / "eu-sanctions.xml",
    ):
        results.append(await load_release(loaders.read_paths([path]), actor, filename=path.name))
    return results


# --- active releases and the match index ----------------------------------------------------------

_indexes: dict[tuple[str, tuple[int, ...]], ListIndex] = {}
_index_lock = asyncio.Lock()


async def active_lists() -> list[dict[str, Any]]:
    return await db.fetch(
        "SELECT id, source, version, published_at, entry_count, loaded_at FROM screening_lists "
        "WHERE active ORDER BY source"
    )


def forget_indexes() -> None:
    _indexes.clear()


async def index_for(list_ids: list[int]) -> ListIndex:
    """The match index over these releases, built once per process (releases never change)."""
    ids = tuple(sorted(list_ids))
    key = (db.current_url(), ids)  # releases never change, but another database has other ones
    index = _indexes.get(key)
    if index is not None:
        return index
    async with _index_lock:
        index = _indexes.get(key)
        if index is None:
            rows = await db.fetch(
                "SELECT e.id, e.sanctions_list, e.external_id, e.kind, e.primary_name, e.aliases::text AS aliases, "
                "e.dates_of_birth::text AS dobs, e.nationalities::text AS nats, e.programmes::text AS progs, "
                "l.source, l.version FROM screening_entries e JOIN screening_lists l ON l.id = e.sanctions_list "
                "WHERE e.sanctions_list = ANY({}::int[]) ORDER BY e.id",
                list(ids),
            )
            index = await asyncio.to_thread(_build, rows)
            if len(_indexes) >= 3:
                _indexes.clear()
            _indexes[key] = index
    return index


def _build(rows: list[dict[str, Any]]) -> ListIndex:
    entries: list[IndexedEntry] = []
    names: list[list[str]] = []
    for r in rows:
        aliases, dobs, nats = json.loads(r["aliases"]), json.loads(r["dobs"]), json.loads(r["nats"])
        fingerprint = hashlib.sha256(
            json.dumps([r["primary_name"], aliases, dobs, nats], ensure_ascii=False).encode()
        ).hexdigest()
        entries.append(
            IndexedEntry(
                id=r["id"],
                list_id=r["sanctions_list"],
                source=r["source"],
                version=r["version"],
                external_id=r["external_id"],
                kind=r["kind"],
                primary_name=r["primary_name"],
                programmes=json.loads(r["progs"]),
                dobs=tuple(d for d in (ListedDob.parse(x) for x in dobs) if d is not None),
                nationalities=frozenset(nats),
                fingerprint=fingerprint,
            )
        )
        names.append([r["primary_name"], *aliases])
    return ListIndex.build(entries, names)


# --- the console: releases and uploads ------------------------------------------------------------


async def lists_for(viewer: Principal) -> dict[str, Any]:
    require_compliance(viewer)
    releases = await db.fetch(
        "SELECT l.id, l.source, l.format, l.version, l.published_at, l.sha256, l.filename, l.entry_count, "
        "l.active, l.loaded_at, l.loaded_by, (SELECT count(*) FROM screening_cases c WHERE c.sanctions_list = l.id) "
        "AS cases FROM screening_lists l ORDER BY l.loaded_at DESC, l.id DESC LIMIT 100"
    )
    uploads = await db.fetch(
        "SELECT u.id, u.filename, u.format, u.size, u.status, u.message, u.sanctions_list, u.created_at, "
        "u.finished_at, s.name AS uploaded_by_name FROM screening_uploads u "
        "JOIN staff_users s ON s.id = u.uploaded_by ORDER BY u.id DESC LIMIT 20"
    )
    for r in releases:
        r["source_label"] = SOURCES.get(r["source"], r["source"])
        r["format_label"] = FORMATS.get(r["format"], r["format"])
    return {
        "releases": releases,
        "uploads": uploads,
        "pending_uploads": any(u["status"] in ("queued", "loading") for u in uploads),
        "formats": [("", "Detect from the file"), *FORMATS.items()],
        "max_mb": MAX_FILE_BYTES // 1_048_576,
    }


async def upload_list(viewer: Principal, filename: str, data: bytes, fmt: str, actor: Actor) -> int:
    """Keep the file and queue its load; what can be told at once (empty, not a list) is told at once."""
    require_compliance(viewer)
    if fmt and fmt not in FORMATS:
        raise FormErrors({"format": "Choose one of the listed formats."})
    try:
        files = loaders.read_upload(filename or "list", data)
        found = loaders.detect(files)
    except ListFileError as exc:
        raise FormErrors({"file": str(exc)}) from exc
    if fmt and fmt != found:
        raise FormErrors({"format": f"The file is {FORMATS[found]}, not {FORMATS[fmt]}."})
    sha = hashlib.sha256(data).hexdigest()
    async with transaction():
        row = ListUpload(
            filename=(filename or "list")[:255],
            format=fmt,
            content=data,
            size=len(data),
            sha256=sha,
            uploaded_by=viewer.id,
            status="queued",
            created_at=datetime.now(UTC),
        )
        await row.save()
        await audit.record(
            actor,
            "screening.list_uploaded",
            "screening_upload",
            row.id,
            after={"filename": row.filename, "size": len(data), "sha256": sha, "format": fmt or found},
        )
        jobs.enqueue_after_commit(
            UPLOAD_JOB, key=f"screening-upload:{row.id}", upload_id=row.id, timeout=1800
        )
    return int(row.id)


async def process_upload(upload_id: int) -> str:
    """Load an uploaded file (idempotent: a claimed or finished upload is left alone)."""
    row = await db.fetchrow(
        "UPDATE screening_uploads u SET status = 'loading' FROM staff_users s "
        "WHERE u.id = $1 AND u.status = 'queued' AND s.id = u.uploaded_by "
        "RETURNING u.filename, u.format, u.content, u.uploaded_by, s.email",
        upload_id,
    )
    if row is None:
        return "not queued"
    actor = Actor(kind="staff", id=str(row["uploaded_by"]), label=row["email"])
    status, message, list_id = "failed", "", None
    try:
        files = loaders.read_upload(row["filename"], bytes(row["content"] or b""))
        result = await load_release(files, actor, fmt=row["format"] or None, filename=row["filename"])
        status = "loaded" if result.created else "duplicate"
        message, list_id = result.message, result.list_id
    except ListFileError as exc:
        message = str(exc)
    except Exception as exc:  # recorded for the uploader; the job's own retry would fail the same way
        log.exception("screening upload %s failed", upload_id)
        message = f"The file could not be loaded ({type(exc).__name__}). Nothing was loaded."
    async with transaction():
        await db.fetch(
            "UPDATE screening_uploads SET status = {}, message = {}, sanctions_list = {}, content = NULL, "
            "finished_at = now() WHERE id = {}",
            status,
            message,
            list_id,
            upload_id,
        )
        if status == "failed":
            await audit.record(
                actor, "screening.list_rejected", "screening_upload", upload_id, after={"reason": message}
            )
    return status
