"""Client registration: bad input, duplicates, completing a lead, and e-mail verification."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

from app.clients.tables import Client
from app.core import db
from app.core.auth import sessions, throttle
from tests.conftest import post_form
from tests.core.test_auth_login import adopt, audit_rows, count, new_session_key

GOOD = {
    "first_name": "Maria",
    "last_name": "Lopez",
    "email": "maria.lopez@example.com",
    "country": "es",
    "password": "sunny-harbour-2026",
    "accept_terms": "on",
}


def field_error(page: str, name: str) -> str | None:
    m = re.search(rf'<div class="error" id="e-{name}">([^<]*)</div>', page)
    return html.unescape(m.group(1)) if m else None


async def nothing_created(clients_before: int) -> None:
    assert await count("clients") == clients_before
    assert await count("outbound_emails") == 0
    assert await count("web_sessions") == 0
    assert not await audit_rows("client.registered")


async def verify_link(email: str) -> str:
    [row] = await db.fetch(
        "SELECT body_text, subject FROM outbound_emails WHERE to_addr = {} AND template = 'verify_email'",
        email,
    )
    assert row["subject"] == "Confirm your e-mail address"
    m = re.search(r"http://testserver\.local(/portal/verify/[A-Za-z0-9_-]+)", row["body_text"])
    assert m, row["body_text"]
    return m.group(1)


async def test_a_visitor_registers_and_is_signed_in(client, database):
    r = await post_form(client, "/portal/register", GOOD)
    assert r.status_code == 303 and r.headers["location"] == "/portal?welcome=1"
    [row] = await db.fetch("SELECT * FROM clients WHERE email = 'maria.lopez@example.com'")
    assert row["stage"] == "registered" and row["country"] == "ES" and row["email_verified_at"] is None
    assert row["first_name"] == "Maria" and row["password_hash"].startswith("$argon2id$")
    adopt(client, new_session_key(r))
    assert (await client.get("/portal?welcome=1")).status_code == 200
    [audit] = await audit_rows("client.registered")
    assert audit["subject_id"] == str(row["id"]) and audit["before"] is None


async def test_registration_queues_a_verification_email_and_the_link_verifies_once(client, database):
    await post_form(client, "/portal/register", GOOD)
    link = await verify_link(GOOD["email"])
    client.cookies.clear()
    r = await client.get(link)
    assert r.status_code == 200 and "your e-mail address is verified" in r.text
    [row] = await db.fetch("SELECT id, email_verified_at FROM clients WHERE email = {}", GOOD["email"])
    assert row["email_verified_at"] is not None
    [audit] = await audit_rows("client.email_verified")
    assert audit["subject_id"] == str(row["id"])

    r = await client.get(link)
    assert r.status_code == 400
    assert "This verification link has expired or was already used." in r.text
    again = (await db.fetch("SELECT email_verified_at FROM clients WHERE id = {}", row["id"]))[0][
        "email_verified_at"
    ]
    assert again == row["email_verified_at"]
    assert len(await audit_rows("client.email_verified")) == 1


async def test_an_expired_or_made_up_verification_link_is_refused(client, database):
    await post_form(client, "/portal/register", GOOD)
    link = await verify_link(GOOD["email"])
    await db.fetch(
        "UPDATE one_time_tokens SET expires_at = now() - interval '1 second' WHERE purpose = 'verify'"
    )
    for url in (link, "/portal/verify/not-a-real-token"):
        r = await client.get(url)
        assert r.status_code == 400 and "expired or was already used" in r.text
    [row] = await db.fetch("SELECT email_verified_at FROM clients WHERE email = {}", GOOD["email"])
    assert row["email_verified_at"] is None


async def test_a_reset_link_cannot_be_used_to_verify_an_email(client, database):
    await post_form(client, "/portal/register", GOOD)
    client.cookies.clear()
    await post_form(client, "/portal/forgot", {"email": GOOD["email"]})
    [row] = await db.fetch("SELECT body_text FROM outbound_emails WHERE template = 'password_reset'")
    token = re.search(r"/portal/reset/([A-Za-z0-9_-]+)", row["body_text"]).group(1)
    r = await client.get(f"/portal/verify/{token}")
    assert r.status_code == 400
    [row] = await db.fetch("SELECT email_verified_at FROM clients WHERE email = {}", GOOD["email"])
    assert row["email_verified_at"] is None


async def test_an_empty_form_shows_every_error_beside_its_field(client, database):
    r = await post_form(client, "/portal/register", {})
    assert r.status_code == 422
    assert field_error(r.text, "first_name") == "Enter your first name."
    assert field_error(r.text, "last_name") == "Enter your last name."
    assert field_error(r.text, "email") == "Enter a valid e-mail address, like name@example.com."
    assert field_error(r.text, "password") == "Use at least 10 characters."
    assert "Please accept the client agreement to continue." in r.text
    assert field_error(r.text, "country") is None
    await nothing_created(0)


async def test_invalid_fields_keep_what_was_typed_except_the_password(client, personas):
    before = await count("clients")
    typed = {**GOOD, "email": "maria at example", "country": "Spain", "password": "Zq9-typed-secret-value"}
    r = await post_form(client, "/portal/register", typed)
    assert r.status_code == 422
    assert (
        field_error(r.text, "email") and field_error(r.text, "country") == "Choose your country of residence."
    )
    assert field_error(r.text, "first_name") is None and field_error(r.text, "password") is None
    for name in ("first_name", "last_name", "email", "country"):
        assert f'name="{name}" type="' in r.text and f'value="{typed[name]}"' in r.text, name
    assert "Zq9-typed-secret-value" not in r.text
    assert re.search(r'name="accept_terms" checked', r.text)
    await nothing_created(before)


async def test_a_missing_agreement_is_refused(client, database):
    r = await post_form(client, "/portal/register", {k: v for k, v in GOOD.items() if k != "accept_terms"})
    assert r.status_code == 422 and "Please accept the client agreement to continue." in r.text
    assert 'value="maria.lopez@example.com"' in r.text
    await nothing_created(0)


async def test_weak_passwords_are_refused_at_registration(client, database):
    for password, message in (
        ("short", "Use at least 10 characters."),
        ("password123", "This password is too easy to guess; choose a less common one."),
        ("maria.lopez-2026", "Do not use your e-mail address in your password."),
    ):
        r = await post_form(client, "/portal/register", {**GOOD, "password": password})
        assert r.status_code == 422
        assert field_error(r.text, "password") == message
        assert password not in r.text
    await nothing_created(0)


async def test_markup_in_a_name_is_shown_as_text(client, database):
    r = await post_form(
        client, "/portal/register", {**GOOD, "first_name": "<script>alert(1)</script>", "accept_terms": ""}
    )
    assert r.status_code == 422
    assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;" in r.text


async def test_a_duplicate_email_gets_a_clear_message_and_creates_nothing(client, personas):
    before = await count("clients")
    r = await post_form(client, "/portal/register", {**GOOD, "email": "  Client.A@Client.test "})
    assert r.status_code == 422
    assert (
        field_error(r.text, "email")
        == "An account with this e-mail already exists. Sign in, or reset your password."
    )
    await nothing_created(before)
    [row] = await db.fetch("SELECT first_name, stage FROM clients WHERE email = 'client.a@client.test'")
    assert row == {"first_name": "Client", "stage": "registered"}


async def test_registering_over_a_lead_completes_that_lead(client, database):
    now = datetime.now(UTC)
    lead = Client(
        email="maria.lopez@example.com",
        first_name="M",
        last_name="L",
        stage="lead",
        stage_changed_at=now,
        created_at=now,
    )
    await lead.save()
    r = await post_form(client, "/portal/register", GOOD)
    assert r.status_code == 303
    assert await count("clients") == 1
    [row] = await db.fetch("SELECT * FROM clients")
    assert row["id"] == lead.id
    assert row["stage"] == "registered" and row["first_name"] == "Maria" and row["password_hash"]
    [audit] = await audit_rows("client.registered")
    assert audit["subject_id"] == str(lead.id) and audit["before"] == {"stage": "lead"}
    assert await verify_link(GOOD["email"])
    adopt(client, new_session_key(r))
    assert (await client.get("/portal")).status_code == 200


async def test_a_failed_registration_does_not_sign_anyone_in(client, personas):
    r = await post_form(client, "/portal/register", {**GOOD, "email": "client.a@client.test"})
    assert sessions.COOKIE not in r.cookies
    assert not await audit_rows("auth.login")


async def test_registering_from_a_throttled_address_creates_the_account_and_sends_to_sign_in(
    client, database
):
    for i in range(20):
        await throttle.note("portal", f"guess{i}@example.com", "127.0.0.1", success=False)
    r = await post_form(client, "/portal/register", GOOD)
    assert r.status_code == 303 and r.headers["location"] == "/portal/login"
    assert sessions.COOKIE not in r.cookies
    assert await count("clients") == 1 and await verify_link(GOOD["email"])
