"""What an individual declares for KYC, and what a change sets off (screening, risk)."""

from __future__ import annotations

import json
from datetime import date, timedelta

from app.core import db
from app.core.tables import AuditEvent
from app.kyc.tables import KycProfile
from tests.conftest import post_form
from tests.kyc.test_levels import approve
from tests.personas import sign_in


def details(**over: str) -> dict[str, str]:
    return {
        "first_name": "Anna",
        "last_name": "Schmidt",
        "date_of_birth": "1985-04-12",
        "nationality": "DE",
        "address": "Hauptstr. 1, 10115 Berlin",
        **over,
    }


async def test_a_client_declares_their_details_and_a_name_change_is_screened_again(client, personas, app):
    a = personas["client_a"]
    await sign_in(client, a)
    page = await client.get("/portal/details")
    assert page.status_code == 200 and 'name="date_of_birth"' in page.text
    r = await post_form(client, "/portal/details", details(), page="/portal/details")
    assert r.status_code == 303
    profile = await KycProfile.select().where(KycProfile.client == a.id).first()
    assert (profile["date_of_birth"], profile["nationality"]) == (date(1985, 4, 12), "DE")
    name = await db.fetchrow("SELECT first_name, last_name FROM clients WHERE id = $1", a.id)
    assert (name["first_name"], name["last_name"]) == ("Anna", "Schmidt")
    event = await AuditEvent.select().where(AuditEvent.action == "kyc.details_changed").first()
    assert json.loads(event["after"])["date_of_birth"] == "1985-04-12"
    r = await post_form(
        client, "/portal/details", details(address="Elsewhere 2"), page="/portal/details", htmx=True
    )
    assert (
        r.status_code == 200
        and "Saved." in r.text
        and 'id="details-card"' in r.text
        and "<html" not in r.text
    )
    assert await AuditEvent.count().where(AuditEvent.action == "kyc.details_changed") == 2
    assert await db.fetchrow("SELECT risk FROM kyc_profiles WHERE client = $1", a.id) is not None


async def test_bad_details_are_refused_with_reasons_and_nothing_changes(client, personas):
    a = personas["client_a"]
    await sign_in(client, a)
    young = (date.today() - timedelta(days=365 * 17)).isoformat()
    r = await post_form(
        client,
        "/portal/details",
        details(first_name=" ", date_of_birth=young, nationality="XX", address=""),
        page="/portal/details",
    )
    assert r.status_code == 422
    for message in (
        "Enter your first name",
        "You must be at least 18",
        "Choose your nationality.",
        "Enter your home address",
    ):
        assert message in r.text
    assert 'value="Schmidt"' in r.text  # what was typed is kept
    assert await AuditEvent.count().where(AuditEvent.action == "kyc.details_changed") == 0


async def test_name_and_birth_date_lock_once_identity_is_approved(client, personas):
    a = personas["client_a"]
    await sign_in(client, a)
    await post_form(client, "/portal/details", details(), page="/portal/details")
    await approve(a.id, "passport")
    page = (await client.get("/portal/details")).text
    assert "your name and date of birth are fixed" in page and 'name="first_name"' not in page
    r = await post_form(
        client, "/portal/details", details(first_name="Someone", nationality="AT"), page="/portal/details"
    )
    assert r.status_code == 303
    name = await db.fetchrow("SELECT first_name FROM clients WHERE id = $1", a.id)
    assert name["first_name"] == "Anna"  # ignored: the document proves the name
    assert (await KycProfile.select().where(KycProfile.client == a.id).first())["nationality"] == "AT"


async def test_screening_uses_the_declared_birth_date(personas, monkeypatch):
    from app.kyc import personal
    from app.screening import services as screening
    from tests.kyc.test_documents import principal

    p = principal(personas["client_a"])
    await personal.save_details(p, details(), p.actor("127.0.0.1", "pytest"))
    seen = {}

    async def spy(screened, actor, **kw):
        seen["dob"] = screened[0].subject.dob
        seen["nationalities"] = screened[0].subject.nationalities
        return screening.ScreenResult(hits=[], case_ids=[], list_ids=[])

    monkeypatch.setattr(screening, "screen_subjects", spy)  # what screening is asked, not its lists
    await screening.screen_client(p.id, p.actor("127.0.0.1", "pytest"))
    assert seen == {"dob": "1985-04-12", "nationalities": ("DE",)}
