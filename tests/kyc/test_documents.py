"""Uploading documents from the client's side, and who may get a stored file back."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from app.core import db
from app.core.errors import FormErrors, NotFound
from app.core.tables import AuditEvent
from app.kyc import documents
from app.kyc.tables import Document, DocumentFile
from app.settings import get_settings
from app.workbench.tables import TimelineEvent
from tests.personas import principal_of

principal = principal_of  # the shared persona-to-Principal helper


def jpeg(colour=(180, 160, 140)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 400), colour).save(out, "JPEG")
    return out.getvalue()


def stored_files() -> list[Path]:
    root = get_settings().kyc.documents_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def a(personas):
    p = principal(personas["client_a"])
    return p, p.actor("127.0.0.1", "pytest")


async def test_a_passport_photo_is_stored_encrypted_and_enters_the_review_queue(personas, a):
    p, actor = a
    before = set(stored_files())
    result = await documents.upload_side(p, "passport", "single", jpeg(), actor)
    assert result["status"] == "pending" and result["complete"]
    new = set(stored_files()) - before
    assert len(new) == 1
    f = await DocumentFile.select().where(DocumentFile.document == result["document_id"]).first()
    assert new.pop().name == f["storage_name"] and f["mime"] == "image/jpeg"
    assert (await db.fetchrow("SELECT stage FROM clients WHERE id = $1", p.id))["stage"] == "kyc_pending"
    event = await AuditEvent.select().where(AuditEvent.action == "kyc.document_uploaded").first()
    after = json.loads(event["after"])
    assert after["received_sha256"] and after["stored_sha256"] == f["stored_sha256"] and after["submitted"]
    summaries = [r["summary"] for r in await TimelineEvent.select().where(TimelineEvent.kind == "document")]
    assert summaries == ["Uploaded Passport; submitted for review"]


async def test_an_id_card_waits_for_its_back_and_a_side_sent_again_replaces_the_first(personas, a):
    p, actor = a
    first = await documents.upload_side(p, "id_card", "front", jpeg(), actor)
    assert first["status"] == "draft"
    checklist = await documents.checklist_for(p)
    identity = next(r for r in checklist["requirements"] if r.category == "identity")
    assert identity.status == "uploaded" and set(identity.document["files"]) == {"front"}
    old_name = (await DocumentFile.select().first())["storage_name"]
    again = await documents.upload_side(p, "id_card", "front", jpeg((10, 10, 10)), actor)
    assert again["document_id"] == first["document_id"] and again["status"] == "draft"
    assert old_name not in {f.name for f in stored_files()}  # the replaced photo is gone
    done = await documents.upload_side(p, "id_card", "back", jpeg(), actor)
    assert done == {"document_id": first["document_id"], "status": "pending", "complete": True}
    assert await DocumentFile.count() == 2


async def test_a_bad_file_is_refused_with_its_reason_and_nothing_is_stored(personas, a):
    p, actor = a
    before = stored_files()
    with pytest.raises(FormErrors) as refused:
        await documents.upload_side(p, "passport", "single", b"GIF89a not a passport", actor)
    assert "not a JPEG, PNG, WebP image or a PDF" in refused.value.errors["file"]
    with pytest.raises(FormErrors) as refused:
        await documents.upload_side(p, "passport", "back", jpeg(), actor)
    assert refused.value.errors == {"side": "A passport is uploaded as: single."}
    with pytest.raises(FormErrors):
        await documents.upload_side(p, "incorporation_certificate", "single", jpeg(), actor)  # not for people
    assert await Document.count() == 0 and await DocumentFile.count() == 0 and stored_files() == before


async def test_a_document_under_review_cannot_be_replaced(personas, a):
    p, actor = a
    doc = await documents.upload_side(p, "passport", "single", jpeg(), actor)
    await Document.update({Document.status: "in_review"}).where(Document.id == doc["document_id"])
    files = stored_files()
    with pytest.raises(FormErrors) as refused:
        await documents.upload_side(p, "passport", "single", jpeg(), actor)
    assert "being reviewed right now" in refused.value.errors["file"]
    assert stored_files() == files  # the file written before the refusal was removed


async def test_a_file_is_served_to_its_client_and_to_compliance_only(personas, a):
    p, actor = a
    doc = await documents.upload_side(p, "passport", "single", jpeg(), actor)
    file_id = (
        await DocumentFile.select(DocumentFile.id).where(DocumentFile.document == doc["document_id"]).first()
    )["id"]
    content, mime = await documents.file_for(p, file_id, actor)
    assert mime == "image/jpeg" and content.startswith(b"\xff\xd8\xff")
    for other in ("client_b", "sales", "finance", "dealing"):
        viewer = principal(personas[other])
        with pytest.raises(NotFound):
            await documents.file_for(viewer, file_id, viewer.actor("127.0.0.1", "pytest"))
    officer = principal(personas["compliance"])
    assert (await documents.file_for(officer, file_id, officer.actor("127.0.0.1", "pytest")))[0] == content
    viewed = await AuditEvent.select().where(AuditEvent.action == "kyc.document_viewed")
    assert len(viewed) == 1 and viewed[0]["actor_label"]  # staff views are audited; the client's own are not
    with pytest.raises(NotFound):
        await documents.file_for(p, 999_999, actor)


async def test_the_checklist_shows_expiring_and_expired_identity_documents(personas, a):
    p, actor = a
    doc = await documents.upload_side(p, "passport", "single", jpeg(), actor)
    soon = datetime.now(UTC).date() + timedelta(days=10)
    await Document.update({Document.status: "approved", Document.expires_on: soon}).where(
        Document.id == doc["document_id"]
    )
    statuses = {r.category: r.status for r in (await documents.checklist_for(p))["requirements"]}
    assert statuses == {"identity": "expiring", "address": "missing"}
    await Document.update({Document.expires_on: soon - timedelta(days=30)}).where(
        Document.id == doc["document_id"]
    )
    identity = (await documents.checklist_for(p))["requirements"][0]
    assert identity.status == "expired" and identity.needed_for == "level 1 (Identity verified)"
