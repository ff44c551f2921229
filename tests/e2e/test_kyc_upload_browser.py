"""Uploading an ID card from a phone, in a real browser against the real server: the front goes up
with a progress bar, the first try of the back dies on the network and "Retry" sends the same photo
again without touching the front, and compliance's approval shows on the open page without a reload."""

from __future__ import annotations

import io
import json
import re

import pytest
from PIL import Image
from playwright.sync_api import Route, expect

from tests.e2e.conftest import (
    MOBILE,
    db,
    has_no_horizontal_scroll,
    insert_client,
    screenshot,
    sign_in,
    unique_email,
)

pytestmark = pytest.mark.browser


def photo(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1200, 760), colour).save(out, "JPEG", quality=95)
    return out.getvalue()


def test_a_client_uploads_an_id_card_from_a_phone_retries_the_back_and_sees_the_approval_live(
    browser, live_server
):
    email = unique_email("kyc")
    client_id = insert_client(live_server, email, first_name="Ines")
    context = browser.new_context(base_url=live_server.url, viewport=MOBILE, is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        sign_in(page, "/portal", email)
        expect(page).to_have_url(re.compile(r"/portal$"))
        dashboard_banner = page.locator("#kyc-banner")
        expect(dashboard_banner).to_contain_text("Next: upload an identity document")
        page.locator("nav.tabbar a[href='/portal/documents']").tap()
        expect(page).to_have_url(re.compile(r"/portal/documents$"))
        expect(page.locator(".live-dot")).to_have_class(re.compile(r"\bon\b"))
        page.evaluate(
            "window.__progress = []; window.__live = 0;"
            "document.addEventListener('htmx:xhr:progress', function (e) {"
            "  window.__progress.push(e.detail.elt.querySelector('progress').value); });"
            # Each live update of the identity card, and whether it was let through (body attribute).
            "document.addEventListener('htmx:oobBeforeSwap', function (e) {"
            "  if (e.detail.target.id !== 'card-identity') return;"
            "  document.body.setAttribute('data-test-live', ++window.__live + ':' + e.detail.shouldSwap); });"
            # ... and each new card once htmx has wired it up (a file chosen earlier would go unheard).
            "document.addEventListener('htmx:load', function (e) {"
            "  if (e.target.id === 'card-identity') e.target.setAttribute('data-test-ready', ''); })"
        )

        card = page.locator("#card-identity")
        expect(card.locator(".doc-status")).to_have_text("Missing")
        card.locator("label[for=type-id_card]").tap()
        front, back = page.locator("#side-id_card-front"), page.locator("#side-id_card-back")
        expect(front).to_be_visible()
        expect(front.locator("input[capture=environment]")).to_have_attribute("accept", "image/*")
        front.locator("input[type=file]:not([capture])").set_input_files(
            files=[{"name": "front.jpg", "mimeType": "image/jpeg", "buffer": photo((200, 170, 140))}]
        )
        expect(card.locator(".doc-status")).to_have_text("Uploaded — waiting for the other side")
        expect(front.locator("img")).to_be_visible()
        assert max(page.evaluate("window.__progress")) == 100
        # The page also hears of its own upload live; let that land before choosing the back.
        body = page.locator("body")
        expect(body).to_have_attribute("data-test-live", re.compile(r"^1:"))  # held while sending, or swapped
        expect(page.locator("#card-identity[data-test-ready]")).to_have_count(1)

        attempts: list[bytes] = []

        def flaky(route: Route) -> None:
            attempts.append(route.request.post_data_buffer or b"")
            if len(attempts) == 1:
                route.abort("internetdisconnected")
            else:
                route.continue_()

        page.route("**/portal/documents/upload", flaky)
        back_photo = photo((30, 60, 90))
        back.locator("input[capture=environment]").set_input_files(
            files=[{"name": "back.jpg", "mimeType": "image/jpeg", "buffer": back_photo}]
        )
        expect(back.locator(".upload-failed")).to_be_visible()
        expect(back.locator(".upload-failed")).to_contain_text("Upload failed — check your connection.")
        expect(front.locator("img")).to_be_visible()  # the front is untouched
        expect(card.locator(".doc-status")).to_have_text("Uploaded — waiting for the other side")
        screenshot(page, "kyc-upload-retry-mobile")

        # A live update meanwhile (the front, sent again from another device) leaves this card
        # alone: the chosen back photo and its Retry must survive it.
        with db(live_server) as conn:
            draft = conn.execute("SELECT id FROM kyc_documents WHERE client = %s", (client_id,)).fetchone()[0]
            changed = {
                "topic": f"client:{client_id}",
                "type": "kyc.document_changed",
                "ids": {"document_id": draft},
            }
            conn.execute("SELECT pg_notify('fxcrm_live', %s)", (json.dumps(changed),))
        expect(body).to_have_attribute("data-test-live", "2:false")  # the guard held
        expect(back.locator(".upload-failed")).to_be_visible()

        back.locator("button.retry").tap()
        expect(card.locator(".doc-status")).to_have_text("In review")
        assert len(attempts) == 2 and back_photo in attempts[1]  # the same photo, sent again
        expect(page.locator("#kyc-banner")).to_contain_text("we are reviewing your identity document")
        with db(live_server) as conn:
            rows = conn.execute(
                "SELECT d.id, d.status, count(f.id) FROM kyc_documents d JOIN kyc_document_files f "
                "ON f.document = d.id WHERE d.client = %s GROUP BY d.id",
                (client_id,),
            ).fetchall()
        assert [(r[1], r[2]) for r in rows] == [("pending", 2)]
        document_id = rows[0][0]

        page.evaluate("window.__marker = 1")
        event = {
            "topic": f"client:{client_id}",
            "type": "kyc.document_reviewed",
            "ids": {"document_id": document_id},
        }
        with db(live_server) as conn:  # compliance approves (the review screen does this and publishes)
            conn.execute(
                "UPDATE kyc_documents SET status = 'approved', reviewed_at = now(), "
                "expires_on = current_date + 900 WHERE id = %s",
                (document_id,),
            )
            conn.execute("SELECT pg_notify('fxcrm_live', %s)", (json.dumps(event),))
        expect(card.locator(".doc-status")).to_have_text("Approved")
        expect(card).to_contain_text("is approved; it is valid until")
        assert page.evaluate("window.__marker") == 1, "the page was reloaded"
        assert has_no_horizontal_scroll(page, MOBILE["width"])
        screenshot(page, "kyc-documents-approved-mobile")
    finally:
        context.close()
