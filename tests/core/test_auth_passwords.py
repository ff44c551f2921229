"""Password hashing, the password policy, changing a password, and reset by e-mailed single-use link."""

from __future__ import annotations

import dataclasses
import re

import argon2
import pytest

from app.core import db, mail
from app.core.auth import passwords, sessions
from app.settings import use_settings
from tests.conftest import CSRF_RE, post_form
from tests.core.test_auth_login import LOGIN_FAILED, adopt, audit_rows, count, new_session_key, session_rows
from tests.personas import PASSWORD, session_for, sign_in
from tests.servers import body_of

NEW_PASSWORD = "a-brand-new-pass-2026"  # noqa: S105
LINK_USED = "This reset link has expired or was already used."
HASH_RE = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$")


def params(stored: str) -> tuple[int, int, int]:
    m = HASH_RE.match(stored)
    assert m, f"not an argon2id hash: {stored[:30]}"
    return int(m[1]), int(m[2]), int(m[3])


def assert_strong_hash(stored: str) -> None:
    m, t, p = params(stored)
    assert m >= 19456 and t >= 2 and p == 1, (m, t, p)


async def client_hash(client_id: int) -> str:
    return (await db.fetch("SELECT password_hash FROM clients WHERE id = {}", client_id))[0]["password_hash"]


async def reset_link_for(client, portal: str, email: str) -> str:
    r = await post_form(client, f"/{portal}/forgot", {"email": email})
    assert r.status_code == 200
    [row] = await db.fetch(
        "SELECT body_text FROM outbound_emails WHERE to_addr = {} AND template = 'password_reset'", email
    )
    m = re.search(rf"http://testserver\.local(/{portal}/reset/[A-Za-z0-9_-]+)", row["body_text"])
    assert m, row["body_text"]
    return m.group(1)


# --- hashing -------------------------------------------------------------------------------------


async def test_passwords_are_stored_as_argon2id_with_at_least_the_required_cost(client, database):
    r = await post_form(
        client,
        "/portal/register",
        {
            "first_name": "Hash",
            "last_name": "Check",
            "email": "hash.check@client.test",
            "country": "DE",
            "password": NEW_PASSWORD,
            "accept_terms": "on",
        },
    )
    assert r.status_code == 303
    [row] = await db.fetch("SELECT password_hash FROM clients WHERE email = 'hash.check@client.test'")
    assert_strong_hash(row["password_hash"])
    assert NEW_PASSWORD not in row["password_hash"]
    assert passwords.verify_password(row["password_hash"], NEW_PASSWORD)
    assert not passwords.verify_password(row["password_hash"], NEW_PASSWORD + "x")


async def test_a_hash_made_with_lower_parameters_is_upgraded_at_login(client, personas):
    weak = argon2.PasswordHasher(memory_cost=8192, time_cost=1).hash(PASSWORD)
    assert params(weak)[:2] == (8192, 1)
    await db.fetch("UPDATE clients SET password_hash = {} WHERE id = {}", weak, personas["client_a"].id)
    r = await post_form(client, "/portal/login", {"email": "client.a@client.test", "password": PASSWORD})
    assert r.status_code == 303
    upgraded = await client_hash(personas["client_a"].id)
    assert upgraded != weak
    assert_strong_hash(upgraded)
    assert passwords.verify_password(upgraded, PASSWORD)


async def test_a_current_hash_is_left_alone_at_login(client, personas):
    before = await client_hash(personas["client_a"].id)
    await post_form(client, "/portal/login", {"email": "client.a@client.test", "password": PASSWORD})
    assert await client_hash(personas["client_a"].id) == before


async def test_a_failed_login_does_not_rehash(client, personas):
    weak = argon2.PasswordHasher(memory_cost=8192, time_cost=1).hash(PASSWORD)
    await db.fetch("UPDATE clients SET password_hash = {} WHERE id = {}", weak, personas["client_a"].id)
    r = await post_form(
        client, "/portal/login", {"email": "client.a@client.test", "password": "wrong-password-77"}
    )
    assert r.status_code == 422
    assert await client_hash(personas["client_a"].id) == weak


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1", "Use at least 10 characters."),
        ("password123", "too easy to guess"),
        ("aaaaaaaaaaaa", "too easy to guess"),
        ("client.a-is-me-2026", "Do not use your e-mail address"),
        ("x" * 300, "Use at most 256 characters."),
    ],
)
def test_the_policy_explains_why_a_password_is_weak(password, message):
    assert message in passwords.password_problem(password, "client.a@client.test")


def test_the_policy_accepts_a_reasonable_password():
    assert passwords.password_problem(NEW_PASSWORD, "client.a@client.test") is None


# --- changing the password -----------------------------------------------------------------------


async def test_changing_the_password_ends_every_other_session_and_keeps_this_browser_signed_in(
    client, personas
):
    me = personas["client_a"]
    other = await session_for(me)
    await sign_in(client, me)
    assert len(await session_rows("client", me.id)) == 2
    r = await post_form(
        client,
        "/portal/settings/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        page="/portal/settings",
    )
    assert r.status_code == 303 and r.headers["location"] == "/portal/settings?changed=1"
    fresh = new_session_key(r)
    [row] = await session_rows("client", me.id)
    assert row["key_hash"] != "" and fresh != other

    adopt(client, other)
    r = await client.get("/portal")
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/login")
    adopt(client, fresh)
    r = await client.get("/portal/settings?changed=1")
    assert r.status_code == 200 and "Other devices were signed out" in r.text

    stored = await client_hash(me.id)
    assert_strong_hash(stored) and passwords.verify_password(stored, NEW_PASSWORD)
    [audit] = await audit_rows("auth.password_changed")
    assert audit["after"] == {"sessions_ended": 2}
    client.cookies.clear()
    r = await post_form(client, "/portal/login", {"email": me.email, "password": PASSWORD})
    assert r.status_code == 422 and LOGIN_FAILED in r.text


async def test_changing_the_password_needs_the_current_one(client, personas):
    me = personas["client_a"]
    await sign_in(client, me)
    before = await client_hash(me.id)
    r = await post_form(
        client,
        "/portal/settings/password",
        {"current_password": "wrong-password-77", "new_password": NEW_PASSWORD},
        page="/portal/settings",
    )
    assert r.status_code == 422
    assert 'id="e-current_password">Your current password is not correct.' in r.text
    assert await client_hash(me.id) == before
    assert not await audit_rows("auth.password_changed")


async def test_a_weak_new_password_is_refused_beside_the_field(client, personas):
    me = personas["client_a"]
    await sign_in(client, me)
    before = await client_hash(me.id)
    r = await post_form(
        client,
        "/portal/settings/password",
        {"current_password": PASSWORD, "new_password": "password123"},
        page="/portal/settings",
    )
    assert r.status_code == 422
    assert 'id="e-new_password">This password is too easy to guess' in r.text
    assert "password123" not in r.text
    assert await client_hash(me.id) == before
    assert len(await session_rows("client", me.id)) == 1


# --- reset by e-mail ------------------------------------------------------------------------------


async def test_forgot_answers_the_same_for_known_and_unknown_addresses(client, personas):
    known = await post_form(client, "/portal/forgot", {"email": "client.a@client.test"})
    unknown = await post_form(client, "/portal/forgot", {"email": "nobody@client.test"})
    assert known.status_code == unknown.status_code == 200
    assert "If an account exists for that address" in known.text
    assert CSRF_RE.sub("", known.text) == CSRF_RE.sub("", unknown.text)
    rows = await db.fetch("SELECT to_addr, template, status FROM outbound_emails")
    assert rows == [{"to_addr": "client.a@client.test", "template": "password_reset", "status": "queued"}]
    [audit] = await audit_rows("auth.reset_requested")
    assert audit["subject_id"] == str(personas["client_a"].id)


async def test_forgot_asks_for_an_address(client, personas):
    r = await post_form(client, "/portal/forgot", {"email": "not-an-address"})
    assert r.status_code == 422 and "Enter your e-mail address." in r.text
    assert await count("outbound_emails") == 0


async def test_the_reset_email_really_arrives_over_smtp_with_a_working_link(
    client, personas, settings, smtp_server
):
    smtp_url, mailbox = smtp_server
    use_settings(dataclasses.replace(settings, smtp_url=smtp_url))
    await post_form(client, "/portal/forgot", {"email": "client.a@client.test"})
    [row] = await db.fetch("SELECT id FROM outbound_emails")
    assert await mail.deliver(row["id"]) == "sent"
    [msg] = await mailbox.await_for("client.a@client.test", timeout=5)
    assert msg["Subject"] == "Reset your FX CRM password"
    m = re.search(r"http://testserver\.local(/portal/reset/[A-Za-z0-9_-]+)", body_of(msg))
    assert m, body_of(msg)
    r = await client.get(m.group(1))
    assert r.status_code == 200 and 'name="password"' in r.text
    assert (await db.fetch("SELECT status FROM outbound_emails"))[0]["status"] == "sent"


async def test_a_reset_link_works_once_and_signs_out_everywhere(client, personas):
    me = personas["client_a"]
    link = await reset_link_for(client, "portal", me.email)
    elsewhere = await session_for(me)
    r = await post_form(client, link, {"password": NEW_PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/portal/login?reset=1"
    assert passwords.verify_password(await client_hash(me.id), NEW_PASSWORD)
    assert not await session_rows("client", me.id)
    adopt(client, elsewhere)
    assert (await client.get("/portal")).status_code == 303
    [audit] = await audit_rows("auth.password_reset")
    assert audit["subject_id"] == str(me.id) and audit["after"] == {"sessions_ended": 1}

    client.cookies.clear()
    r = await client.get(link)
    assert r.status_code == 200 and LINK_USED in r.text and 'name="password"' not in r.text
    r = await post_form(client, link, {"password": "another-new-pass-2027"}, page="/portal/login")
    assert r.status_code == 422 and LINK_USED in r.text
    assert passwords.verify_password(await client_hash(me.id), NEW_PASSWORD)

    r = await client.get("/portal/login?reset=1")
    assert "Your password was changed" in r.text
    r = await post_form(client, "/portal/login", {"email": me.email, "password": NEW_PASSWORD})
    assert r.status_code == 303


async def test_an_expired_reset_link_is_refused(client, personas):
    me = personas["client_a"]
    link = await reset_link_for(client, "portal", me.email)
    await db.fetch("UPDATE one_time_tokens SET expires_at = now() - interval '1 second'")
    r = await client.get(link)
    assert LINK_USED in r.text and 'name="password"' not in r.text
    r = await post_form(client, link, {"password": NEW_PASSWORD}, page="/portal/login")
    assert r.status_code == 422 and LINK_USED in r.text
    assert passwords.verify_password(await client_hash(me.id), PASSWORD)
    assert not await audit_rows("auth.password_reset")


async def test_a_weak_password_at_reset_is_refused_and_the_link_still_works(client, personas):
    me = personas["client_a"]
    link = await reset_link_for(client, "portal", me.email)
    r = await post_form(client, link, {"password": "trading123"})
    assert r.status_code == 422 and "too easy to guess" in r.text and 'name="password"' in r.text
    assert passwords.verify_password(await client_hash(me.id), PASSWORD)
    r = await post_form(client, link, {"password": NEW_PASSWORD})
    assert r.status_code == 303


async def test_a_made_up_reset_token_is_refused(client, personas):
    r = await client.get("/portal/reset/not-a-real-token")
    assert r.status_code == 200 and LINK_USED in r.text
    r = await post_form(
        client, "/portal/reset/not-a-real-token", {"password": NEW_PASSWORD}, page="/portal/login"
    )
    assert r.status_code == 422 and LINK_USED in r.text


async def test_staff_reset_their_password_through_the_staff_pages(client, personas):
    me = personas["sales"]
    link = await reset_link_for(client, "staff", me.email)
    r = await post_form(client, link, {"password": NEW_PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/staff/login?reset=1"
    [row] = await db.fetch("SELECT password_hash FROM staff_users WHERE id = {}", me.id)
    assert passwords.verify_password(row["password_hash"], NEW_PASSWORD)
    # A reset does not skip the second factor.
    r = await post_form(client, "/staff/login", {"email": me.email, "password": NEW_PASSWORD})
    assert r.headers["location"].startswith("/staff/2fa")
    adopt(client, r.cookies[sessions.COOKIE])
    assert (await client.get("/staff")).status_code == 303


async def test_a_deactivated_account_gets_no_reset_mail(client, personas):
    await db.fetch("UPDATE staff_users SET is_active = false WHERE id = {}", personas["sales"].id)
    r = await post_form(client, "/staff/forgot", {"email": personas["sales"].email})
    assert r.status_code == 200 and "If an account exists" in r.text
    assert await count("outbound_emails") == 0


async def test_a_reset_lifts_the_sign_in_limit_as_the_throttle_message_promises(client, personas):
    for _ in range(5):
        await post_form(
            client, "/portal/login", {"email": "client.a@client.test", "password": "wrong-password-77"}
        )
    r = await post_form(client, "/portal/login", {"email": "client.a@client.test", "password": PASSWORD})
    assert "or reset your password" in r.text
    link = await reset_link_for(client, "portal", "client.a@client.test")
    assert (await post_form(client, link, {"password": NEW_PASSWORD})).status_code == 303
    r = await post_form(client, "/portal/login", {"email": "client.a@client.test", "password": NEW_PASSWORD})
    assert r.status_code == 303


async def test_it_throttles_wrong_current_passwords_in_settings(client, personas):
    from tests.conftest import post_form
    from tests.personas import sign_in

    await sign_in(client, personas["client_a"])
    for _ in range(5):
        r = await post_form(
            client,
            "/portal/settings/password",
            {"current_password": "wrong-guess-123", "new_password": "a-new-strong-pass-42"},
            page="/portal/settings",
        )
        assert "current password is not correct" in r.text
    r = await post_form(
        client,
        "/portal/settings/password",
        {"current_password": "persona-pass-2026", "new_password": "a-new-strong-pass-42"},
        page="/portal/settings",
    )
    assert r.status_code == 422 and "Too many failed" in r.text


async def test_a_lead_without_a_password_gets_no_reset_link(client, database):
    from datetime import UTC, datetime

    from app.clients.tables import Client
    from app.core.tables import OutboundEmail
    from tests.conftest import post_form

    now = datetime.now(UTC)
    await Client.insert(
        Client(
            email="lead@client.test",
            first_name="L",
            last_name="Lead",
            stage="lead",
            stage_changed_at=now,
            created_at=now,
        )
    )
    r = await post_form(client, "/portal/forgot", {"email": "lead@client.test"})
    assert r.status_code == 200 and "If an account exists" in r.text
    assert await OutboundEmail.count() == 0
