"""Documents from the client's side: the checklist their level needs, uploading each side, and
the authorised way anyone gets a stored file back.

An upload is judged by content (`files.clean_upload`) before anything is written; a refused file
leaves no row and no file. Each side is its own request, so a network failure on the back of an
ID card never loses the front. When every side of a document is in, it enters the compliance
queue (status pending) and a registered client moves to kyc_pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from app.core import audit, db, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.kyc import levels
from app.kyc.files import RejectedUpload, clean_upload
from app.kyc.storage import DocumentStore
from app.settings import get_settings
from app.workbench.timeline import record_event

STAFF_ROLES = ("admin", "compliance")  # who may open a client's stored documents
OPEN = ("draft", "pending", "in_review", "reupload_requested")


def store() -> DocumentStore:
    s = get_settings().kyc
    return DocumentStore(s.documents_dir, s.document_key)


def sides_of(doc_type: dict[str, Any]) -> tuple[str, ...]:
    return ("front", "back") if doc_type["two_sided"] else ("single",)


async def document_types(entity_type: str) -> list[dict[str, Any]]:
    return await db.fetch(
        "SELECT id, code, name, category, two_sided, has_expiry FROM kyc_document_types "
        "WHERE active AND entity_type IN ({}, 'any') ORDER BY sort_order, id",
        entity_type,
    )


def display_status(doc: dict[str, Any] | None, today: date, reminder_days: int) -> str:
    """What the client sees: missing, uploaded (a side still to come), in_review, approved,
    rejected, reupload_requested, expiring, expired."""
    if doc is None:
        return "missing"
    status = doc["status"]
    if status == "draft":
        return "uploaded"
    if status in ("pending", "in_review"):
        return "in_review"
    if status == "approved" and doc["expires_on"] is not None:
        if doc["expires_on"] < today:
            return "expired"
        if doc["expires_on"] <= today + timedelta(days=reminder_days):
            return "expiring"
    return str(status)


@dataclass(frozen=True)
class Requirement:
    category: str
    label: str
    needed_for: str  # the level name this category is first required by
    types: list[dict[str, Any]]
    document: dict[str, Any] | None  # the latest document in this category, with its files
    status: str


async def checklist_for(p: Principal) -> dict[str, Any]:
    """Every category the client's ladder asks for, with its latest document and status."""
    if not p.is_client:
        raise NotFound("documents")
    profile = await levels.profile_of(p.id)
    ladder = await levels.ladder(profile["entity_type"])
    types = await document_types(profile["entity_type"])
    docs = await db.fetch(
        "SELECT d.id, d.doc_type, d.category, d.status, d.created_at, d.submitted_at, d.reviewed_at, "
        "d.reason_code, d.client_message, d.expires_on, t.name AS type_name, t.code AS type_code, "
        "t.two_sided FROM kyc_documents d JOIN kyc_document_types t ON t.id = d.doc_type "
        "WHERE d.client = {} ORDER BY d.id DESC",
        p.id,
    )
    files = await db.fetch(
        "SELECT f.id, f.document, f.side, f.mime, f.size, f.uploaded_at FROM kyc_document_files f "
        "JOIN kyc_documents d ON d.id = f.document WHERE d.client = {}",
        p.id,
    )
    for d in docs:
        d["files"] = {f["side"]: f for f in files if f["document"] == d["id"]}
    today = datetime.now(UTC).date()
    reminder = get_settings().kyc.expiry_reminder_days
    seen: list[str] = []
    requirements: list[Requirement] = []
    for level in ladder:
        for category in level["required_categories"]:
            if category in seen:
                continue
            seen.append(category)
            latest = _latest_relevant([d for d in docs if d["category"] == category])
            requirements.append(
                Requirement(
                    category=category,
                    label=levels.CATEGORY_LABELS.get(category, category),
                    needed_for=f"level {level['rank']} ({level['name']})",
                    types=[t for t in types if t["category"] == category],
                    document=latest,
                    status=display_status(latest, today, reminder),
                )
            )
    rights = await levels.rights_for(p.id)
    return {"requirements": requirements, "rights": rights, "profile": profile, "ladder": ladder}


def _latest_relevant(docs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The document that speaks for the category: one being uploaded or reviewed first, then a
    re-upload request nobody has answered yet (none newer), else an approved one, else the latest
    decision. `docs` is newest first."""
    for d in docs:
        if d["status"] in ("draft", "pending", "in_review"):
            return d
    if docs and docs[0]["status"] == "reupload_requested":
        return docs[0]  # an older request is answered by any newer document (approved: done)
    for d in docs:
        if d["status"] == "approved":
            return d
    return docs[0] if docs else None


async def upload_side(p: Principal, type_code: str, side: str, data: bytes, actor: Actor) -> dict[str, Any]:
    """Store one side of a document; returns {"document_id", "status", "complete"}.

    A side sent again replaces the earlier one while the document is not yet being reviewed."""
    if not p.is_client:
        raise NotFound("documents")
    profile = await levels.profile_of(p.id)
    doc_type = await db.fetchrow(
        "SELECT id, code, name, category, two_sided FROM kyc_document_types "
        "WHERE code = $1 AND active AND entity_type IN ($2, 'any')",
        type_code,
        profile["entity_type"],
    )
    if doc_type is None:
        raise FormErrors({"doc_type": "Choose one of the document types listed."})
    if side not in sides_of(doc_type):
        expected = " or ".join(sides_of(doc_type))
        raise FormErrors({"side": f"A {doc_type['name'].lower()} is uploaded as: {expected}."})
    try:
        clean = clean_upload(data, max_bytes=get_settings().kyc.max_upload_bytes)
    except RejectedUpload as exc:
        raise FormErrors({"file": exc.message}) from None

    files = store()
    name = files.write(clean.content)  # before the transaction: a failed commit removes it below
    replaced: str | None = None
    try:
        async with transaction():
            await db.fetch("SELECT id FROM clients WHERE id = {} FOR UPDATE", p.id)  # one upload at a time
            doc = await db.fetchrow(
                "SELECT id, status FROM kyc_documents WHERE client = $1 AND doc_type = $2 "
                "AND status IN ('draft', 'pending', 'in_review') ORDER BY id DESC LIMIT 1",
                p.id,
                doc_type["id"],
            )
            if doc is not None and doc["status"] == "in_review":
                raise FormErrors(
                    {
                        "file": "This document is being reviewed right now; wait for the decision before sending it again."
                    }
                )
            now = datetime.now(UTC)
            if doc is None:
                doc = await db.fetchrow(
                    "INSERT INTO kyc_documents (client, doc_type, category, status, created_at, reason_code, "
                    "client_message, doc_number, issuing_country) VALUES ($1, $2, $3, 'draft', $4, '', '', '', '') "
                    "RETURNING id, status",
                    p.id,
                    doc_type["id"],
                    doc_type["category"],
                    now,
                )
                assert doc is not None
            old = await db.fetchrow(
                "DELETE FROM kyc_document_files WHERE document = $1 AND side = $2 RETURNING storage_name",
                doc["id"],
                side,
            )
            replaced = old["storage_name"] if old else None
            await db.fetch(
                "INSERT INTO kyc_document_files (document, side, storage_name, mime, size, received_sha256, "
                "stored_sha256, uploaded_at) VALUES ({}, {}, {}, {}, {}, {}, {}, {})",
                doc["id"],
                side,
                name,
                clean.mime,
                len(clean.content),
                clean.received_sha256,
                clean.stored_sha256,
                now,
            )
            have = {
                r["side"]
                for r in await db.fetch("SELECT side FROM kyc_document_files WHERE document = {}", doc["id"])
            }
            complete = set(sides_of(doc_type)) <= have
            status = "pending" if complete else "draft"
            await db.fetch(
                "UPDATE kyc_documents SET status = {}, submitted_at = CASE WHEN {} THEN {}::timestamptz ELSE NULL END "
                "WHERE id = {}",
                status,
                complete,
                now,
                doc["id"],
            )
            await audit.record(
                actor,
                "kyc.document_uploaded",
                "client",
                p.id,
                after={
                    "document_id": doc["id"],
                    "type": doc_type["code"],
                    "side": side,
                    "kind": clean.kind,
                    "size": len(clean.content),
                    "received_sha256": clean.received_sha256,
                    "stored_sha256": clean.stored_sha256,
                    "replaced": replaced is not None,
                    "submitted": complete,
                },
            )
            what = doc_type["name"] + ("" if side == "single" else f" ({side})")
            await record_event(
                p.id,
                "document",
                f"Uploaded {what}" + ("; submitted for review" if complete else ""),
                "kyc_document",
                doc["id"],
                at=now,
            )
            if complete:
                stage = await db.fetchrow("SELECT stage FROM clients WHERE id = $1", p.id)
                if stage is not None and stage["stage"] == "registered":
                    from app.clients import lifecycle

                    await lifecycle.change_stage(p.id, "kyc_pending", actor, reason="documents submitted")
                await live.publish("staff:role:compliance", "kyc.queue_changed", document_id=doc["id"])
                await live.publish("staff:role:admin", "kyc.queue_changed", document_id=doc["id"])
            await live.publish(f"client:{p.id}", "kyc.document_changed", document_id=doc["id"])
    except BaseException:
        files.delete(name)
        raise
    if replaced:
        files.delete(replaced)
    return {"document_id": int(doc["id"]), "status": status, "complete": complete}


async def file_for(viewer: Principal, file_id: int, actor: Actor) -> tuple[bytes, str]:
    """The decrypted file and its type, for its own client or for compliance/admin (audited);
    404 to everyone else, exactly as for a file that does not exist."""
    row = await db.fetchrow(
        "SELECT f.id, f.storage_name, f.mime, f.side, d.id AS document_id, d.client "
        "FROM kyc_document_files f JOIN kyc_documents d ON d.id = f.document WHERE f.id = $1",
        file_id,
    )
    if row is None:
        raise NotFound("file")
    if viewer.is_client:
        if row["client"] != viewer.id:
            raise NotFound("file")
    elif not (viewer.is_staff and viewer.has_role(*STAFF_ROLES)):
        raise NotFound("file")
    content = store().read(row["storage_name"])
    if viewer.is_staff:
        async with transaction():
            await audit.record(
                actor,
                "kyc.document_viewed",
                "client",
                row["client"],
                after={"document_id": row["document_id"], "file_id": file_id, "side": row["side"]},
            )
    return content, str(row["mime"])
