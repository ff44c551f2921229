"""Claiming a document for review and deciding it.

A reviewer claims a document before deciding it: the claim is a conditional UPDATE (pending →
in_review, or a claim gone stale), so two reviewers can never both hold one document, and only
the holder may decide. A proof of address cannot be claimed or approved before the client has an
approved, unexpired identity document (see `app.kyc.queue`, which keeps such documents apart).

Every decision, in one transaction: the document's new status, the audit record, a timeline
event, the client's level recomputed (which may move their lifecycle stage), an e-mail in the
client's language, and live events for the client's open pages and for every reviewer's queue.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pycountry

from app.clients import lifecycle
from app.clients.services import get_client_for
from app.core import audit, db, live, mail
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.kyc import levels, reasons, risk
from app.kyc.queue import IDENTITY_APPROVED, REVIEWABLE, REVIEWER_ROLES, STALE_CLAIM, require_reviewer
from app.workbench.timeline import record_event

MAX_NOTE = 1000
STATUS_LABELS = {
    "draft": "incomplete",
    "pending": "pending",
    "in_review": "in review",
    "approved": "approved",
    "rejected": "rejected",
    "reupload_requested": "re-upload requested",
    "expired": "expired",
}
DOC_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9 ./-]{1,58}[A-Z0-9]$")


# --- claims -------------------------------------------------------------------------------------


async def _document(document_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    return await db.fetchrow(
        "SELECT d.*, t.code AS type_code, t.name AS type_name, t.has_expiry, t.two_sided, "
        "s.name AS claimed_by_name, r.name AS reviewed_by_name FROM kyc_documents d "
        "JOIN kyc_document_types t ON t.id = d.doc_type LEFT JOIN staff_users s ON s.id = d.claimed_by "
        "LEFT JOIN staff_users r ON r.id = d.reviewed_by WHERE d.id = $1"
        + (" FOR UPDATE OF d" if lock else ""),
        document_id,
    )


async def document_for(viewer: Principal, document_id: int) -> dict[str, Any]:
    """The document, for a reviewer who may see its client; 404 to everyone else."""
    require_reviewer(viewer)
    doc = await _document(document_id)
    if doc is None:
        raise NotFound("document")
    await get_client_for(viewer, doc["client"])
    return doc


async def _queue_changed(document_id: int) -> None:
    for role in REVIEWER_ROLES:
        await live.publish(f"staff:role:{role}", "kyc.queue_changed", document_id=document_id)


async def claim(
    viewer: Principal, document_id: int, actor: Actor, *, now: datetime | None = None
) -> dict[str, Any]:
    """Take the document for review. Refused (FormErrors) when a colleague holds a fresh claim,
    when it was decided meanwhile, or when it is an address waiting for the identity approval."""
    now = now or datetime.now(UTC)
    before = await document_for(viewer, document_id)
    async with transaction():
        rows = await db.fetch(
            "UPDATE kyc_documents d SET status = 'in_review', claimed_by = {}, claimed_at = {} "
            "WHERE d.id = {} AND (d.status = 'pending' OR (d.status = 'in_review' AND "
            "(d.claimed_by = {} OR d.claimed_by IS NULL OR d.claimed_at IS NULL OR d.claimed_at < {}))) "
            f"AND {REVIEWABLE} RETURNING d.id",
            viewer.id,
            now,
            document_id,
            viewer.id,
            now - STALE_CLAIM,
            now.date(),
        )
        if not rows:
            raise FormErrors({"__all__": await _why_not_claimable(viewer, document_id, now)})
        if before["status"] == "in_review" and before["claimed_by"] == viewer.id:
            return await document_for(viewer, document_id)  # already ours: nothing to record
        taken_over = before["status"] == "in_review" and before["claimed_by"] is not None
        await audit.record(
            actor,
            "kyc.document_claimed",
            "client",
            before["client"],
            before={
                "document_id": document_id,
                "status": before["status"],
                "claimed_by": before["claimed_by"],
            },
            after={"document_id": document_id, "status": "in_review", "claimed_by": viewer.id}
            | ({"taken_over_from": before["claimed_by"]} if taken_over else {}),
        )
        await _queue_changed(document_id)
    return await document_for(viewer, document_id)


async def _why_not_claimable(viewer: Principal, document_id: int, now: datetime) -> str:
    doc = await _document(document_id)
    if doc is None:
        raise NotFound("document")
    if doc["status"] == "in_review" and doc["claimed_by"] not in (None, viewer.id):
        minutes = int((now - doc["claimed_at"]).total_seconds() // 60) if doc["claimed_at"] else 0
        return (
            f"{doc['claimed_by_name']} claimed this document {minutes} min ago and is reviewing it; "
            f"you may take it over if the claim is still open after {int(STALE_CLAIM.total_seconds() // 60)} min."
        )
    if doc["status"] in ("pending", "in_review") and doc["category"] == "address":
        return "This proof of address waits until the client's identity document is approved."
    if doc["status"] == "draft":
        return "The client has not finished uploading this document yet."
    return f"This document has already been decided ({STATUS_LABELS.get(doc['status'], doc['status'])})."


async def release(viewer: Principal, document_id: int, actor: Actor) -> None:
    """Give the document back to the queue undecided (only its holder can)."""
    doc = await document_for(viewer, document_id)
    async with transaction():
        rows = await db.fetch(
            "UPDATE kyc_documents SET status = 'pending', claimed_by = NULL, claimed_at = NULL "
            "WHERE id = {} AND status = 'in_review' AND claimed_by = {} RETURNING id",
            document_id,
            viewer.id,
        )
        if not rows:
            raise FormErrors({"__all__": "You do not hold the claim on this document."})
        await audit.record(
            actor,
            "kyc.document_released",
            "client",
            doc["client"],
            before={"document_id": document_id, "status": "in_review", "claimed_by": viewer.id},
            after={"document_id": document_id, "status": "pending", "claimed_by": None},
        )
        await _queue_changed(document_id)


# --- decisions ----------------------------------------------------------------------------------


async def _held_by(viewer: Principal, document_id: int) -> dict[str, Any]:
    """The document locked for this decision, if the viewer holds its claim; else why not."""
    require_reviewer(viewer)
    doc = await _document(document_id, lock=True)
    if doc is None:
        raise NotFound("document")
    await get_client_for(viewer, doc["client"])
    if doc["status"] == "in_review" and doc["claimed_by"] == viewer.id:
        return doc
    if doc["status"] == "in_review":
        raise FormErrors(
            {
                "__all__": f"{doc['claimed_by_name']} holds the claim on this document: only they can decide it."
            }
        )
    if doc["status"] == "pending":
        raise FormErrors({"__all__": "Claim this document before deciding it."})
    raise FormErrors(
        {
            "__all__": f"This document has already been decided ({STATUS_LABELS.get(doc['status'], doc['status'])})."
        }
    )


async def _client(client_id: int) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT id, email, first_name, last_name, language, stage FROM clients WHERE id = $1", client_id
    )
    assert row is not None
    return row


def parse_expiry(value: str | date | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _approval_fields(
    doc: dict[str, Any], doc_number: str, issuing_country: str, expires_on: str | date | None, today: date
) -> tuple[str, str, date | None]:
    """Number, country and expiry, checked: required for identity types that expire."""
    errors: dict[str, str] = {}
    required = bool(doc["has_expiry"])
    number = " ".join((doc_number or "").split()).upper()
    if not number:
        if required:
            errors["doc_number"] = "Enter the document number as printed on it."
    elif not DOC_NUMBER.match(number):
        errors["doc_number"] = "A document number is 3–60 letters and digits (spaces, -, / and . allowed)."
    country = (issuing_country or "").strip().upper()
    if not country:
        if required:
            errors["issuing_country"] = "Choose the country that issued the document."
    elif pycountry.countries.get(alpha_2=country) is None:
        errors["issuing_country"] = "Choose the issuing country from the list (ISO 3166 code)."
    expiry: date | None = None
    if required:
        expiry = parse_expiry(expires_on)
        raw = expires_on.strip() if isinstance(expires_on, str) else expires_on
        if expiry is None:
            errors["expires_on"] = (
                "Enter the expiry date as YYYY-MM-DD."
                if raw
                else "Enter the expiry date printed on the document."
            )
        elif expiry <= today:
            errors["expires_on"] = "This document has expired: the expiry date must be in the future."
    if errors:
        raise FormErrors(errors)
    return number, country, expiry


async def approve(
    viewer: Principal,
    document_id: int,
    doc_number: str,
    issuing_country: str,
    expires_on: str | date | None,
    actor: Actor,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Approve the document the viewer holds; returns its client's level before and after."""
    now = now or datetime.now(UTC)
    async with transaction():
        doc = await _held_by(viewer, document_id)
        number, country, expiry = _approval_fields(doc, doc_number, issuing_country, expires_on, now.date())
        if doc["category"] == "address" and not await db.fetch(
            f"SELECT 1 FROM kyc_documents d WHERE d.id = {{}} AND {IDENTITY_APPROVED}",
            document_id,
            now.date(),
        ):
            raise FormErrors(
                {"__all__": "A proof of address can be approved only after an identity document is approved."}
            )
        await db.fetch(
            "UPDATE kyc_documents SET status = 'approved', reviewed_by = {}, reviewed_at = {}, doc_number = {}, "
            "issuing_country = {}, expires_on = {}, expiry_reminded_on = NULL, reason_code = '', "
            "client_message = '' WHERE id = {}",
            viewer.id,
            now,
            number,
            country,
            expiry,
            document_id,
        )
        after = {"status": "approved", "doc_number": number, "issuing_country": country, "expires_on": expiry}
        await _record(actor, doc, "kyc.document_approved", after)
        summary = f"{doc['type_name']} approved by {viewer.name}" + (
            f" (no. {number}, {country}, expires {expiry:%Y-%m-%d})" if expiry else ""
        )
        await record_event(doc["client"], "document", summary, "kyc_document", document_id, at=now)
        old, new = await levels.recompute_level(doc["client"], actor, f"{doc['type_name']} approved")
        await risk.reassess(doc["client"], actor, f"{doc['type_name']} approved")  # e.g. its issuing country
        rights = await levels.rights_for(doc["client"])
        client = await _client(doc["client"])
        await _email(
            client, "kyc_approved", doc, level_raised=new > old, level=new, level_name=rights.level_name
        )
        await _published(doc)
    return {"document_id": document_id, "status": "approved", "level_before": old, "level_after": new}


async def reject(
    viewer: Principal,
    document_id: int,
    reason_code: str,
    note: str,
    actor: Actor,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Turn the document down for good: the client must submit another one."""
    return await _decline(viewer, document_id, reason_code, note, actor, "rejected", now)


async def request_reupload(
    viewer: Principal,
    document_id: int,
    reason_code: str,
    note: str,
    actor: Actor,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Ask the client to send the same document again (a better photo, the missing corner)."""
    return await _decline(viewer, document_id, reason_code, note, actor, "reupload_requested", now)


def _decline_fields(reason_code: str, note: str) -> tuple[str, str]:
    errors: dict[str, str] = {}
    code = (reason_code or "").strip()
    note = (note or "").strip()
    reason = reasons.BY_CODE.get(code)
    if reason is None:
        errors["reason_code"] = "Choose a reason from the list."
    elif reason.note_required and not note:
        errors["note"] = "Explain to the client what is wrong: “other” says nothing on its own."
    if len(note) > MAX_NOTE:
        errors["note"] = f"Keep the note under {MAX_NOTE} characters."
    if errors:
        raise FormErrors(errors)
    return code, note


async def _decline(
    viewer: Principal,
    document_id: int,
    reason_code: str,
    note: str,
    actor: Actor,
    status: str,
    now: datetime | None,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    code, note = _decline_fields(reason_code, note)
    async with transaction():
        doc = await _held_by(viewer, document_id)
        client = await _client(doc["client"])
        message = reasons.client_message(code, client["language"], note)
        await db.fetch(
            "UPDATE kyc_documents SET status = {}, reviewed_by = {}, reviewed_at = {}, reason_code = {}, "
            "client_message = {} WHERE id = {}",
            status,
            viewer.id,
            now,
            code,
            message,
            document_id,
        )
        action = "kyc.document_rejected" if status == "rejected" else "kyc.document_reupload_requested"
        await _record(actor, doc, action, {"status": status, "reason_code": code, "client_message": message})
        verb = "rejected" if status == "rejected" else "sent back for a new upload"
        label = reasons.BY_CODE[code].label.lower()
        await record_event(
            doc["client"],
            "document",
            f"{doc['type_name']} {verb} by {viewer.name}: {label}" + (f" ({note})" if note else ""),
            "kyc_document",
            document_id,
            at=now,
        )
        _, level = await levels.recompute_level(doc["client"], actor, f"{doc['type_name']} {status}")
        await _back_to_registered(doc["client"], client["stage"], level, actor, doc["type_name"], status)
        await _email(client, "kyc_rejected" if status == "rejected" else "kyc_reupload", doc, message=message)
        await _published(doc)
    return {"document_id": document_id, "status": status, "client_message": message}


async def _back_to_registered(
    client_id: int, stage: str, level: int, actor: Actor, type_name: str, status: str
) -> None:
    """A client waiting on KYC (kyc_pending, level 0) with nothing left to review goes back to
    registered: the stage says what the client must do next. A new upload moves them forward again."""
    if stage != "kyc_pending" or level != 0:
        return
    still = await db.fetch(
        "SELECT 1 FROM kyc_documents WHERE client = {} AND status IN ('pending', 'in_review') LIMIT 1",
        client_id,
    )
    if not still:
        what = "rejected" if status == "rejected" else "sent back for a new upload"
        await lifecycle.change_stage(client_id, "registered", actor, reason=f"{type_name} {what}")


async def _record(actor: Actor, doc: dict[str, Any], action: str, after: dict[str, Any]) -> None:
    keep = ("status", "claimed_by", "doc_number", "issuing_country", "expires_on", "reason_code")
    await audit.record(
        actor,
        action,
        "client",
        doc["client"],
        before={"document_id": doc["id"], "type": doc["type_code"]} | {k: doc[k] for k in keep},
        after={"document_id": doc["id"], "type": doc["type_code"]} | after,
    )


async def _email(client: dict[str, Any], template: str, doc: dict[str, Any], **context: Any) -> None:
    await mail.queue_email(
        client["email"],
        template,
        {
            "name": client["first_name"],
            "what": reasons.category_noun(doc["category"], client["language"]),
            "document": doc["type_name"],
            **context,
        },
        client_id=client["id"],
        language=client["language"],
    )


async def _published(doc: dict[str, Any]) -> None:
    client_id = doc["client"]
    await live.publish(f"client:{client_id}", "kyc.document_reviewed", document_id=doc["id"])
    await live.publish(f"staff:client:{client_id}", "client_page.kyc", client_id=client_id)
    await _queue_changed(doc["id"])
