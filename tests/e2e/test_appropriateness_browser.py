"""The appropriateness questionnaire on a phone, in a real browser against the real server: a client
whose documents are approved follows the banner to the questionnaire, answers every question with
a tap, and gets their maximum leverage and level 2."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

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


def approve_documents(live_server, client_id: int) -> None:
    """An approved passport and utility bill, and the level they earn (1: the questionnaire is missing)."""
    with db(live_server) as conn:
        for code, expires in (("passport", "(now() + interval '900 days')"), ("utility_bill", "NULL")):
            conn.execute(
                "INSERT INTO kyc_documents (client, doc_type, category, status, created_at, submitted_at, reviewed_at, "
                f"expires_on) SELECT %s, id, category, 'approved', now(), now(), now(), {expires}::date "
                "FROM kyc_document_types WHERE code = %s",
                (client_id, code),
            )
        conn.execute(
            "INSERT INTO kyc_profiles (client, entity_type, level, nationality, address, source_of_funds, updated_at) "
            "VALUES (%s, 'individual', 1, '', '', '', now())",
            (client_id,),
        )


def test_a_client_completes_the_questionnaire_on_a_phone_and_gets_their_leverage(browser, live_server):
    email = unique_email("approp")
    client_id = insert_client(live_server, email, first_name="Lea")
    approve_documents(live_server, client_id)
    context = browser.new_context(base_url=live_server.url, viewport=MOBILE, is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        sign_in(page, "/portal", email)
        expect(page).to_have_url(re.compile(r"/portal$"))
        page.locator("nav.tabbar a[href='/portal/documents']").tap()
        banner = page.locator("#kyc-banner")
        expect(banner).to_contain_text("Next: complete the appropriateness questionnaire to withdraw")
        banner.locator("a[href='/portal/appropriateness']").tap()
        expect(page).to_have_url(re.compile(r"/portal/appropriateness$"))
        questions = page.locator("fieldset.question[id^='question-']:not(#question-funds)")
        expect(questions).to_have_count(8)
        assert has_no_horizontal_scroll(page, MOBILE["width"])
        with db(live_server) as conn:
            points = dict(conn.execute("SELECT id, points FROM kyc_appropriateness_options").fetchall())
        for i in range(8):  # each question's answer worth the most points, tapped as a thumb would
            options = questions.nth(i).locator("label.choice")
            values = [int(v) for v in options.locator("input").evaluate_all("els => els.map(e => e.value)")]
            best = options.nth(max(range(len(values)), key=lambda n, v=values: points[v[n]]))
            best.tap()
            expect(best.locator("input")).to_be_checked()
        page.select_option("#f-source_of_funds", "salary")
        screenshot(page, "appropriateness-form-mobile")
        page.get_by_role("button", name="See my result").tap()
        result = page.locator("#appropriateness-result")
        expect(result).to_contain_text("100 / 100")
        expect(result).to_contain_text("up to 1:30")
        expect(page.locator("#appropriateness")).to_contain_text("You can take the questionnaire again from")
        assert has_no_horizontal_scroll(page, MOBILE["width"])
        screenshot(page, "appropriateness-result-mobile")
        page.get_by_role("link", name="Back to verification").tap()
        expect(page.locator("#kyc-banner")).to_contain_text("Level 2")
        expect(page.locator("#kyc-banner")).to_contain_text("Your account is fully verified.")
        with db(live_server) as conn:
            row = conn.execute(
                "SELECT level, appropriateness_score, max_leverage, source_of_funds FROM kyc_profiles WHERE client = %s",
                (client_id,),
            ).fetchone()
        assert row == (2, 100, 30, "salary")
    finally:
        context.close()
