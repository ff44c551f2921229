"""Signing in and out of the three portals, throttling, session lifetime, and CSRF / size limits."""

from __future__ import annotations

import asyncio
import hashlib
import json

from app.core import db
from app.core.auth import service, sessions
from tests.conftest import CSRF_RE, csrf_token, post_form
from tests.personas import PASSWORD, sign_in

LOGIN_FAILED = "Wrong e-mail or password."
THROTTLED = "Too many failed sign-in attempts"


async def audit_rows(action: str) -> list[dict]:
    rows = await db.fetch("SELECT * FROM audit_events WHERE action = {} ORDER BY seq", action)
    for r in rows:
        for col in ("before", "after"):
            if isinstance(r[col], str):
                r[col] = json.loads(r[col])
    return rows


async def session_rows(kind: str, user_id: int) -> list[dict]:
    return await db.fetch(
        "SELECT * FROM web_sessions WHERE user_kind = {} AND user_id = {} ORDER BY id", kind, user_id
    )


async def count(table: str) -> int:
    return (await db.fetch(f"SELECT count(*) AS n FROM {table}"))[0]["n"]


def new_session_key(r) -> str:
    key = r.cookies.get(sessions.COOKIE)
    assert key, f"no {sessions.COOKIE} cookie set (status {r.status_code})"
    return key


def adopt(client, key: str) -> None:
    """Make the client's only session cookie `key` (as a browser would after Set-Cookie)."""
    client.cookies.delete(sessions.COOKIE)
    client.cookies.set(sessions.COOKIE, key)


def without_email(page: str) -> str:
    """The page minus what differs by design: the CSRF token and the e-mail the visitor typed."""
    return CSRF_RE.sub("", page).replace("nobody@client.test", "X").replace("client.a@client.test", "X")


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# --- signing in, per portal ---------------------------------------------------------------------


async def test_a_client_signs_in_to_the_portal_with_a_new_session(client, personas):
    before = await session_rows("client", personas["client_a"].id)
    r = await post_form(client, "/portal/login", {"email": "client.a@client.test", "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/portal"
    key = new_session_key(r)
    after = await session_rows("client", personas["client_a"].id)
    assert len(after) == len(before) + 1
    assert after[-1]["key_hash"] == sha(key) and after[-1]["mfa_passed"] is True
    set_cookie = " ".join(r.headers.get_list("set-cookie")).lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    adopt(client, key)
    assert (await client.get("/portal")).status_code == 200
    [row] = await audit_rows("auth.login")
    assert row["subject_type"] == "client" and row["subject_id"] == str(personas["client_a"].id)
    assert row["after"]["portal"] == "portal" and row["ip"] == "127.0.0.1"


async def test_an_ib_signs_in_to_the_partner_portal_with_their_client_login(client, personas):
    r = await post_form(client, "/ib/login", {"email": "ib.master@client.test", "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/ib"
    adopt(client, new_session_key(r))
    assert (await client.get("/ib")).status_code == 200
    [row] = await audit_rows("auth.login")
    assert row["after"]["portal"] == "ib" and row["subject_id"] == str(personas["ib"].id)


async def test_staff_sign_in_leads_to_the_second_factor_not_the_console(client, personas):
    r = await post_form(client, "/staff/login", {"email": "admin@staff.test", "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/2fa?next=")
    adopt(client, new_session_key(r))
    [row] = await session_rows("staff", personas["admin"].id)
    assert row["mfa_passed"] is False
    r = await client.get("/staff")
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/2fa")
    [audit] = await audit_rows("auth.login")
    assert audit["after"]["second_factor_pending"] is True


async def test_it_keeps_the_return_path_but_refuses_an_open_redirect(client, personas):
    r = await post_form(
        client,
        "/portal/login?next=/portal/messages",
        {"email": "client.a@client.test", "password": PASSWORD},
        page="/portal/login",
    )
    assert r.headers["location"] == "/portal/messages"
    client.cookies.clear()
    r = await post_form(
        client,
        "/portal/login?next=//evil.example/x",
        {"email": "client.a@client.test", "password": PASSWORD},
        page="/portal/login",
    )
    assert r.headers["location"] == "/portal"


async def test_a_login_always_issues_a_new_session_key(client, personas):
    planted = "attacker-chosen-session-value-1234567890"
    client.cookies.set(sessions.COOKIE, planted)
    r = await post_form(client, "/portal/login", {"email": "client.a@client.test", "password": PASSWORD})
    first = new_session_key(r)
    assert first != planted
    assert not await db.fetch("SELECT id FROM web_sessions WHERE key_hash = {}", sha(planted))

    adopt(client, first)
    r = await post_form(client, "/portal/login", {"email": "client.a@client.test", "password": PASSWORD})
    second = new_session_key(r)
    assert second not in (first, planted)
    hashes = {row["key_hash"] for row in await session_rows("client", personas["client_a"].id)}
    assert sha(second) in hashes


async def test_staff_cannot_sign_in_through_the_client_portal(client, personas):
    r = await post_form(client, "/portal/login", {"email": "admin@staff.test", "password": PASSWORD})
    assert r.status_code == 422 and LOGIN_FAILED in r.text
    assert sessions.COOKIE not in r.cookies


# --- failing to sign in ---------------------------------------------------------------------------


async def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(client, personas):
    wrong = await post_form(
        client, "/portal/login", {"email": "client.a@client.test", "password": "not-the-password-9"}
    )
    unknown = await post_form(
        client, "/portal/login", {"email": "nobody@client.test", "password": "not-the-password-9"}
    )
    for r, email in ((wrong, "client.a@client.test"), (unknown, "nobody@client.test")):
        assert r.status_code == 422
        assert LOGIN_FAILED in r.text
        assert f'value="{email}"' in r.text
        assert "not-the-password-9" not in r.text
        assert sessions.COOKIE not in r.cookies
    assert without_email(wrong.text) == without_email(unknown.text)
    assert not await session_rows("client", personas["client_a"].id)
    rows = await audit_rows("auth.login_failed")
    assert [r["actor_label"] for r in rows] == ["client.a@client.test", "nobody@client.test"]
    assert rows[0]["subject_id"] == str(personas["client_a"].id) and rows[1]["subject_id"] is None
    assert all(r["actor_kind"] == "anonymous" and r["ip"] == "127.0.0.1" for r in rows)


async def test_a_deactivated_client_cannot_sign_in_and_is_told_nothing_more(client, personas):
    await db.fetch("UPDATE clients SET is_active = false WHERE id = {}", personas["client_b"].id)
    r = await post_form(client, "/portal/login", {"email": "client.b@client.test", "password": PASSWORD})
    assert r.status_code == 422 and LOGIN_FAILED in r.text
    assert not await session_rows("client", personas["client_b"].id)


async def test_it_asks_for_both_fields(client, personas):
    r = await post_form(client, "/portal/login", {"email": "", "password": ""})
    assert r.status_code == 422 and "Enter your e-mail and password." in r.text


# --- throttling --------------------------------------------------------------------------------------


async def test_the_sixth_attempt_on_one_account_is_refused_even_with_the_right_password(client, personas):
    for _ in range(5):
        r = await post_form(
            client, "/portal/login", {"email": "client.a@client.test", "password": "wrong-password-77"}
        )
        assert r.status_code == 422 and LOGIN_FAILED in r.text
    r = await post_form(client, "/portal/login", {"email": "client.a@client.test", "password": PASSWORD})
    assert r.status_code == 422
    assert THROTTLED in r.text and LOGIN_FAILED not in r.text
    assert sessions.COOKIE not in r.cookies
    assert not await session_rows("client", personas["client_a"].id)
    assert len(await audit_rows("auth.login_throttled")) == 1
    # Another account from the same address is not affected by this account's limit.
    r = await post_form(client, "/portal/login", {"email": "client.b@client.test", "password": PASSWORD})
    assert r.status_code == 303


async def test_a_successful_sign_in_clears_the_accounts_earlier_failures(client, personas):
    for _ in range(4):
        await post_form(
            client, "/portal/login", {"email": "client.a@client.test", "password": "wrong-password-77"}
        )
    assert (
        await post_form(client, "/portal/login", {"email": "client.a@client.test", "password": PASSWORD})
    ).status_code == 303
    client.cookies.clear()
    for _ in range(4):
        await post_form(
            client, "/portal/login", {"email": "client.a@client.test", "password": "wrong-password-77"}
        )
    assert (
        await post_form(client, "/portal/login", {"email": "client.a@client.test", "password": PASSWORD})
    ).status_code == 303


async def test_one_address_is_limited_across_many_accounts(client, personas):
    for i in range(20):
        try:
            await service.login(
                "portal", f"guess{i}@client.test", "wrong-password-77", ip="127.0.0.1", user_agent="pytest"
            )
        except service.AuthError as exc:
            assert exc.message == LOGIN_FAILED
        else:
            raise AssertionError("a wrong password was accepted")
    r = await post_form(client, "/portal/login", {"email": "client.b@client.test", "password": PASSWORD})
    assert r.status_code == 422 and THROTTLED in r.text
    assert not await session_rows("client", personas["client_b"].id)
    # The same account from another address still signs in.
    outcome = await service.login(
        "portal", "client.b@client.test", PASSWORD, ip="10.1.2.3", user_agent="pytest"
    )
    assert outcome.user_id == personas["client_b"].id


# --- signing out and session lifetime -----------------------------------------------------------------


async def test_logout_ends_the_session_and_is_audited(client, personas):
    await sign_in(client, personas["client_a"])
    [row] = await session_rows("client", personas["client_a"].id)
    r = await post_form(client, "/portal/logout", {}, page="/portal/settings")
    assert r.status_code == 303 and r.headers["location"] == "/portal/login"
    assert any(c.startswith(f"{sessions.COOKIE}=") for c in r.headers.get_list("set-cookie"))
    assert not await session_rows("client", personas["client_a"].id)
    [audit] = await audit_rows("auth.logout")
    assert audit["actor_kind"] == "client" and audit["after"] == {"session": row["id"]}
    r = await client.get("/portal")
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/login")


async def test_staff_logout_works_with_htmx(client, personas):
    await sign_in(client, personas["sales"])
    r = await post_form(client, "/staff/logout", {}, page="/staff", htmx=True)
    assert r.status_code == 200 and r.headers["hx-redirect"] == "/staff/login"
    assert not await session_rows("staff", personas["sales"].id)


async def test_an_idle_session_stops_authenticating(client, personas):
    await sign_in(client, personas["client_a"])
    assert (await client.get("/portal")).status_code == 200
    await db.fetch(
        "UPDATE web_sessions SET idle_expires_at = now() - interval '1 second' WHERE user_id = {}",
        personas["client_a"].id,
    )
    sessions.forget_all()  # a direct database edit bypasses the app, which would have told the session cache
    r = await client.get("/portal")
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/login")


async def test_a_session_past_its_absolute_deadline_stops_authenticating_even_when_in_use(client, personas):
    await sign_in(client, personas["admin"])
    assert (await client.get("/staff")).status_code == 200
    await db.fetch(
        "UPDATE web_sessions SET absolute_expires_at = now() - interval '1 second', last_seen_at = now() - interval '5 minutes' "
        "WHERE user_kind = 'staff' AND user_id = {}",
        personas["admin"].id,
    )
    sessions.forget_all()
    r = await client.get("/staff")
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/login")


async def test_use_slides_the_idle_deadline_but_never_past_the_absolute_one(client, personas):
    await sign_in(client, personas["client_a"])
    await db.fetch(
        "UPDATE web_sessions SET last_seen_at = now() - interval '10 minutes', idle_expires_at = now() + interval '1 minute', "
        "absolute_expires_at = now() + interval '5 minutes' WHERE user_id = {}",
        personas["client_a"].id,
    )
    sessions.forget_all()
    assert (await client.get("/portal")).status_code == 200
    [row] = await session_rows("client", personas["client_a"].id)
    assert row["idle_expires_at"] == row["absolute_expires_at"]


async def test_a_remembered_session_is_refused_once_its_idle_deadline_passes(client, personas):
    from datetime import timedelta

    key, _ = await sessions.create(
        "client",
        personas["client_a"].id,
        idle=timedelta(seconds=1),
        absolute=timedelta(hours=1),
        mfa_passed=True,
        ip="127.0.0.1",
        user_agent="pytest",
    )
    client.cookies.set(sessions.COOKIE, key)
    assert (await client.get("/portal")).status_code == 200  # now in the in-process cache
    await asyncio.sleep(1.2)
    r = await client.get("/portal")
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/login")


async def test_a_role_change_applies_to_the_next_request_despite_the_session_cache(client, personas):
    from app.core.audit import Actor
    from app.staff import services as staff_services
    from app.staff.tables import StaffUser
    from tests.personas import session_for

    compliance = personas["compliance"]
    key = await session_for(compliance)
    client.cookies.clear()
    client.cookies.set(sessions.COOKIE, key)
    assert (await client.get("/staff/funding")).status_code == 403  # cached: compliance only
    admin_row = await StaffUser.select().where(StaffUser.id == personas["admin"].id).first()
    from app.core.auth.principal import Principal

    admin = Principal(
        kind="staff",
        id=admin_row["id"],
        email=admin_row["email"],
        name="Admin",
        session_id=0,
        mfa_passed=True,
        totp_enabled=True,
        roles=frozenset({"admin"}),
    )
    await staff_services.update_staff(
        admin,
        compliance.id,
        staff_services.StaffForm(name="Compliance", roles=["compliance", "finance"]),
        Actor.system("test"),
    )
    assert (await client.get("/staff/funding")).status_code == 200


async def test_a_made_up_cookie_does_not_authenticate(client, personas):
    client.cookies.set(sessions.COOKIE, "x" * 43)
    r = await client.get("/portal")
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/login")


# --- CSRF and size limits ---------------------------------------------------------------------------


async def test_a_login_without_a_csrf_token_is_refused_with_a_friendly_page(client, personas):
    await csrf_token(client, "/portal/login")  # the browser has the cookie, but the form lacks the field
    r = await client.post("/portal/login", data={"email": "client.a@client.test", "password": PASSWORD})
    assert r.status_code == 403
    assert "This form has expired" in r.text and "Traceback" not in r.text
    assert sessions.COOKIE not in r.cookies
    assert not await session_rows("client", personas["client_a"].id)
    assert await count("audit_events") == 0


async def test_a_post_with_a_wrong_csrf_token_changes_nothing(client, personas):
    await sign_in(client, personas["client_a"])
    before = (await db.fetch("SELECT password_hash FROM clients WHERE id = {}", personas["client_a"].id))[0]
    await csrf_token(client, "/portal/settings")
    r = await client.post(
        "/portal/settings/password",
        data={
            "current_password": PASSWORD,
            "new_password": "a-brand-new-pass-2026",
            "_csrf_token": "forged-token",
        },
    )
    assert r.status_code == 403 and "This form has expired" in r.text
    after = (await db.fetch("SELECT password_hash FROM clients WHERE id = {}", personas["client_a"].id))[0]
    assert after == before
    assert len(await session_rows("client", personas["client_a"].id)) == 1
    # And through the htmx header, a wrong token is refused the same way.
    r = await client.post("/portal/logout", headers={"x-csrftoken": "forged-token", "HX-Request": "true"})
    assert r.status_code == 403
    assert len(await session_rows("client", personas["client_a"].id)) == 1


async def test_an_oversized_form_post_gets_a_clear_413(client, personas):
    token = await csrf_token(client, "/portal/register")
    clients_before = await count("clients")
    r = await client.post(
        "/portal/register",
        data={
            "first_name": "Big",
            "last_name": "Post",
            "email": "big@client.test",
            "password": "a-long-enough-pass-1",
            "accept_terms": "on",
            "country": "DE",
            "bio": "x" * 1_100_000,
            "_csrf_token": token,
        },
    )
    assert r.status_code == 413
    assert "larger than we accept" in r.text and "Traceback" not in r.text
    assert await count("clients") == clients_before


async def test_an_oversized_post_with_the_token_in_the_header_gets_a_clear_413(client, personas):
    token = await csrf_token(client, "/portal/login")
    r = await client.post(
        "/portal/login",
        data={"email": "client.a@client.test", "password": PASSWORD, "pad": "y" * 1_100_000},
        headers={"x-csrftoken": token},
    )
    assert r.status_code == 413 and "larger than we accept" in r.text
    assert not await session_rows("client", personas["client_a"].id)
