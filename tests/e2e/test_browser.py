"""The foundation in a real browser: headless Chromium against `fxcrm web` + `fxcrm worker`.

Each test is a person doing something through the pages, with e-mail over real SMTP and the
live channel over a real WebSocket. Plain `def` tests: see conftest.py for why.
"""

from __future__ import annotations

import re
import uuid

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import (
    DESKTOP,
    MOBILE,
    PASSWORD,
    create_staff_with_cli,
    db,
    has_no_horizontal_scroll,
    insert_client,
    insert_staff,
    next_code,
    pass_second_factor,
    screenshot,
    sign_in,
    unique_email,
)
from tests.servers import body_of

pytestmark = pytest.mark.browser

CONSOLE_SECTIONS = [
    "Clients",
    "KYC",
    "Accounts",
    "Funding",
    "Partners",
    "Marketing",
    "Reports",
    "Audit",
    "Settings",
]


def test_a_client_registers_on_a_phone_confirms_the_email_and_signs_in_again(new_context, live_server):
    page = new_context(viewport=MOBILE).new_page()
    email = unique_email("mobile")

    page.goto("/portal/register")
    assert has_no_horizontal_scroll(page, MOBILE["width"]), "the registration form scrolls sideways at 390 px"
    screenshot(page, "portal-register-mobile")
    page.fill("#f-first_name", "Mira")
    page.fill("#f-last_name", "Novak")
    page.fill("#f-email", email)
    page.fill("#f-country", "de")
    page.fill("#f-password", PASSWORD)
    page.check("input[name=accept_terms]")
    page.click("button[type=submit]")

    expect(page).to_have_url(re.compile(r"/portal\?welcome=1$"))
    expect(page.locator("h1")).to_have_text("Hello, Mira")
    expect(page.locator("#verify-banner")).to_contain_text("confirm your e-mail address")
    expect(page.locator(".live-dot")).to_have_class(re.compile(r"\bon\b"))
    assert has_no_horizontal_scroll(page, MOBILE["width"]), "the dashboard scrolls sideways at 390 px"
    screenshot(page, "portal-dashboard-mobile")
    page.set_viewport_size({"width": 360, "height": 740})  # the narrowest phone the issue names
    assert has_no_horizontal_scroll(page, 360), "the dashboard scrolls sideways at 360 px"

    [message] = live_server.mailbox.wait_for(email)
    assert message["Subject"] == "Confirm your e-mail address"
    link = re.search(r"https?://\S+/portal/verify/\S+", body_of(message))
    assert link, body_of(message)
    assert link.group(0).startswith(live_server.url)

    page.goto(link.group(0))
    expect(page.locator("h1")).to_have_text("E-mail confirmed")
    page.click("text=Go to my account")
    expect(page).to_have_url(re.compile(r"/portal$"))
    expect(page.locator("#verify-banner")).to_be_empty()

    page.click("text=Sign out")
    expect(page).to_have_url(re.compile(r"/portal/login$"))
    page.goto("/portal")
    expect(page).to_have_url(re.compile(r"/portal/login\?next="))  # the session really ended

    page.fill("#f-email", email)
    page.fill("#f-password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/portal$"))
    expect(page.locator("h1")).to_have_text("Hello, Mira")
    expect(page.locator("#verify-banner")).to_be_empty()
    with db(live_server) as conn:
        stage, verified = conn.execute(
            "SELECT stage, email_verified_at IS NOT NULL FROM clients WHERE email = %s", (email,)
        ).fetchone()
    assert (stage, verified) == ("registered", True)


def test_a_weak_password_is_refused_beside_its_field_and_the_names_are_kept(page: Page, live_server):
    email = unique_email("weak")
    page.goto("/portal/register")
    page.fill("#f-first_name", "Jonas")
    page.fill("#f-last_name", "Weber")
    page.fill("#f-email", email)
    page.fill("#f-password", "short")
    page.check("input[name=accept_terms]")
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/portal/register")
    ) as posted:
        page.click("button[type=submit]")
    assert posted.value.status == 422

    password_field = page.locator(".field.has-error", has=page.locator("#f-password"))
    expect(password_field.locator(".error")).to_have_text("Use at least 10 characters.")
    expect(page.locator("#f-password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-password")).to_have_value("")  # a password is never sent back
    expect(page.locator("#f-first_name")).to_have_value("Jonas")
    expect(page.locator("#f-last_name")).to_have_value("Weber")
    expect(page.locator("#f-email")).to_have_value(email)
    expect(page.locator("input[name=accept_terms]")).to_be_checked()
    expect(page.locator(".field.has-error")).to_have_count(1)  # only the password was wrong

    page.fill("#f-password", "password123")
    page.click("button[type=submit]")
    expect(password_field.locator(".error")).to_contain_text("too easy to guess")
    expect(page.locator("#f-first_name")).to_have_value("Jonas")
    with db(live_server) as conn:
        assert conn.execute("SELECT count(*) FROM clients WHERE email = %s", (email,)).fetchone()[0] == 0


def test_a_new_staff_member_enrols_totp_and_then_needs_a_fresh_code_at_each_sign_in(page: Page, live_server):
    email = unique_email("staff")
    create_staff_with_cli(live_server, email)

    sign_in(page, "/staff", email)
    expect(page).to_have_url(re.compile(r"/staff/2fa/setup$"))
    expect(page.locator(".qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    screenshot(page, "staff-2fa-enrolment")
    page.fill("#f-code", pyotp.TOTP(secret).now())
    page.click("button[type=submit]")
    codes = page.locator("#recovery-codes code")
    expect(codes).to_have_count(10)
    assert all(re.fullmatch(r"[0-9a-f]{6}-[0-9a-f]{6}", c) for c in codes.all_inner_texts())

    page.click("text=I have saved them")
    expect(page).to_have_url(re.compile(r"/staff$"))
    sidebar = page.locator(".sidenav a")
    for label in CONSOLE_SECTIONS:
        expect(sidebar.filter(has_text=re.compile(rf"^{label}$"))).to_have_count(1)
    expect(page.locator(".live-dot")).to_have_class(re.compile(r"\bon\b"))
    screenshot(page, "staff-console")

    page.click("summary")  # the user menu
    page.click("text=Sign out")
    expect(page).to_have_url(re.compile(r"/staff/login$"))

    sign_in(page, "/staff", email)
    expect(page).to_have_url(re.compile(r"/staff/2fa\?next="))
    page.goto("/staff/clients")  # the console stays shut until the second factor is given
    expect(page).to_have_url(re.compile(r"/staff/2fa\?next="))
    page.fill("#f-code", "000000")  # a wrong code is refused on the page
    page.click("button[type=submit]")
    expect(page.locator("#e-code")).to_be_visible()
    page.fill("#f-code", next_code(secret))
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/staff/clients$"))
    expect(page.locator(".sidenav a.active")).to_have_text("Clients")


def test_a_partner_reaches_the_ib_portal_and_a_plain_client_is_turned_away(new_context, live_server):
    code = f"IB{uuid.uuid4().hex[:6].upper()}"
    partner_email = unique_email("ib")
    insert_client(live_server, partner_email, first_name="Ivo", partner_code=code)
    plain_email = unique_email("plain")
    insert_client(live_server, plain_email)

    page = new_context().new_page()
    sign_in(page, "/ib", partner_email)
    expect(page).to_have_url(re.compile(r"/ib$"))
    expect(page.locator(".stat-value").first).to_have_text(code)
    expect(page.locator("#ref-link")).to_have_value(f"{live_server.url}/r/{code}")
    screenshot(page, "ib-overview")

    other = new_context().new_page()
    sign_in(other, "/ib", plain_email)
    expect(other.locator("body")).to_contain_text("no partner (IB) status")
    with other.expect_response(lambda r: r.url.endswith("/ib")) as refused:
        other.reload()
    assert refused.value.status == 403
    other.goto("/portal")  # the same login still opens their client portal
    expect(other.locator("h1")).to_have_text("Hello, Bianca")
    screenshot(other, "portal-dashboard-desktop")


def test_a_message_from_staff_appears_in_the_clients_open_page_without_a_reload(new_context, live_server):
    client_email = unique_email("live")
    client_id = insert_client(live_server, client_email, first_name="Lena")
    staff_email = unique_email("admin")
    secret = insert_staff(live_server, staff_email)

    client_page = new_context(viewport=MOBILE).new_page()
    sign_in(client_page, "/portal", client_email)
    expect(client_page).to_have_url(re.compile(r"/portal$"))
    expect(client_page.locator(".live-dot")).to_have_class(re.compile(r"\bon\b"))
    expect(client_page.locator("#unread-counter")).to_have_text("")
    expect(client_page.locator("#tile-unread")).to_have_text("0")
    client_page.evaluate("window.__marker = 1")
    url_before = client_page.url

    staff_page = new_context(viewport=DESKTOP).new_page()
    sign_in(staff_page, "/staff", staff_email)
    pass_second_factor(staff_page, secret)
    staff_page.goto(f"/staff/clients/{client_id}")
    staff_page.fill("#f-subject", "Your account review")
    staff_page.fill("#f-body", "Hello Lena, your account has been reviewed.")
    staff_page.click("text=Send to client")
    expect(staff_page.locator("#message-panel")).to_contain_text("Message sent.")

    expect(client_page.locator("#unread-counter")).to_have_text("1", timeout=5_000)
    expect(client_page.locator("#tile-unread")).to_have_text("1")  # the dashboard tile agrees with the bell
    screenshot(staff_page, "staff-client-detail")
    screenshot(client_page, "portal-live-counter-mobile")
    assert client_page.url == url_before
    assert client_page.evaluate("window.__marker") == 1, "the page was reloaded"
    expect(client_page.locator(".live-dot")).to_have_class(re.compile(r"\bon\b"))
