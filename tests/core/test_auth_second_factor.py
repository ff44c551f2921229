"""Two-factor authentication: mandatory enrolment for staff, optional for clients, single-use codes."""

from __future__ import annotations

import re
import time

import pyotp

from app.core import db
from app.core.auth import sessions
from tests.conftest import post_form
from tests.core.test_auth_login import adopt, audit_rows, new_session_key, session_rows
from tests.personas import PASSWORD, TOTP_SECRET, make_staff, sign_in

BAD_CODE = "That code is not valid (or was already used)"
CODE_RE = re.compile(r"<code>([0-9a-f]{6}-[0-9a-f]{6})</code>")


def code_at(secret: str, steps_ahead: int = 0) -> str:
    """The code an authenticator shows now (or one step later: still inside the ±1 step drift window)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


async def login(client, base: str, email: str, password: str = PASSWORD):
    client.cookies.clear()
    r = await post_form(client, f"{base}/login", {"email": email, "password": password})
    assert r.status_code == 303, r.text
    adopt(client, new_session_key(r))
    return r


async def secret_of(table: str, user_id: int) -> str | None:
    return (await db.fetch(f"SELECT totp_secret FROM {table} WHERE id = {{}}", user_id))[0]["totp_secret"]


async def enrol_staff(client, email: str, user_id: int) -> tuple[str, list[str]]:
    await login(client, "/staff", email)
    page = await client.get("/staff/2fa/setup")
    secret = await secret_of("staff_users", user_id)
    r = await post_form(client, "/staff/2fa/setup", {"code": code_at(secret)}, page="/staff/2fa/setup")
    assert r.status_code == 200, r.text
    assert page.status_code == 200
    return secret, CODE_RE.findall(r.text)


# --- staff: enrolment is mandatory ---------------------------------------------------------------


async def test_a_staff_member_without_totp_is_sent_to_enrolment_with_a_qr_code(client, database):
    newbie = await make_staff("newbie", ["sales"], totp=False)
    r = await login(client, "/staff", newbie.email)
    assert r.headers["location"] == "/staff/2fa/setup"
    r = await client.get("/staff")
    assert r.status_code == 303 and r.headers["location"] == "/staff/2fa/setup"
    r = await client.get("/staff/2fa/setup")
    assert r.status_code == 200
    secret = await secret_of("staff_users", newbie.id)
    assert secret and re.fullmatch(r"[A-Z2-7]{16,64}", secret)
    assert "<svg" in r.text and secret in r.text
    assert "required for staff" in r.text
    # Reloading the page keeps the same (unconfirmed) secret, so a scanned code keeps working.
    await client.get("/staff/2fa/setup")
    assert await secret_of("staff_users", newbie.id) == secret
    # Until a code confirms it, the secret does not count as enrolment.
    row = (await db.fetch("SELECT totp_enabled FROM staff_users WHERE id = {}", newbie.id))[0]
    assert row["totp_enabled"] is False


async def test_confirming_enrolment_shows_ten_recovery_codes_and_unlocks_the_console(client, database):
    newbie = await make_staff("newbie", ["sales"], totp=False)
    await login(client, "/staff", newbie.email)
    await client.get("/staff/2fa/setup")
    secret = await secret_of("staff_users", newbie.id)
    r = await post_form(client, "/staff/2fa/setup", {"code": code_at(secret)})
    assert r.status_code == 200
    codes = CODE_RE.findall(r.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = await db.fetch(
        "SELECT code_hash FROM recovery_codes WHERE user_kind = 'staff' AND user_id = {}", newbie.id
    )
    assert len(stored) == 10 and not any(c in str(stored) for c in codes)
    assert (await client.get("/staff")).status_code == 200
    [audit] = await audit_rows("auth.2fa_enabled")
    assert audit["subject_type"] == "staff" and audit["subject_id"] == str(newbie.id)


async def test_a_wrong_enrolment_code_is_refused_with_a_clear_message(client, database):
    newbie = await make_staff("newbie", ["sales"], totp=False)
    await login(client, "/staff", newbie.email)
    r = await post_form(client, "/staff/2fa/setup", {"code": "12345"})
    assert r.status_code == 422
    assert "That code does not match" in r.text and "<svg" in r.text
    assert (await client.get("/staff")).status_code == 303
    assert not await audit_rows("auth.2fa_enabled")


async def test_a_staff_member_with_totp_cannot_reach_the_console_before_the_code(client, personas):
    r = await login(client, "/staff", "admin@staff.test")
    assert r.headers["location"] == "/staff/2fa?next=/staff"
    for url in ("/staff", "/staff/settings/staff", "/staff/audit"):
        r = await client.get(url)
        assert r.status_code == 303 and r.headers["location"].startswith("/staff/2fa?next="), url
    r = await client.get("/staff/2fa")
    assert r.status_code == 200 and 'name="code"' in r.text
    r = await post_form(
        client, "/staff/2fa?next=/staff/audit", {"code": code_at(TOTP_SECRET)}, page="/staff/2fa"
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/audit"
    assert (await client.get("/staff")).status_code == 200
    [row] = await session_rows("staff", personas["admin"].id)
    assert row["mfa_passed"] is True
    [audit] = await audit_rows("auth.2fa_passed")
    assert audit["after"] == {"method": "totp"} and audit["actor_kind"] == "staff"


async def test_a_bad_code_gets_a_clear_message_and_is_audited(client, personas):
    await login(client, "/staff", "compliance@staff.test")
    for code in ("000000", "abc", ""):
        r = await post_form(client, "/staff/2fa", {"code": code})
        assert r.status_code == 422 and BAD_CODE in r.text
    assert (await client.get("/staff")).status_code == 303
    assert len(await audit_rows("auth.2fa_failed")) == 3


async def test_a_totp_code_is_accepted_only_once(client, personas):
    code = code_at(TOTP_SECRET)
    await login(client, "/staff", "finance@staff.test")
    r = await post_form(client, "/staff/2fa", {"code": code})
    assert r.status_code == 303
    first = client.cookies.get(sessions.COOKIE)
    await login(client, "/staff", "finance@staff.test")
    assert client.cookies.get(sessions.COOKIE) != first
    r = await post_form(client, "/staff/2fa", {"code": code})
    assert r.status_code == 422 and BAD_CODE in r.text
    assert (await client.get("/staff")).status_code == 303
    # The next code from the app is fine.
    r = await post_form(client, "/staff/2fa", {"code": code_at(TOTP_SECRET, 1)})
    assert r.status_code == 303


async def test_a_recovery_code_works_once(client, database):
    newbie = await make_staff("newbie", ["dealing"], totp=False)
    _, codes = await enrol_staff(client, newbie.email, newbie.id)
    await login(client, "/staff", newbie.email)
    r = await post_form(client, "/staff/2fa", {"code": codes[3].upper()})
    assert r.status_code == 303
    assert (await client.get("/staff")).status_code == 200
    [audit] = await audit_rows("auth.2fa_passed")
    assert audit["after"] == {"method": "recovery_code"}
    await login(client, "/staff", newbie.email)
    r = await post_form(client, "/staff/2fa", {"code": codes[3]})
    assert r.status_code == 422 and BAD_CODE in r.text
    assert (await client.get("/staff")).status_code == 303
    r = await post_form(client, "/staff/2fa", {"code": codes[4]})
    assert r.status_code == 303


async def test_failed_codes_count_towards_the_sign_in_limit(client, personas):
    await login(client, "/staff", "dealing@staff.test")
    for _ in range(5):
        await post_form(client, "/staff/2fa", {"code": "000000"})
    r = await post_form(client, "/staff/2fa", {"code": code_at(TOTP_SECRET)})
    assert r.status_code == 422 and "Too many failed sign-in attempts" in r.text
    assert (await client.get("/staff")).status_code == 303


async def test_staff_cannot_turn_their_second_factor_off(client, personas):
    await sign_in(client, personas["admin"])
    r = await client.get("/staff/2fa/setup")
    assert r.status_code == 303 and r.headers["location"] == "/staff"
    r = await post_form(client, "/portal/settings/2fa/disable", {"password": PASSWORD}, page="/staff")
    assert r.status_code == 403
    row = (await db.fetch("SELECT totp_enabled FROM staff_users WHERE id = {}", personas["admin"].id))[0]
    assert row["totp_enabled"] is True


# --- clients: optional ---------------------------------------------------------------------------


async def enable_client_2fa(client) -> tuple[str, list[str]]:
    settings = await client.get("/portal/settings")
    assert 'href="/portal/2fa/setup"' in settings.text
    r = await client.get("/portal/2fa/setup")
    assert r.status_code == 200 and "<svg" in r.text and "required for staff" not in r.text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', r.text).group(1)
    r = await post_form(client, "/portal/2fa/setup", {"code": code_at(secret)}, page="/portal/2fa/setup")
    assert r.status_code == 200
    codes = CODE_RE.findall(r.text)
    assert len(codes) == 10
    return secret, codes


async def test_a_client_signs_in_without_a_second_factor_by_default(client, personas):
    r = await login(client, "/portal", "client.a@client.test")
    assert r.headers["location"] == "/portal"
    assert (await client.get("/portal")).status_code == 200


async def test_a_client_who_turns_on_2fa_needs_a_code_at_the_next_sign_in(client, personas):
    await login(client, "/portal", "client.a@client.test")
    secret, _ = await enable_client_2fa(client)
    assert await secret_of("clients", personas["client_a"].id) == secret
    [audit] = await audit_rows("auth.2fa_enabled")
    assert audit["subject_type"] == "client"
    assert "badge-green" in (await client.get("/portal/settings")).text

    r = await login(client, "/portal", "client.a@client.test")
    assert r.headers["location"] == "/portal/2fa?next=/portal"
    for url in ("/portal", "/portal/messages", "/portal/settings"):
        r = await client.get(url)
        assert r.status_code == 303 and r.headers["location"].startswith("/portal/2fa?next="), url
    r = await post_form(client, "/portal/2fa", {"code": "999999"})
    assert r.status_code == 422 and BAD_CODE in r.text
    r = await post_form(client, "/portal/2fa", {"code": code_at(secret, 1)})
    assert r.status_code == 303 and r.headers["location"] == "/portal"
    assert (await client.get("/portal")).status_code == 200


async def test_an_ib_with_2fa_must_pass_it_before_the_partner_portal(client, personas):
    await login(client, "/portal", "ib.master@client.test")
    secret, _ = await enable_client_2fa(client)
    r = await login(client, "/ib", "ib.master@client.test")
    assert r.headers["location"].startswith("/portal/2fa?next=")
    r = await client.get("/ib")
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/2fa?next=")
    r = await post_form(client, "/portal/2fa?next=/ib", {"code": code_at(secret, 1)}, page="/portal/2fa")
    assert r.status_code == 303 and r.headers["location"] == "/ib"
    assert (await client.get("/ib")).status_code == 200


async def test_turning_client_2fa_off_needs_the_password_and_is_audited(client, personas):
    await login(client, "/portal", "client.b@client.test")
    await enable_client_2fa(client)
    r = await post_form(
        client, "/portal/settings/2fa/disable", {"password": "not-my-password-1"}, page="/portal/settings"
    )
    assert r.status_code == 422 and "Your password is not correct." in r.text
    row = (await db.fetch("SELECT totp_enabled FROM clients WHERE id = {}", personas["client_b"].id))[0]
    assert row["totp_enabled"] is True
    r = await post_form(
        client, "/portal/settings/2fa/disable", {"password": PASSWORD}, page="/portal/settings"
    )
    assert r.status_code == 303
    row = (
        await db.fetch("SELECT totp_enabled, totp_secret FROM clients WHERE id = {}", personas["client_b"].id)
    )[0]
    assert row == {"totp_enabled": False, "totp_secret": None}
    assert not await db.fetch(
        "SELECT id FROM recovery_codes WHERE user_kind = 'client' AND user_id = {}", personas["client_b"].id
    )
    [audit] = await audit_rows("auth.2fa_disabled")
    assert audit["subject_id"] == str(personas["client_b"].id)
    r = await login(client, "/portal", "client.b@client.test")
    assert r.headers["location"] == "/portal"


async def test_the_second_factor_page_needs_a_signed_in_session(client, personas):
    r = await client.get("/staff/2fa")
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/login")
    r = await client.get("/portal/2fa/setup")
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/login")


async def test_signing_in_again_with_the_password_does_not_reset_the_count_of_bad_codes(client, personas):
    await login(client, "/staff", "dealing@staff.test")
    for _ in range(4):
        await post_form(client, "/staff/2fa", {"code": "000000"})
    await login(client, "/staff", "dealing@staff.test")
    await post_form(client, "/staff/2fa", {"code": "000000"})
    r = await post_form(client, "/staff/2fa", {"code": code_at(TOTP_SECRET)})
    assert r.status_code == 422 and "Too many failed sign-in attempts" in r.text
    client.cookies.clear()
    r = await post_form(client, "/staff/login", {"email": "dealing@staff.test", "password": PASSWORD})
    assert r.status_code == 422 and "Too many failed sign-in attempts" in r.text


async def test_a_passed_second_factor_clears_earlier_bad_codes(client, personas):
    await login(client, "/staff", "dealing@staff.test")
    for _ in range(4):
        await post_form(client, "/staff/2fa", {"code": "000000"})
    assert (await post_form(client, "/staff/2fa", {"code": code_at(TOTP_SECRET)})).status_code == 303
    await login(client, "/staff", "dealing@staff.test")
    for _ in range(4):
        await post_form(client, "/staff/2fa", {"code": "000000"})
    assert (await post_form(client, "/staff/2fa", {"code": code_at(TOTP_SECRET, 1)})).status_code == 303
