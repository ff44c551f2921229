"""The compliance queue in a real browser: two officers have it open; when one claims a document,
the other's queue shows it claimed, and when it is decided it leaves their queue, without a reload."""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from PIL import Image
from playwright.sync_api import expect

from app.kyc.storage import DocumentStore, derive_key
from tests.conftest import SECRET, TEST_VAR
from tests.e2e.conftest import (
    DESKTOP,
    db,
    insert_client,
    insert_staff,
    pass_second_factor,
    screenshot,
    sign_in,
    unique_email,
)

pytestmark = pytest.mark.browser


def insert_pending_passport(live_server, client_id: int) -> int:
    """A passport with every side in, waiting in the review queue since an hour ago."""
    with db(live_server) as conn:
        return conn.execute(
            "INSERT INTO kyc_documents (client, doc_type, category, status, created_at, submitted_at, reason_code,"
            " client_message, doc_number, issuing_country) SELECT %s, id, category, 'pending',"
            " now() - interval '1 hour', now() - interval '1 hour', '', '', '', '' FROM kyc_document_types"
            " WHERE code = 'passport' RETURNING id",
            (client_id,),
        ).fetchone()[0]  # type: ignore[index]


def attach_photo(live_server, doc_id: int) -> int:
    """A JPEG stored for the document as an upload would store it (encrypted with the server's key)."""
    out = io.BytesIO()
    Image.new("RGB", (600, 380), (90, 120, 170)).save(out, "JPEG")
    content = out.getvalue()
    name = DocumentStore(TEST_VAR / "documents", derive_key(SECRET)).write(content)
    digest = hashlib.sha256(content).hexdigest()
    with db(live_server) as conn:
        return conn.execute(
            "INSERT INTO kyc_document_files (document, side, storage_name, mime, size, received_sha256,"
            " stored_sha256, uploaded_at) VALUES (%s, 'single', %s, 'image/jpeg', %s, %s, %s, now()) RETURNING id",
            (doc_id, name, len(content), digest, digest),
        ).fetchone()[0]  # type: ignore[index]


def test_a_claim_and_a_decision_show_in_a_colleagues_open_queue_without_a_reload(new_context, live_server):
    client_id = insert_client(live_server, unique_email("kira"), first_name="Kira")
    doc_id = insert_pending_passport(live_server, client_id)
    file_id = attach_photo(live_server, doc_id)
    officers = []
    for name in ("first", "second"):
        email = unique_email(f"officer-{name}")
        secret = insert_staff(live_server, email, roles=("compliance",))
        page = new_context(viewport=DESKTOP).new_page()
        sign_in(page, "/staff", email)
        pass_second_factor(page, secret)
        page.goto("/staff/kyc")
        expect(page.locator(".live-dot")).to_have_class(re.compile(r"\bon\b"))
        expect(page.locator(f"#kyc-doc-{doc_id}")).to_have_attribute("data-claim", "unclaimed")
        officers.append(page)
    claimer, watcher = officers
    watcher.evaluate("window.__marker = 1")
    url_before = watcher.url

    claimer.locator(f"#kyc-doc-{doc_id} button[type=submit]").click()
    expect(claimer).to_have_url(re.compile(rf"/staff/kyc/documents/{doc_id}$"))
    expect(claimer.locator("#approve-form")).to_be_visible()
    photo = claimer.locator(f'img[src="/staff/kyc/files/{file_id}"]')
    expect(photo).to_be_visible()
    assert claimer.evaluate("(img) => img.naturalWidth", photo.element_handle()) == 600  # really served
    claimer.click("[data-doc-rotate='90']")
    claimer.click("[data-doc-zoom='in']")
    expect(photo).to_have_css("transform", re.compile(r"matrix\("))
    assert photo.evaluate("img => img.style.width") == "125%"
    screenshot(claimer, "kyc-review")

    row = watcher.locator(f"#kyc-doc-{doc_id}")
    expect(row).to_have_attribute("data-claim", "taken", timeout=5_000)
    expect(row).to_contain_text("claimed by")
    expect(row.locator("button")).to_have_count(0)  # nothing to claim any more
    screenshot(watcher, "kyc-queue-claimed")

    claimer.select_option("#f-reason_code", "blurred")
    claimer.fill("#f-note", "Please retake it in daylight")
    claimer.locator("#decline-form button", has_text="Reject").click()
    expect(claimer.locator("#kyc-decision")).to_contain_text("rejected")
    expect(claimer.locator("#kyc-decision")).to_contain_text("Please retake it in daylight")

    expect(watcher.locator(f"#kyc-doc-{doc_id}")).to_have_count(0, timeout=5_000)
    assert watcher.url == url_before
    assert watcher.evaluate("window.__marker") == 1, "the queue page was reloaded"
