"""The client portal's documents page: the checklist as cards, uploads side by side (htmx and plain
form posts), refusals that keep everything else, the authorised file handlers, and live cards."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from app.core.live import Event, render_for
from app.core.tables import AuditEvent
from app.kyc import documents, levels
from app.kyc.controllers.portal import MAX_REQUEST
from app.kyc.tables import Document, DocumentFile
from app.settings import get_settings
from tests.conftest import CSRF_RE
from tests.personas import principal_of, sign_in

PAGE = "/portal/documents"
UPLOAD = "/portal/documents/upload"
HTMX = {"HX-Request": "true"}


principal = principal_of  # the shared persona-to-Principal helper


def jpeg(colour=(180, 160, 140)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 400), colour).save(out, "JPEG")
    return out.getvalue()


def stored_files() -> list[Path]:
    root = get_settings().kyc.documents_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def upload(
    client, doc_type: str, side: str, data: bytes | None, *, htmx: bool = False, token=True, **extra
):
    """Post one side as the page's form does: the camera input and the file picker both go along
    (the one not used is empty)."""
    fields = {"type": doc_type, "side": side, **extra}
    if token:
        fields["_csrf_token"] = CSRF_RE.search((await client.get(PAGE)).text).group(1)
    files = [("file", ("", b"", "application/octet-stream"))]
    if data is not None:
        files.append(("file", ("IMG_0001.jpg", data, "image/jpeg")))
    return await client.post(UPLOAD, data=fields, files=files, headers=HTMX if htmx else {})


def side_form(html: str, form_id: str) -> str:
    m = re.search(rf'<form id="{form_id}".*?</form>', html, re.S)
    assert m, f"no form {form_id}"
    return m.group(0)


def card(html: str, category: str) -> str:
    m = re.search(rf'<section id="card-{category}".*?</section>', html, re.S)
    assert m, f"no card {category}"
    return m.group(0)


async def file_ids(client_id: int) -> dict[str, int]:
    rows = await DocumentFile.select(DocumentFile.id, DocumentFile.side).where(
        DocumentFile.document.client == client_id
    )
    return {r["side"]: r["id"] for r in rows}


# --- the page -------------------------------------------------------------------------------------


async def test_a_client_sees_a_card_per_required_document_with_their_level_and_next_step(client, personas):
    await sign_in(client, personas["client_a"])
    page = await client.get(PAGE)
    assert page.status_code == 200 and "<html" in page.text
    for landmark in (
        'id="card-identity"',
        'id="card-address"',
        "Level 0",
        "You can: use the client portal, open demo accounts.",
        "Next: upload an identity document (passport, ID card or driving licence) to open live trading "
        "accounts and deposit up to 2,000 USD.",
        "we review it once your identity document is approved",
    ):
        assert landmark in page.text, landmark
    identity = card(page.text, "identity")
    assert "Missing" in identity and "Passport" in identity and "National identity card" in identity
    # Camera capture for the phone, and a picker beside it (capture opens only the camera: no PDF).
    front = side_form(page.text, "side-id_card-front")
    assert 'accept="image/*" capture="environment"' in front
    assert 'accept="image/*,application/pdf">' in front and 'name="_csrf_token"' in front
    assert 'id="side-id_card-back"' in page.text and 'id="side-passport-single"' in page.text
    assert 'href="/portal/documents" class="active"' in page.text  # the portal navigation

    fragment = await client.get(PAGE, headers=HTMX)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'id="kyc-banner"' in fragment.text and 'id="card-identity"' in fragment.text


async def test_staff_and_visitors_are_kept_out_of_the_documents_pages(client, personas):
    for who in ("admin", "compliance"):
        await sign_in(client, personas[who])
        for url in (PAGE, "/portal/documents/files/1"):
            r = await client.get(url)
            assert r.status_code == 403 and "staff use the staff console" in r.text
    await sign_in(client, personas["outsider"])
    r = await client.get(PAGE)
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/login?next=")


async def test_the_dashboard_loads_the_level_banner_from_the_documents_page(client, personas):
    await sign_in(client, personas["client_a"])
    home = await client.get("/portal")
    assert 'hx-get="/portal/documents" hx-select="#kyc-banner"' in home.text
    assert '<a href="/portal/documents">Documents</a>' in home.text


async def test_at_level_one_the_banner_names_the_rights_held_and_what_level_two_adds(client, personas):
    p = principal(personas["client_a"])
    doc = await documents.upload_side(p, "passport", "single", jpeg(), p.actor())
    await Document.update({Document.status: "approved"}).where(Document.id == doc["document_id"])
    assert await levels.recompute_level(p.id, p.actor(), "test") == (0, 1)
    await sign_in(client, personas["client_a"])
    page = (await client.get(PAGE)).text
    assert "Level 1" in page and "Identity verified" in page
    assert "You can: use the client portal, open demo accounts, open live trading accounts, deposit." in page
    assert (
        "Next: upload a proof of address (utility bill or bank statement), then complete the "
        "appropriateness questionnaire to withdraw and deposit without a limit." in page
    )
    assert 'href="/portal/documents#card-address"' in page
    assert "we review it once your identity" not in page


# --- uploading ------------------------------------------------------------------------------------


async def test_a_client_uploads_the_front_then_the_back_of_an_id_card_by_htmx(client, personas):
    client_id = personas["client_a"].id
    await sign_in(client, personas["client_a"])
    front = await upload(client, "id_card", "front", jpeg(), htmx=True)
    assert front.status_code == 200, front.text
    assert front.headers["hx-retarget"] == "#card-identity" and front.headers["hx-reswap"] == "outerHTML"
    assert "<html" not in front.text
    identity = card(front.text, "identity")
    assert "Uploaded — waiting for the other side" in identity
    assert 'id="type-id_card" value="id_card" checked' in identity  # the type just used stays chosen
    ids = await file_ids(client_id)
    assert f'src="/portal/documents/files/{ids["front"]}"' in side_form(identity, "side-id_card-front")
    assert "Not uploaded yet" in side_form(identity, "side-id_card-back")
    assert 'id="kyc-banner" class="level-banner" hx-swap-oob="true"' in front.text
    assert "finish uploading an identity document" in front.text

    back = await upload(client, "id_card", "back", jpeg((20, 20, 20)), htmx=True)
    assert back.status_code == 200
    identity = card(back.text, "identity")
    assert "In review" in identity and "you can still replace a photo" in identity
    assert "Next: we are reviewing your identity document; once it is approved you can open" in back.text
    doc = await Document.select().where(Document.client == client_id).first()
    assert doc["status"] == "pending" and set(await file_ids(client_id)) == {"front", "back"}


async def test_without_htmx_an_upload_redirects_back_and_a_refusal_gets_the_whole_page(client, personas):
    await sign_in(client, personas["client_a"])
    r = await upload(client, "passport", "single", jpeg())
    assert r.status_code == 303 and r.headers["location"] == PAGE
    page = await client.get(PAGE)
    assert "In review" in card(page.text, "identity")

    before = stored_files()
    r = await upload(client, "utility_bill", "single", b"%PDF-1.4 not really a pdf")
    assert r.status_code == 422 and "<html" in r.text
    address = side_form(r.text, "side-utility_bill-single")
    assert "The PDF is damaged or incomplete" in address
    assert 'id="type-utility_bill" value="utility_bill" checked' in r.text
    assert await Document.count().where(Document.category == "address") == 0 and stored_files() == before


async def test_a_bad_back_is_refused_with_its_reason_and_the_front_stays(client, personas):
    client_id = personas["client_a"].id
    await sign_in(client, personas["client_a"])
    await upload(client, "id_card", "front", jpeg(), htmx=True)
    front_id = (await file_ids(client_id))["front"]
    before = stored_files()
    refusals = [
        (b"GIF89a\x01\x00\x01\x00 renamed to .jpg", "not a JPEG, PNG, WebP image or a PDF"),
        (jpeg()[:400], "could not be read: it looks damaged or incomplete"),
        (b"", "The file is empty"),
        (None, "Take a photo or choose a file to upload."),
    ]
    for data, message in refusals:
        r = await upload(client, "id_card", "back", data, htmx=True)
        assert r.status_code == 422, message
        assert r.headers["hx-retarget"] == "#card-identity" and "<html" not in r.text
        assert message in side_form(r.text, "side-id_card-back"), message
        assert f'src="/portal/documents/files/{front_id}"' in side_form(r.text, "side-id_card-front")
        assert "Uploaded — waiting for the other side" in r.text
    assert await file_ids(client_id) == {"front": front_id} and stored_files() == before


async def test_an_unknown_type_or_side_is_refused_on_the_card(client, personas):
    await sign_in(client, personas["client_a"])
    r = await upload(client, "passport", "back", jpeg(), htmx=True)
    assert r.status_code == 422 and r.headers["hx-retarget"] == "#card-identity"
    assert "A passport is uploaded as: single." in r.text
    r = await upload(client, "incorporation_certificate", "single", jpeg(), htmx=True)
    assert r.status_code == 422 and "Choose one of the document types listed." in r.text
    assert await Document.count() == 0


async def test_the_size_limit_is_the_kyc_limit_not_the_form_limit(client, personas):
    limit = get_settings().kyc.max_upload_bytes
    assert MAX_REQUEST > limit > get_settings().security.max_form_bytes
    await sign_in(client, personas["client_a"])
    r = await upload(client, "passport", "single", jpeg() + b"\0" * (limit + 1 - len(jpeg())), htmx=True)
    assert r.status_code == 422 and "the limit is 10 MB" in r.text
    r = await upload(client, "passport", "single", b"\xff\xd8\xff" + b"\0" * MAX_REQUEST, htmx=True)
    assert r.status_code == 413
    assert await Document.count() == 0


async def test_an_upload_without_a_csrf_token_is_refused_and_nothing_is_stored(client, personas):
    await sign_in(client, personas["client_a"])
    before = stored_files()
    for htmx in (False, True):
        r = await upload(client, "passport", "single", jpeg(), htmx=htmx, token=False)
        assert r.status_code == 403 and "security token" in r.text
    assert await Document.count() == 0 and stored_files() == before


# --- statuses -------------------------------------------------------------------------------------


async def test_a_rejected_document_shows_the_reason_in_the_clients_words_and_can_be_sent_again(
    client, personas
):
    p = principal(personas["client_a"])
    doc = await documents.upload_side(p, "passport", "single", jpeg(), p.actor())
    await Document.update(
        {
            Document.status: "rejected",
            Document.reason_code: "blurred",
            Document.client_message: "Das Foto ist unscharf.\n\nBitte ohne Blitz.",
        }
    ).where(Document.id == doc["document_id"])
    await sign_in(client, personas["client_a"])
    identity = card((await client.get(PAGE)).text, "identity")
    assert "Rejected" in identity and "We could not accept your passport." in identity
    assert "Das Foto ist unscharf.\n\nBitte ohne Blitz." in identity
    assert 'id="side-passport-single"' in identity  # upload again from the same card
    r = await upload(client, "passport", "single", jpeg(), htmx=True)
    assert r.status_code == 200 and "In review" in card(r.text, "identity")


async def test_a_reupload_request_is_answered_by_the_newer_document(client, personas):
    p = principal(personas["client_a"])
    first = await documents.upload_side(p, "passport", "single", jpeg(), p.actor())
    await Document.update({Document.status: "reupload_requested", Document.reason_code: "cropped"}).where(
        Document.id == first["document_id"]
    )
    await sign_in(client, personas["client_a"])
    identity = card((await client.get(PAGE)).text, "identity")
    assert "Re-upload requested" in identity and "all four corners are visible" in identity
    second = await documents.upload_side(p, "passport", "single", jpeg(), p.actor())
    await Document.update({Document.status: "approved"}).where(Document.id == second["document_id"])
    identity = card((await client.get(PAGE)).text, "identity")
    assert "Approved" in identity and "Re-upload requested" not in identity
    assert "Upload a newer document" in identity  # behind a fold: nothing more is needed


async def test_an_expiring_identity_document_shows_its_date_and_asks_for_the_new_one(client, personas):
    p = principal(personas["client_a"])
    doc = await documents.upload_side(p, "passport", "single", jpeg(), p.actor())
    soon = datetime.now(UTC).date() + timedelta(days=10)
    await Document.update({Document.status: "approved", Document.expires_on: soon}).where(
        Document.id == doc["document_id"]
    )
    await sign_in(client, personas["client_a"])
    identity = card((await client.get(PAGE)).text, "identity")
    assert "Expiring" in identity and soon.strftime("%-d %B %Y") in identity
    assert 'id="side-passport-single"' in identity and "<details" not in identity
    await Document.update({Document.expires_on: soon - timedelta(days=30)}).where(
        Document.id == doc["document_id"]
    )
    identity = card((await client.get(PAGE)).text, "identity")
    assert "Expired" in identity and "restore your verification" in identity


async def test_a_document_a_reviewer_has_claimed_offers_no_upload(client, personas):
    p = principal(personas["client_a"])
    doc = await documents.upload_side(p, "passport", "single", jpeg(), p.actor())
    await Document.update({Document.status: "in_review"}).where(Document.id == doc["document_id"])
    await sign_in(client, personas["client_a"])
    identity = card((await client.get(PAGE)).text, "identity")
    assert "A reviewer is checking your passport now." in identity and "<form" not in identity
    assert "/portal/documents/files/" in identity  # the photo as sent


# --- the file handlers ----------------------------------------------------------------------------


def assert_safe_headers(r, file_id: int) -> None:
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "private, no-store"
    assert r.headers["content-disposition"] == f'inline; filename="document-{file_id}.jpg"'
    assert r.headers["content-security-policy"] == "sandbox; default-src 'none'"


async def test_a_client_gets_their_own_file_and_nobody_elses(client, personas):
    p = principal(personas["client_a"])
    await documents.upload_side(p, "passport", "single", jpeg(), p.actor())
    file_id = (await file_ids(p.id))["single"]
    await sign_in(client, personas["client_a"])
    r = await client.get(f"/portal/documents/files/{file_id}")
    assert r.status_code == 200 and r.content.startswith(b"\xff\xd8\xff")
    assert_safe_headers(r, file_id)
    assert (await client.get("/portal/documents/files/999999")).status_code == 404
    for other in ("client_b", "ib"):
        await sign_in(client, personas[other])
        r = await client.get(f"/portal/documents/files/{file_id}")
        assert r.status_code == 404 and r.content != b"" and b"\xff\xd8\xff" not in r.content
    await sign_in(client, personas["client_a"])
    assert (await client.get(f"/staff/kyc/files/{file_id}")).status_code == 403  # the staff console


async def test_compliance_and_admins_get_a_file_audited_and_other_staff_a_404(client, personas):
    p = principal(personas["client_a"])
    await documents.upload_side(p, "passport", "single", jpeg(), p.actor())
    file_id = (await file_ids(p.id))["single"]
    for who in ("compliance", "admin"):
        await sign_in(client, personas[who])
        r = await client.get(f"/staff/kyc/files/{file_id}")
        assert r.status_code == 200 and r.content.startswith(b"\xff\xd8\xff"), who
        assert_safe_headers(r, file_id)
    viewed = await AuditEvent.select().where(AuditEvent.action == "kyc.document_viewed")
    assert [v["actor_label"] for v in viewed] == ["compliance@staff.test", "admin@staff.test"]
    assert json.loads(viewed[0]["after"])["file_id"] == file_id
    for who in ("sales", "finance", "dealing"):  # sales even sees client_a: still not the passport
        await sign_in(client, personas[who])
        r = await client.get(f"/staff/kyc/files/{file_id}")
        assert r.status_code == 404 and b"\xff\xd8\xff" not in r.content, who
    assert await AuditEvent.count().where(AuditEvent.action == "kyc.document_viewed") == 2


# --- live -----------------------------------------------------------------------------------------


async def test_a_review_decision_reaches_only_the_clients_own_page(personas):
    a, b = principal(personas["client_a"]), principal(personas["client_b"])
    doc = await documents.upload_side(a, "passport", "single", jpeg(), a.actor())
    await Document.update({Document.status: "approved"}).where(Document.id == doc["document_id"])
    event = Event(f"client:{a.id}", "kyc.document_reviewed", {"document_id": doc["document_id"]})
    [html] = await render_for(a, event)
    assert (
        '<section id="card-identity" class="card doc-card" data-status="approved" hx-swap-oob="true"' in html
    )
    assert '<section id="card-address"' in html  # identity approved: the address card's note goes
    assert "we review it once your identity" not in html
    assert 'id="kyc-banner" class="level-banner" hx-swap-oob="true"' in html
    assert await render_for(b, event) == []
    assert await render_for(principal(personas["compliance"]), event) == []
    stray = Event(f"client:{b.id}", "kyc.document_reviewed", {"document_id": doc["document_id"]})
    assert await render_for(a, stray) == []  # a's socket hearing b's topic renders nothing


@pytest.mark.parametrize("event_type", ["kyc.document_changed", "kyc.level_changed"])
async def test_uploads_elsewhere_and_level_changes_update_the_open_page(personas, event_type):
    a = principal(personas["client_a"])
    doc = await documents.upload_side(a, "id_card", "front", jpeg(), a.actor())
    [html] = await render_for(a, Event(f"client:{a.id}", event_type, {"document_id": doc["document_id"]}))
    assert "Uploaded — waiting for the other side" in html and 'id="kyc-banner"' in html
    if event_type == "kyc.document_changed":  # only the card that shows the document
        assert 'id="card-address"' not in html
    assert await render_for(principal(personas["client_b"]), Event(f"client:{a.id}", event_type, {})) == []
