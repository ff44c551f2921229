"""Referral links and attribution: the click, its signed cookie, and what registration makes of it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from app.clients.tables import Client
from app.core import db
from app.core.audit import Actor
from app.leads.services import LeadData, capture_lead
from app.partners import attribution
from app.partners.services import grant_partner_status
from app.partners.tables import Attribution, ReferralClick
from tests.conftest import post_form
from tests.personas import sign_in

FORM = {
    "first_name": "Maria",
    "last_name": "Lopez",
    "email": "maria.lopez@example.com",
    "country": "es",
    "password": "sunny-harbour-2026",
    "accept_terms": "on",
}
LANDING = "https://broker.example/promo/gold"


async def audit_rows(action: str) -> list[dict]:
    rows = await db.fetch("SELECT * FROM audit_events WHERE action = {} ORDER BY seq", action)
    for r in rows:
        if isinstance(r["after"], str):
            r["after"] = json.loads(r["after"])
    return rows


def set_cookie_headers(r) -> list[str]:
    return [v for k, v in r.headers.multi_items() if k.lower() == "set-cookie"]


async def follow(client, code: str, **kw):
    return await client.get(f"/r/{code}", headers={"referer": LANDING}, **kw)


async def attribution_of(email: str) -> dict | None:
    rows = await db.fetch(
        "SELECT a.*, p.code FROM partner_attributions a JOIN partners p ON p.id = a.partner "
        "JOIN clients c ON c.id = a.client WHERE c.email = {}",
        email,
    )
    assert len(rows) <= 1
    return rows[0] if rows else None


async def test_a_click_is_recorded_and_sets_a_signed_http_only_cookie(client, personas):
    r = await follow(client, "ibtest")
    assert r.status_code == 303 and r.headers["location"] == "/portal/register"
    [header] = [h for h in set_cookie_headers(r) if h.startswith("fxref=")]
    assert "HttpOnly" in header and "samesite=lax" in header.lower() and "Max-Age=2592000" in header
    [click] = await ReferralClick.select().where(ReferralClick.partner == personas["ib"].partner_id)
    assert click["landing_page"] == LANDING and click["ip"] == "127.0.0.1"
    value = r.cookies["fxref"]
    assert attribution.unsign(value) == click["token"]
    assert value != click["token"]  # signed, not the bare token
    sig = value.rpartition(".")[2]
    tampered = ("1" if sig[0] == "0" else "0") + sig[1:]  # a real change, even when sig starts with "0"
    assert attribution.unsign(click["token"] + "." + tampered) is None
    assert attribution.unsign("x" + value) is None


async def test_the_link_goes_on_to_a_local_page_only(client, personas):
    r = await client.get("/r/IBTEST", params={"to": "/portal/register?lang=de"})
    assert r.headers["location"] == "/portal/register?lang=de" and "fxref" in r.cookies
    [click] = await ReferralClick.select(ReferralClick.landing_page)
    assert click["landing_page"] == "/portal/register?lang=de"  # no Referer: the page it led to
    client.cookies.clear()
    r = await client.get("/r/IBTEST", params={"to": "https://evil.example/"})
    assert r.headers["location"] == "/portal/register"


async def test_an_unknown_or_suspended_code_sets_no_cookie_and_records_nothing(client, personas):
    r = await follow(client, "NOSUCHIB")
    assert r.status_code == 303 and r.headers["location"] == "/portal/register"
    assert not set_cookie_headers(r) or all(not h.startswith("fxref=") for h in set_cookie_headers(r))
    await db.fetch("UPDATE partners SET status = 'suspended' WHERE code = 'IBTEST'")
    r = await follow(client, "IBTEST")
    assert r.headers["location"] == "/portal/register" and "fxref" not in r.cookies
    assert await ReferralClick.count() == 0


async def test_registering_after_a_click_attributes_with_its_evidence_and_clears_the_cookie(client, personas):
    await follow(client, "IBTEST")
    r = await post_form(client, "/portal/register", FORM)
    assert r.status_code == 303 and r.headers["location"] == "/portal?welcome=1"
    cleared = [h for h in set_cookie_headers(r) if h.startswith("fxref=")]
    assert cleared and "Max-Age=0" in cleared[0]
    assert "fxref" not in client.cookies
    [click] = await ReferralClick.select()
    row = await attribution_of(FORM["email"])
    assert row is not None
    assert row["code"] == "IBTEST" and row["source"] == "link" and row["click"] == click["id"]
    assert row["clicked_at"] == click["clicked_at"] and row["landing_page"] == LANDING
    [audit] = await audit_rows("client.attributed")
    assert audit["subject_id"] == str(row["client"])
    assert audit["after"] == {
        "partner_id": personas["ib"].partner_id,
        "partner_code": "IBTEST",
        "source": "link",
        "clicked_at": click["clicked_at"].isoformat(),
        "landing_page": LANDING,
    }


async def test_a_tampered_cookie_is_ignored(client, personas):
    await follow(client, "IBTEST")
    [click] = await ReferralClick.select()
    client.cookies.set("fxref", click["token"] + ".forged")
    r = await post_form(client, "/portal/register", FORM)
    assert r.status_code == 303
    assert await attribution_of(FORM["email"]) is None
    assert not await audit_rows("client.attributed")


async def test_without_a_click_nothing_is_attributed(client, personas):
    await follow(client, "NOSUCHIB")
    await post_form(client, "/portal/register", FORM)
    assert await Client.exists().where(Client.email == FORM["email"])
    assert await Attribution.count() == 0


async def test_a_lead_captured_with_an_ib_code_gets_code_attribution_when_registering(client, personas):
    await capture_lead(
        LeadData(
            first_name="Maria",
            last_name="Lopez",
            email=FORM["email"],
            referring_ib_code="ibsubtest",
            landing_page="https://broker.example/lp",
        ),
        channel="api",
        api_key_id=None,
        actor=Actor.system("test"),
    )
    await post_form(client, "/portal/register", FORM)
    row = await attribution_of(FORM["email"])
    assert row is not None
    assert row["code"] == "IBSUBTEST" and row["source"] == "code" and row["click"] is None
    assert row["landing_page"] == "https://broker.example/lp"
    [audit] = await audit_rows("client.attributed")
    assert audit["after"]["source"] == "code" and audit["after"]["clicked_at"] is None


async def test_a_click_wins_over_the_code_the_lead_arrived_with(client, personas):
    await capture_lead(
        LeadData(first_name="Maria", last_name="Lopez", email=FORM["email"], referring_ib_code="IBSUBTEST"),
        channel="api",
        api_key_id=None,
        actor=Actor.system("test"),
    )
    await follow(client, "IBTEST")
    await post_form(client, "/portal/register", FORM)
    row = await attribution_of(FORM["email"])
    assert row is not None and row["code"] == "IBTEST" and row["source"] == "link"


async def test_a_client_cannot_refer_themselves(client, personas):
    actor = Actor.system("test")
    lead_id, _ = await capture_lead(
        LeadData(first_name="Maria", last_name="Lopez", email=FORM["email"]),
        channel="api",
        api_key_id=None,
        actor=actor,
    )
    await grant_partner_status(lead_id, actor, code="IBMARIA")
    await capture_lead(
        LeadData(first_name="Maria", last_name="Lopez", email=FORM["email"], referring_ib_code="IBMARIA"),
        channel="api",
        api_key_id=None,
        actor=actor,
    )
    await follow(client, "IBMARIA")
    assert "fxref" in client.cookies
    r = await post_form(client, "/portal/register", FORM)
    assert r.status_code == 303
    assert await Attribution.count() == 0
    assert not await audit_rows("client.attributed")


async def test_an_existing_attribution_is_never_overwritten(client, personas):
    lead_id, _ = await capture_lead(
        LeadData(first_name="Maria", last_name="Lopez", email=FORM["email"]),
        channel="api",
        api_key_id=None,
        actor=Actor.system("test"),
    )
    await Attribution(
        client=lead_id, partner=personas["sub_ib"].partner_id, source="staff", attributed_at=datetime.now(UTC)
    ).save()
    await follow(client, "IBTEST")
    await post_form(client, "/portal/register", FORM)
    row = await attribution_of(FORM["email"])
    assert row is not None and row["code"] == "IBSUBTEST" and row["source"] == "staff"
    assert not await audit_rows("client.attributed")


async def test_the_ib_overview_shows_the_funnel_and_masked_emails_to_that_ib_only(client, personas):
    await follow(client, "IBTEST")
    await follow(client, "IBTEST")
    await post_form(client, "/portal/register", FORM)
    await sign_in(client, personas["ib"])
    page = (await client.get("/ib")).text
    assert 'id="funnel-clicks">2<' in page and 'id="funnel-registrations">1<' in page
    assert "m***@example.com" in page and "Maria Lopez" in page
    assert FORM["email"] not in page
    await sign_in(client, personas["sub_ib"])
    page = (await client.get("/ib")).text
    assert 'id="funnel-clicks">0<' in page and 'id="funnel-registrations">0<' in page
    assert "m***@example.com" not in page and "Maria" not in page


async def test_the_staff_client_page_says_who_referred_the_client(client, personas):
    await follow(client, "IBTEST")
    await post_form(client, "/portal/register", FORM)
    row = await attribution_of(FORM["email"])
    assert row is not None
    await sign_in(client, personas["admin"])
    page = (await client.get(f"/staff/clients/{row['client']}")).text
    assert "Referred by IB <strong>IBTEST</strong>" in page
    assert f"on {LANDING}" in page and "(link, clicked " in page
    other = (await client.get(f"/staff/clients/{personas['client_a'].id}")).text
    assert "Referred by IB" not in other


def test_emails_are_masked_to_their_first_letter():
    assert attribution.mask_email("maria.lopez@example.com") == "m***@example.com"
    assert attribution.mask_email("broken") == "***"


# --- the per-address click limit ----------------------------------------------------------------


async def test_clicks_over_the_limit_still_redirect_with_a_cookie_but_write_no_rows(
    client, personas, monkeypatch
):
    monkeypatch.setattr(attribution, "CLICK_LIMIT", 3)
    tokens = []
    for _ in range(3):
        client.cookies.clear()
        r = await follow(client, "IBTEST")
        tokens.append(attribution.unsign(r.cookies["fxref"]))
    assert await ReferralClick.count() == 3
    for _ in range(5):
        client.cookies.clear()
        r = await follow(client, "IBTEST", params={"to": "/portal/register?lang=de"})
        assert r.status_code == 303 and r.headers["location"] == "/portal/register?lang=de"
        [header] = [h for h in set_cookie_headers(r) if h.startswith("fxref=")]
        assert "HttpOnly" in header
        assert attribution.unsign(r.cookies["fxref"]) == tokens[-1]  # this address's latest click
    assert await ReferralClick.count() == 3
    # Over the limit on a partner this address never reached: still a cookie, still no row.
    client.cookies.clear()
    r = await follow(client, "IBSUBTEST")
    token = attribution.unsign(r.cookies["fxref"])
    assert r.status_code == 303 and token and token not in tokens
    assert await ReferralClick.count() == 3
    # Another address is counted on its own.
    assert await attribution.record_click("IBTEST", landing_page="", ip="203.0.113.9", user_agent="ua")
    assert await ReferralClick.count() == 4
    # Once the window has passed, this address's clicks are recorded again.
    await db.fetch("UPDATE referral_clicks SET clicked_at = clicked_at - interval '11 minutes'")
    client.cookies.clear()
    await follow(client, "IBTEST")
    assert await ReferralClick.count() == 5


async def test_a_visitor_over_the_limit_is_still_attributed_by_their_latest_click(
    client, personas, monkeypatch
):
    monkeypatch.setattr(attribution, "CLICK_LIMIT", 1)
    await follow(client, "IBTEST")
    [click] = await ReferralClick.select()
    client.cookies.clear()
    await follow(client, "IBTEST")  # over the limit: no row, the same click's token
    r = await post_form(client, "/portal/register", FORM)
    assert r.status_code == 303
    row = await attribution_of(FORM["email"])
    assert row is not None and row["source"] == "link" and row["click"] == click["id"]
    assert await ReferralClick.count() == 1


async def test_simultaneous_clicks_from_one_address_cannot_slip_past_the_limit(personas, monkeypatch):
    monkeypatch.setattr(attribution, "CLICK_LIMIT", 3)
    tokens = await asyncio.gather(
        *(
            attribution.record_click("IBTEST", landing_page="", ip="198.51.100.7", user_agent="bot")
            for _ in range(12)
        )
    )
    assert all(tokens)
    assert await ReferralClick.count() == 3
