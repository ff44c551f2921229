"""A client's timeline shows their portal sign-ins and every e-mail sent to them (subject and
template, never the body), written in the same transaction as the sign-in or the queued e-mail."""

from __future__ import annotations

import pytest

from app.clients import services as client_services
from app.core import db, mail
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.tables import OutboundEmail
from tests.conftest import post_form
from tests.personas import PASSWORD, TOTP_SECRET, sign_in, totp_now

REGISTRATION = {
    "first_name": "Maria",
    "last_name": "Lopez",
    "email": "maria.lopez@example.com",
    "country": "es",
    "password": "sunny-harbour-2026",
    "accept_terms": "on",
}


async def events(client_id: int, kind: str) -> list[dict]:
    return await db.fetch(
        "SELECT * FROM client_timeline WHERE client = {} AND kind = {} ORDER BY id", client_id, kind
    )


async def log_in(client, base: str, email: str, password: str = PASSWORD):
    client.cookies.clear()
    return await post_form(client, f"{base}/login", {"email": email, "password": password})


async def test_a_client_portal_sign_in_is_on_the_timeline_and_a_failed_one_is_not(client, personas):
    a = personas["client_a"]
    r = await log_in(client, "/portal", a.email, "wrong-password-2026")
    assert r.status_code == 422
    assert await events(a.id, "login") == []
    assert await db.fetch("SELECT 1 FROM audit_events WHERE action = 'auth.login_failed'")
    r = await log_in(client, "/portal", a.email)
    assert r.status_code == 303
    [event] = await events(a.id, "login")
    assert event["summary"] == "Signed in to the client portal from 127.0.0.1"


async def test_an_ib_sign_in_names_the_partner_portal(client, personas):
    ib = personas["ib"]
    assert (await log_in(client, "/ib", ib.email)).status_code == 303
    [event] = await events(ib.id, "login")
    assert event["summary"].startswith("Signed in to the partner portal")


async def test_with_two_factor_the_sign_in_counts_once_the_code_is_accepted(client, personas):
    a = personas["client_a"]
    await db.fetch(
        "UPDATE clients SET totp_secret = {}, totp_enabled = true WHERE id = {}", TOTP_SECRET, a.id
    )
    r = await log_in(client, "/portal", a.email)
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/2fa")
    client.cookies.set("fxsid", r.cookies["fxsid"])
    assert await events(a.id, "login") == []
    bad = await post_form(client, "/portal/2fa", {"code": "000000"})
    assert bad.status_code == 422 and await events(a.id, "login") == []
    ok = await post_form(client, "/portal/2fa", {"code": totp_now()})
    assert ok.status_code == 303
    assert len(await events(a.id, "login")) == 1


async def test_staff_sign_ins_are_on_no_clients_timeline(client, personas):
    await log_in(client, "/staff", personas["admin"].email)
    assert await db.fetch("SELECT 1 FROM client_timeline WHERE kind = 'login'") == []


async def test_every_email_to_a_client_is_on_their_timeline_without_its_body(client, personas):
    r = await post_form(client, "/portal/register", REGISTRATION)
    assert r.status_code == 303
    [maria] = await db.fetch("SELECT id FROM clients WHERE email = {}", REGISTRATION["email"])
    client.cookies.clear()
    await post_form(client, "/portal/forgot", {"email": REGISTRATION["email"]})
    await sign_in(client, personas["admin"])
    admin = Principal(
        "staff", personas["admin"].id, personas["admin"].email, "Admin", 0, True, True, frozenset({"admin"})
    )
    await client_services.send_message(admin, maria["id"], "Your swap rates", "Here they are.", admin.actor())
    outbox = (
        await OutboundEmail.select()
        .where(OutboundEmail.to_addr == REGISTRATION["email"])
        .order_by(OutboundEmail.id)
    )
    got = await events(maria["id"], "email")
    assert [e["ref_id"] for e in got] == [m["id"] for m in outbox] and len(got) == 3
    assert all(e["ref_type"] == "email" for e in got)
    assert [e["summary"] for e in got] == [
        "E-mail “Confirm your e-mail address” (verify_email)",
        "E-mail “Reset your FX CRM password” (password_reset)",
        "E-mail “New message: Your swap rates” (new_message)",
    ]
    for e, m in zip(got, outbox, strict=True):
        assert (
            "/verify/" in m["body_text"] or "/reset/" in m["body_text"] or "Your swap rates" in m["body_text"]
        )
        assert "http" not in e["summary"]  # links (single-use tokens) stay in the outbox


async def test_mail_to_staff_is_on_no_timeline(client, personas):
    await post_form(client, "/staff/forgot", {"email": personas["admin"].email})
    assert await OutboundEmail.count() == 1
    assert await db.fetch("SELECT 1 FROM client_timeline WHERE kind = 'email'") == []


async def test_the_email_event_rolls_back_with_the_email(personas):
    a = personas["client_a"].id
    with pytest.raises(RuntimeError):
        async with transaction():
            await mail.queue_email("client.a@client.test", "new_message", {"subject": "x"}, client_id=a)
            raise RuntimeError("the message failed")
    assert await OutboundEmail.count() == 0
    assert await events(a, "email") == []
