"""The compliance review: a queue oldest-first, one reviewer per document, and decisions that move
the client's level and stage, tell the client in their language, and show live everywhere."""

from __future__ import annotations

import asyncio
import io
import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from PIL import Image

from app.core import db, live
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.core.live import Event, render_for
from app.core.tables import AuditEvent, OutboundEmail
from app.kyc import documents, levels, queue, reasons, review
from app.kyc.queue import QueueFilters
from app.kyc.tables import Document, DocumentFile, DocumentType
from app.workbench.tables import TimelineEvent
from tests.conftest import post_form
from tests.personas import make_staff, principal_of, sign_in

principal = principal_of  # the shared persona-to-Principal helper


def actor(p: Principal):
    return p.actor("127.0.0.1", "pytest")


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 200), (200, 190, 170)).save(out, "JPEG")
    return out.getvalue()


@pytest.fixture
def cast(personas) -> dict[str, Principal]:
    return {name: principal(p) for name, p in personas.items() if p.kind != "anonymous"}


async def submit(client_id: int, code: str, *, at: datetime | None = None, status: str = "pending") -> int:
    """A document as the upload leaves it: all sides in, waiting in the queue since `at`."""
    doc_type = await DocumentType.select().where(DocumentType.code == code).first()
    at = at or datetime.now(UTC)
    row = Document(
        client=client_id,
        doc_type=doc_type["id"],
        category=doc_type["category"],
        status=status,
        created_at=at,
        submitted_at=at,
    )
    await row.save()
    return int(row.id)


async def approved_identity(client_id: int, *, expires_on: date | None = None) -> int:
    doc_id = await submit(client_id, "passport", status="approved")
    await Document.update({Document.expires_on: expires_on or date.today() + timedelta(days=900)}).where(
        Document.id == doc_id
    )
    return doc_id


async def status_of(document_id: int) -> str:
    return (await Document.select(Document.status).where(Document.id == document_id).first())["status"]


async def stage_of(client_id: int) -> str:
    return (await db.fetchrow("SELECT stage FROM clients WHERE id = $1", client_id))["stage"]


async def audits(action: str) -> list[dict]:
    rows = await AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.seq)
    for r in rows:
        r["before"] = json.loads(r["before"]) if r["before"] else None
        r["after"] = json.loads(r["after"]) if r["after"] else None
    return rows


async def emails(template: str) -> list[dict]:
    return await OutboundEmail.select().where(OutboundEmail.template == template).order_by(OutboundEmail.id)


@pytest.fixture
def published(monkeypatch) -> list[tuple[str, str, dict]]:
    sent: list[tuple[str, str, dict]] = []

    async def record(topic: str, type: str, **ids) -> None:
        sent.append((topic, type, ids))

    monkeypatch.setattr(live, "publish", record)
    return sent


# --- the queue ----------------------------------------------------------------------------------


async def test_the_queue_lists_submitted_documents_oldest_first_with_their_age(personas, cast):
    now = datetime.now(UTC)
    a, b = personas["client_a"].id, personas["client_b"].id
    newest = await submit(a, "passport", at=now - timedelta(minutes=5))
    oldest = await submit(b, "id_card", at=now - timedelta(hours=30))
    middle = await submit(b, "selfie", at=now - timedelta(hours=13))
    await submit(a, "driving_licence", status="draft")  # not submitted: not in the queue
    await submit(b, "passport", status="approved")
    page = await queue.queue_for(cast["compliance"], now=now)
    assert [r["id"] for r in page["rows"]] == [oldest, middle, newest]
    assert page["total"] == 3 and page["waiting"] == []
    assert [(r["age"], r["sla"]) for r in page["rows"]] == [
        ("1 d 6 h", "overdue"),
        ("13 h 0 min", "warning"),
        ("5 min", "ok"),
    ]
    with pytest.raises(NotFound):
        await queue.queue_for(cast["sales"])  # reviewers only, even when called directly


async def test_the_queue_filters_by_level_country_and_category(personas, cast):
    a, b = personas["client_a"].id, personas["client_b"].id
    await db.fetch("UPDATE clients SET country = 'FR' WHERE id = {}", b)
    await approved_identity(a)
    await levels.recompute_level(a, actor(cast["admin"]), "test")  # client_a: level 1
    a_address = await submit(a, "utility_bill")
    b_passport = await submit(b, "passport")
    b_selfie = await submit(b, "selfie")

    async def ids(**params) -> list[int]:
        page = await queue.queue_for(cast["compliance"], QueueFilters.parse(params))
        return [r["id"] for r in page["rows"]]

    assert await ids(level="1") == [a_address]
    assert await ids(level="0") == [b_passport, b_selfie]
    assert await ids(country="fr") == [b_passport, b_selfie]
    assert await ids(category="identity") == [b_passport]
    assert await ids(country="FR", category="selfie") == [b_selfie]
    bad = QueueFilters.parse({"level": "top", "country": "XX", "category": "nope"})
    assert (bad.level, bad.country, bad.category) == (None, "", "")
    assert len(bad.notes) == 3 and "not an ISO country code" in bad.notes[1]
    assert QueueFilters.parse({"level": "1", "country": "de"}).query() == "level=1&country=DE"


async def test_the_risk_filter_applies_the_risk_level_of_the_profiles(personas, cast):
    a, b = personas["client_a"].id, personas["client_b"].id
    first, second = await submit(a, "passport"), await submit(b, "passport")
    page = await queue.queue_for(cast["compliance"], QueueFilters.parse({"risk": "high"}))
    assert page["risk_available"] and page["f"].risk == "high" and page["rows"] == []
    # kyc_profiles.risk is app.kyc.risk's stored level (tests/kyc/test_risk.py assesses it for real)
    await levels.profile_of(a)
    await levels.profile_of(b)
    await db.fetch("UPDATE kyc_profiles SET risk = 'high' WHERE client = {}", b)
    page = await queue.queue_for(cast["compliance"], QueueFilters.parse({"risk": "high"}))
    assert [r["id"] for r in page["rows"]] == [second]
    page = await queue.queue_for(cast["compliance"], QueueFilters.parse({}))
    assert [r["id"] for r in page["rows"]] == [first, second]


async def test_a_proof_of_address_waits_for_an_approved_identity_document(personas, cast):
    a = personas["client_a"].id
    officer = cast["compliance"]
    address = await submit(a, "bank_statement")
    page = await queue.queue_for(officer)
    assert page["rows"] == [] and [r["id"] for r in page["waiting"]] == [address]
    with pytest.raises(FormErrors) as refused:
        await review.claim(officer, address, actor(officer))
    assert "waits until the client's identity document is approved" in refused.value.errors["__all__"]
    assert await status_of(address) == "pending"
    # An expired identity document does not count.
    old = await approved_identity(a, expires_on=date.today() - timedelta(days=1))
    assert [r["id"] for r in (await queue.queue_for(officer))["waiting"]] == [address]
    await Document.update({Document.expires_on: date.today() + timedelta(days=400)}).where(Document.id == old)
    page = await queue.queue_for(officer)
    assert [r["id"] for r in page["rows"]] == [address] and page["waiting"] == []
    await review.claim(officer, address, actor(officer))
    # The identity expires while the address is in review: it cannot be approved.
    await Document.update({Document.expires_on: date.today() - timedelta(days=2)}).where(Document.id == old)
    with pytest.raises(FormErrors) as refused:
        await review.approve(officer, address, "", "", "", actor(officer))
    assert "only after an identity document is approved" in refused.value.errors["__all__"]
    assert await status_of(address) == "in_review"


# --- claims -------------------------------------------------------------------------------------


async def test_two_reviewers_claiming_at_once_get_one_claim_between_them(personas, cast, published):
    second_officer = principal(await make_staff("officer2", ["compliance"]))
    doc = await submit(personas["client_a"].id, "passport")
    officers = (cast["compliance"], second_officer)
    results = await asyncio.gather(
        *(review.claim(o, doc, actor(o)) for o in officers), return_exceptions=True
    )
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, FormErrors)]
    assert len(won) == 1 and len(lost) == 1
    holder = won[0]["claimed_by"]
    loser = next(o for o in officers if o.id != holder)
    assert "claimed this document" in lost[0].errors["__all__"]
    row = await Document.select().where(Document.id == doc).first()
    assert (row["status"], row["claimed_by"]) == ("in_review", holder)
    assert len(await audits("kyc.document_claimed")) == 1
    # The loser sees it claimed in their queue, and cannot decide it.
    page = await queue.queue_for(loser)
    assert [(r["id"], r["claim"]) for r in page["rows"]] == [(doc, "taken")]
    with pytest.raises(FormErrors) as refused:
        await review.reject(loser, doc, "blurred", "", actor(loser))
    assert "holds the claim" in refused.value.errors["__all__"]
    topics = {(t, kind) for t, kind, _ in published}
    assert {
        ("staff:role:compliance", "kyc.queue_changed"),
        ("staff:role:admin", "kyc.queue_changed"),
    } <= topics


async def test_a_stale_claim_may_be_taken_over_and_the_takeover_is_audited(personas, cast):
    officer, admin = cast["compliance"], cast["admin"]
    doc = await submit(personas["client_a"].id, "passport")
    start = datetime.now(UTC) - timedelta(hours=1)
    await review.claim(officer, doc, actor(officer), now=start)
    with pytest.raises(FormErrors):
        await review.claim(admin, doc, actor(admin), now=start + timedelta(minutes=10))
    assert (await queue.queue_for(admin))["rows"][0]["claim"] == "stale"  # an hour old now
    taken = await review.claim(admin, doc, actor(admin))
    assert taken["claimed_by"] == admin.id
    last = (await audits("kyc.document_claimed"))[-1]
    assert last["before"]["claimed_by"] == officer.id and last["after"]["taken_over_from"] == officer.id
    with pytest.raises(FormErrors):  # the first officer no longer holds it
        await review.approve(officer, doc, "X1234567", "DE", "2031-01-01", actor(officer))


async def test_a_claim_can_be_released_by_its_holder_only(personas, cast):
    officer, admin = cast["compliance"], cast["admin"]
    doc = await submit(personas["client_a"].id, "passport")
    await review.claim(officer, doc, actor(officer))
    with pytest.raises(FormErrors):
        await review.release(admin, doc, actor(admin))
    await review.release(officer, doc, actor(officer))
    row = await Document.select().where(Document.id == doc).first()
    assert (row["status"], row["claimed_by"], row["claimed_at"]) == ("pending", None, None)
    assert len(await audits("kyc.document_released")) == 1


async def test_only_the_claimant_may_decide(personas, cast):
    officer, admin = cast["compliance"], cast["admin"]
    doc = await submit(personas["client_a"].id, "passport")
    with pytest.raises(FormErrors) as refused:
        await review.approve(officer, doc, "X1234567", "DE", "2031-01-01", actor(officer))
    assert refused.value.errors == {"__all__": "Claim this document before deciding it."}
    await review.claim(officer, doc, actor(officer))
    for decide in (
        review.approve(admin, doc, "X1234567", "DE", "2031-01-01", actor(admin)),
        review.reject(admin, doc, "blurred", "", actor(admin)),
        review.request_reupload(admin, doc, "cropped", "", actor(admin)),
    ):
        with pytest.raises(FormErrors):
            await decide
    for outsider in ("sales", "finance", "dealing", "client_a"):
        with pytest.raises(NotFound):
            await review.reject(cast[outsider], doc, "blurred", "", actor(cast[outsider]))
    assert await status_of(doc) == "in_review"
    assert await audits("kyc.document_rejected") == []
    await review.reject(officer, doc, "blurred", "", actor(officer))
    with pytest.raises(FormErrors) as again:
        await review.approve(officer, doc, "X1234567", "DE", "2031-01-01", actor(officer))
    assert "already been decided (rejected)" in again.value.errors["__all__"]


# --- decisions ----------------------------------------------------------------------------------


async def test_approving_the_last_required_document_raises_the_level_and_the_stage(personas, cast, published):
    a = personas["client_a"].id
    officer = cast["compliance"]
    await db.fetch("UPDATE clients SET stage = 'kyc_pending' WHERE id = {}", a)
    doc = await submit(a, "passport")
    await review.claim(officer, doc, actor(officer))
    expiry = date.today() + timedelta(days=3650)
    result = await review.approve(officer, doc, " x123 4567 ", "de", expiry.isoformat(), actor(officer))
    assert result == {"document_id": doc, "status": "approved", "level_before": 0, "level_after": 1}
    row = await Document.select().where(Document.id == doc).first()
    assert (
        row["status"],
        row["reviewed_by"],
        row["doc_number"],
        row["issuing_country"],
        row["expires_on"],
    ) == (
        "approved",
        officer.id,
        "X123 4567",
        "DE",
        expiry,
    )
    assert await stage_of(a) == "kyc_approved"
    assert (await levels.rights_for(a)).allows("live_accounts")
    approved = (await audits("kyc.document_approved"))[0]
    assert approved["subject_id"] == str(a) and approved["actor_label"] == officer.email
    assert approved["before"]["status"] == "in_review" and approved["after"] == {
        "document_id": doc,
        "type": "passport",
        "status": "approved",
        "doc_number": "X123 4567",
        "issuing_country": "DE",
        "expires_on": expiry.isoformat(),
    }
    assert len(await audits("kyc.level_changed")) == 1
    timeline = [r["summary"] for r in await TimelineEvent.select().where(TimelineEvent.client == a)]
    assert any(s.startswith("Passport approved by Compliance (no. X123 4567, DE, expires") for s in timeline)
    assert "Stage: kyc pending → kyc approved (Passport approved)" in timeline
    [mail] = await emails("kyc_approved")
    assert mail["to_addr"] == personas["client_a"].email
    assert mail["subject"] == "Your identity document has been approved"
    assert "verified to level 1 (Identity verified)" in mail["body_text"]
    assert (f"client:{a}", "kyc.document_reviewed", {"document_id": doc}) in published
    assert (f"staff:client:{a}", "client_page.kyc", {"client_id": a}) in published


async def test_approval_needs_a_number_a_country_and_a_future_expiry_for_identity_documents(personas, cast):
    officer = cast["compliance"]
    doc = await submit(personas["client_a"].id, "id_card")
    await review.claim(officer, doc, actor(officer))
    with pytest.raises(FormErrors) as refused:
        await review.approve(officer, doc, "", "", "", actor(officer))
    assert set(refused.value.errors) == {"doc_number", "issuing_country", "expires_on"}
    with pytest.raises(FormErrors) as refused:
        await review.approve(officer, doc, "<script>", "XX", "31/12/2030", actor(officer))
    assert refused.value.errors == {
        "doc_number": "A document number is 3–60 letters and digits (spaces, -, / and . allowed).",
        "issuing_country": "Choose the issuing country from the list (ISO 3166 code).",
        "expires_on": "Enter the expiry date as YYYY-MM-DD.",
    }
    with pytest.raises(FormErrors) as refused:
        await review.approve(officer, doc, "L01X00T47", "DE", date.today().isoformat(), actor(officer))
    assert refused.value.errors == {
        "expires_on": "This document has expired: the expiry date must be in the future."
    }
    assert await status_of(doc) == "in_review" and await audits("kyc.document_approved") == []
    assert await emails("kyc_approved") == []
    # A document type without an expiry needs none of it.
    bill = await submit(personas["client_a"].id, "selfie")
    await review.claim(officer, bill, actor(officer))
    assert (await review.approve(officer, bill, "", "", "", actor(officer)))["status"] == "approved"


async def test_a_rejection_sends_a_waiting_client_back_to_registered(personas, cast):
    a = personas["client_a"].id
    client = principal(personas["client_a"])
    officer = cast["compliance"]
    uploaded = await documents.upload_side(client, "passport", "single", jpeg(), actor(client))
    assert await stage_of(a) == "kyc_pending"
    doc = uploaded["document_id"]
    await review.claim(officer, doc, actor(officer))
    result = await review.reject(
        officer, doc, "not_matching_name", "Please use your legal name.", actor(officer)
    )
    assert result["client_message"] == (
        "The name on the document does not match the name on your account.\n\nPlease use your legal name."
    )
    assert await stage_of(a) == "registered"
    row = await Document.select().where(Document.id == doc).first()
    assert (row["status"], row["reason_code"], row["reviewed_by"]) == (
        "rejected",
        "not_matching_name",
        officer.id,
    )
    [rejected] = await audits("kyc.document_rejected")
    assert (
        rejected["before"]["status"] == "in_review"
        and rejected["after"]["reason_code"] == "not_matching_name"
    )
    [mail] = await emails("kyc_rejected")
    assert mail["subject"] == "We could not accept your identity document"
    assert "Please use your legal name." in mail["body_text"]
    summaries = [r["summary"] for r in await TimelineEvent.select().where(TimelineEvent.kind == "document")]
    assert (
        "Passport rejected by Compliance: name does not match the account (Please use your legal name.)"
        in summaries
    )
    # The client's checklist now says what happened, in their words.
    identity = (await documents.checklist_for(client))["requirements"][0]
    assert identity.status == "rejected" and identity.document["client_message"] == result["client_message"]


async def test_a_rejection_keeps_the_stage_while_another_document_waits(personas, cast):
    a = personas["client_a"].id
    officer = cast["compliance"]
    await db.fetch("UPDATE clients SET stage = 'kyc_pending' WHERE id = {}", a)
    selfie = await submit(a, "selfie")
    await submit(a, "passport")
    await review.claim(officer, selfie, actor(officer))
    await review.reject(officer, selfie, "blurred", "", actor(officer))
    assert await stage_of(a) == "kyc_pending"


async def test_a_reupload_request_is_audited_and_e_mailed(personas, cast, published):
    a = personas["client_a"].id
    officer = cast["compliance"]
    doc = await submit(a, "passport")
    await review.claim(officer, doc, actor(officer))
    await review.request_reupload(officer, doc, "cropped", "", actor(officer))
    assert await status_of(doc) == "reupload_requested"
    [requested] = await audits("kyc.document_reupload_requested")
    assert requested["after"]["client_message"] == reasons.BY_CODE["cropped"].messages["en"]
    [mail] = await emails("kyc_reupload")
    assert mail["subject"] == "Please upload your identity document again"
    assert (f"client:{a}", "kyc.document_reviewed", {"document_id": doc}) in published


@pytest.mark.parametrize(
    ("language", "message", "subject"),
    [
        ("de", "Das Foto ist unscharf.", "Ihr Dokument (Ausweisdokument) wurde abgelehnt"),
        ("fr-CA", "La photo est floue.", "Nous n'avons pas pu accepter votre document (pièce d'identité)"),
        ("es", "La foto está borrosa.", "No hemos podido aceptar su documento (documento de identidad)"),
        ("ar", "الصورة غير واضحة.", "لم نتمكن من قبول مستندك (وثيقة الهوية)"),
        (
            "pt",
            "The photo is blurred.",
            "We could not accept your identity document",
        ),  # no Portuguese: English
    ],
)
async def test_the_reason_reaches_the_client_in_their_language(personas, cast, language, message, subject):
    a = personas["client_a"].id
    await db.fetch("UPDATE clients SET language = {} WHERE id = {}", language, a)
    officer = cast["compliance"]
    doc = await submit(a, "passport")
    await review.claim(officer, doc, actor(officer))
    result = await review.reject(officer, doc, "blurred", "Nota bene", actor(officer))
    assert result["client_message"].startswith(message) and result["client_message"].endswith("\n\nNota bene")
    [mail] = await emails("kyc_rejected")
    assert mail["subject"] == subject
    assert message in mail["body_text"] and "Nota bene" in mail["body_text"]


async def test_a_reason_must_come_from_the_list_and_other_needs_a_note(personas, cast):
    officer = cast["compliance"]
    doc = await submit(personas["client_a"].id, "passport")
    await review.claim(officer, doc, actor(officer))
    with pytest.raises(FormErrors) as refused:
        await review.reject(officer, doc, "ugly", "", actor(officer))
    assert refused.value.errors == {"reason_code": "Choose a reason from the list."}
    with pytest.raises(FormErrors) as refused:
        await review.request_reupload(officer, doc, "other", "  ", actor(officer))
    assert set(refused.value.errors) == {"note"}
    with pytest.raises(FormErrors):
        await review.reject(officer, doc, "blurred", "x" * 1001, actor(officer))
    assert await status_of(doc) == "in_review"
    assert all(set(r.messages) == set(reasons.LANGUAGES) for r in reasons.REASONS)


# --- live ---------------------------------------------------------------------------------------


async def test_reviewers_queues_are_told_to_refresh_and_nobody_else(app, personas, cast):
    both = principal(await make_staff("both", ["admin", "compliance"]))
    for role in ("compliance", "admin"):
        event = Event(topic=f"staff:role:{role}", type="kyc.queue_changed", ids={"document_id": 1})
        html = "".join(await render_for(cast[role], event))
        assert 'id="kyc-queue-live"' in html and 'hx-get="/staff/kyc"' in html and 'hx-trigger="load"' in html
        assert 'hx-include="#kyc-filters"' in html
        for other in ("sales", "finance", "dealing", "client_a"):
            assert await render_for(cast[other], event) == [], other
    # Someone with both roles hears both topics but refreshes once.
    heard = [
        await render_for(both, Event(topic=f"staff:role:{r}", type="kyc.queue_changed", ids={}))
        for r in ("compliance", "admin")
    ]
    assert [len(h) for h in heard] == [1, 0]


async def test_the_client_page_panel_is_rendered_live_only_for_staff_who_see_the_client(app, personas, cast):
    a, b = personas["client_a"].id, personas["client_b"].id
    await approved_identity(b)
    await submit(a, "passport")
    for who, client_id, shown in (("sales", a, True), ("sales", b, False), ("compliance", b, True)):
        event = Event(topic=f"staff:client:{client_id}", type="client_page.kyc", ids={"client_id": client_id})
        html = "".join(await render_for(cast[who], event))
        assert ('id="kyc-panel" hx-swap-oob="innerHTML"' in html) is shown, (who, client_id)
        if shown:
            assert 'id="timeline-panel" hx-swap-oob="innerHTML"' in html
            assert ("/staff/kyc/documents/" in html) is (who == "compliance")  # review links: reviewers only
    forged = Event(topic=f"staff:client:{a}", type="client_page.kyc", ids={"client_id": b})
    assert await render_for(cast["sales"], forged) == []
    assert (
        await render_for(cast["client_a"], Event(f"staff:client:{a}", "client_page.kyc", {"client_id": a}))
        == []
    )


# --- HTTP ---------------------------------------------------------------------------------------


async def uploaded_passport(personas) -> tuple[int, int]:
    client = principal(personas["client_a"])
    doc = (await documents.upload_side(client, "passport", "single", jpeg(), actor(client)))["document_id"]
    file_id = (await DocumentFile.select(DocumentFile.id).where(DocumentFile.document == doc).first())["id"]
    return doc, file_id


async def test_the_queue_page_and_its_rows_fragment(client, personas):
    doc, _ = await uploaded_passport(personas)
    await sign_in(client, personas["compliance"])
    page = await client.get("/staff/kyc?country=de")
    assert page.status_code == 200
    assert 'id="kyc-filters"' in page.text and 'id="kyc-queue-live"' in page.text
    assert f'id="kyc-doc-{doc}"' in page.text and "Claim and review" in page.text
    assert "arrives later" not in page.text and "not in this release" not in page.text
    rows = await client.get("/staff/kyc?country=de&category=identity", headers={"HX-Request": "true"})
    assert rows.status_code == 200 and "<html" not in rows.text and "kyc-filters" not in rows.text
    assert f'id="kyc-doc-{doc}"' in rows.text
    none = await client.get("/staff/kyc?country=FR", headers={"HX-Request": "true"})
    assert f'id="kyc-doc-{doc}"' not in none.text and "with these filters" in none.text
    bad = await client.get("/staff/kyc?level=abc")
    assert bad.status_code == 200 and "is not a level" in bad.text


async def test_the_review_page_shows_the_document_beside_the_declared_data(client, personas, cast):
    doc, file_id = await uploaded_passport(personas)
    await db.fetch(
        "UPDATE kyc_profiles SET date_of_birth = {}, nationality = 'AT', address = 'Ring 1, Wien' WHERE client = {}",
        date(1990, 5, 17),
        personas["client_a"].id,
    )
    await sign_in(client, personas["compliance"])
    page = await client.get(f"/staff/kyc/documents/{doc}")
    assert page.status_code == 200
    text = page.text
    assert (
        f'src="/staff/kyc/files/{file_id}"' in text and "data-doc-rotate" in text and "data-doc-zoom" in text
    )
    assert "1990-05-17" in text and "Austria" in text and "Ring 1, Wien" in text
    assert "Sanctions: not screened yet" in text and "Claim and review" in text
    assert personas["client_a"].email in text
    fragment = await client.get(f"/staff/kyc/documents/{doc}", headers={"HX-Request": "true"})
    assert (
        fragment.status_code == 200 and "<html" not in fragment.text and 'id="kyc-decision"' in fragment.text
    )
    assert (await client.get("/staff/kyc/documents/999999")).status_code == 404
    await sign_in(client, personas["sales"])
    assert (await client.get(f"/staff/kyc/documents/{doc}")).status_code == 403


@pytest.mark.parametrize("htmx", [False, True])
async def test_claiming_and_approving_over_http(client, personas, htmx):
    doc, _ = await uploaded_passport(personas)
    await sign_in(client, personas["compliance"])
    page = f"/staff/kyc/documents/{doc}"
    r = await post_form(client, f"{page}/claim", {}, page=page, htmx=htmx)
    if htmx:
        assert r.status_code == 200 and r.headers["HX-Redirect"] == page
    else:
        assert r.status_code == 303 and r.headers["location"] == page
    review_page = (await client.get(page)).text
    assert 'id="approve-form"' in review_page and 'id="decline-form"' in review_page
    bad = await post_form(
        client, f"{page}/approve", {"doc_number": "P-778899", "issuing_country": "", "expires_on": "2001-01-01"},
        page=page, htmx=htmx,
    )  # fmt: skip
    assert bad.status_code == 422
    assert "Choose the country that issued the document." in bad.text and "must be in the future" in bad.text
    assert 'value="P-778899"' in bad.text  # what was typed is kept
    assert ("<html" in bad.text) is not htmx
    assert await status_of(doc) == "in_review"
    expiry = (date.today() + timedelta(days=2000)).isoformat()
    ok = await post_form(
        client, f"{page}/approve", {"doc_number": "P-778899", "issuing_country": "AT", "expires_on": expiry},
        page=page, htmx=htmx,
    )  # fmt: skip
    assert ok.status_code == (200 if htmx else 303)
    assert await status_of(doc) == "approved"
    done = (await client.get(page)).text
    assert "P-778899" in done and expiry in done and 'id="approve-form"' not in done


@pytest.mark.parametrize("htmx", [False, True])
async def test_rejecting_and_asking_for_a_new_upload_over_http(client, personas, htmx):
    doc, _ = await uploaded_passport(personas)
    await sign_in(client, personas["compliance"])
    page = f"/staff/kyc/documents/{doc}"
    await post_form(client, f"{page}/claim", {}, page=page)
    bad = await post_form(
        client, f"{page}/reject", {"reason_code": "other", "note": ""}, page=page, htmx=htmx
    )
    assert bad.status_code == 422 and "says nothing on its own" in bad.text
    assert re.search(r'<option value="other" selected>', bad.text)
    r = await post_form(
        client, f"{page}/reupload", {"reason_code": "blurred", "note": "Use daylight"}, page=page, htmx=htmx
    )
    assert r.status_code == (200 if htmx else 303)
    assert await status_of(doc) == "reupload_requested"
    shown = (await client.get(page)).text
    assert "re-upload requested" in shown and "Use daylight" in shown
    again = await post_form(client, f"{page}/reject", {"reason_code": "blurred"}, page=page, htmx=htmx)
    assert again.status_code == 422 and "already been decided" in again.text


async def test_a_refused_claim_shows_who_holds_it_and_release_gives_it_back(client, personas, cast):
    doc, _ = await uploaded_passport(personas)
    await review.claim(cast["admin"], doc, actor(cast["admin"]))
    await sign_in(client, personas["compliance"])
    page = f"/staff/kyc/documents/{doc}"
    assert "Claimed by <strong>Admin</strong>" in (await client.get(page)).text
    r = await post_form(client, f"{page}/claim", {}, page=page, htmx=True)
    assert r.status_code == 422 and "Admin claimed this document" in r.text
    for htmx in (False, True):
        refused = await post_form(client, f"{page}/release", {}, page=page, htmx=htmx)
        assert refused.status_code == 422 and "You do not hold the claim" in refused.text
        assert ("<html" in refused.text) is not htmx
    await sign_in(client, personas["admin"])
    released = await post_form(client, f"{page}/release", {}, page=page, htmx=True)
    assert released.status_code == 200 and released.headers["HX-Redirect"] == "/staff/kyc"
    assert await status_of(doc) == "pending"
    await post_form(client, f"{page}/claim", {}, page=page)
    released = await post_form(client, f"{page}/release", {}, page=page)
    assert released.status_code == 303 and released.headers["location"] == "/staff/kyc"


async def test_other_desks_cannot_review_and_nothing_changes(client, personas):
    doc, _ = await uploaded_passport(personas)
    for who in ("sales", "finance", "dealing"):
        await sign_in(client, personas[who])
        for action, data in (
            ("claim", {}),
            ("approve", {"doc_number": "X1"}),
            ("reject", {"reason_code": "blurred"}),
        ):
            r = await post_form(client, f"/staff/kyc/documents/{doc}/{action}", data, page="/staff/clients")
            assert r.status_code == 403, (who, action)
    assert await status_of(doc) == "pending" and await audits("kyc.document_claimed") == []


async def test_the_client_page_has_a_kyc_panel_for_whoever_sees_the_client(client, personas, cast):
    a, b = personas["client_a"].id, personas["client_b"].id
    doc = await submit(a, "passport")
    await sign_in(client, personas["sales"])
    detail = (await client.get(f"/staff/clients/{a}")).text
    assert f'hx-get="/staff/clients/{a}/kyc"' in detail
    fragment = await client.get(f"/staff/clients/{a}/kyc", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'id="kyc-level">0<' in fragment.text and "Passport" in fragment.text
    assert "/staff/kyc/documents/" not in fragment.text  # sales may not open the review page
    page = await client.get(f"/staff/clients/{a}/kyc")
    assert page.status_code == 200 and "<html" in page.text and 'id="kyc-panel"' in page.text
    assert (await client.get(f"/staff/clients/{b}/kyc")).status_code == 404  # not on sales's desk
    await sign_in(client, personas["compliance"])
    panel = (await client.get(f"/staff/clients/{a}/kyc", headers={"HX-Request": "true"})).text
    assert f'href="/staff/kyc/documents/{doc}"' in panel
