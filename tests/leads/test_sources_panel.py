"""The client page's lead-sources panel: every capture of the client, newest first, with the key
or form it came through and its marketing parameters; invisible to whoever may not see the client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.core.audit import Actor
from app.core.db import fetch
from app.core.errors import NotFound
from app.integrations import services as keys
from app.leads import services
from app.leads.services import LeadData, capture_lead
from tests.personas import principal_of, sign_in

SYSTEM = Actor.system("pytest")


as_principal = principal_of  # the shared persona-to-Principal helper


@pytest.fixture
async def captured(personas) -> int:
    """A lead captured by the website's API, then again by a landing-page form a day later."""
    key_id, _ = await keys.create_api_key("Main website", ["leads:write"], SYSTEM, by_staff_id=None)
    form_key_id, _ = await keys.create_api_key("Gold landing page", ["leads:form"], SYSTEM, by_staff_id=None)
    first = LeadData(
        first_name="Lena",
        last_name="Vogel",
        email="lena.vogel@example.com",
        country="DE",
        campaign="spring-2026",
        utm_source="google",
        utm_medium="cpc",
        utm_term="forex <broker>",
        landing_page="https://broker.example/de/start",
        account_type_interest="ECN",
    )
    client_id, created = await capture_lead(first, channel="api", api_key_id=key_id, actor=SYSTEM)
    assert created
    second = LeadData(
        first_name="Lena",
        last_name="Vogel",
        email="LENA.VOGEL@example.com",
        campaign="gold-week",
        utm_source="newsletter",
        referring_ib_code="IBTEST",
    )
    again, created = await capture_lead(second, channel="form", api_key_id=form_key_id, actor=SYSTEM)
    assert again == client_id and not created
    # The API capture happened yesterday: newest first must not mean "highest id first" by luck.
    await fetch(
        "UPDATE lead_sources SET created_at = {} WHERE client = {} AND channel = 'api'",
        datetime.now(UTC) - timedelta(days=1),
        client_id,
    )
    # Routed when captured; the desk-scoped agent owns it from now on.
    await fetch(
        "UPDATE routing_assignments SET owner = {} WHERE client = {}", personas["sales"].id, client_id
    )
    return client_id


async def test_it_lists_every_capture_newest_first_with_its_source(personas, captured):
    rows = await services.sources_for(as_principal(personas["admin"]), captured)
    assert [r["channel"] for r in rows] == ["form", "api"]
    form, api = rows
    assert form["api_key_name"] == "Gold landing page" and form["campaign"] == "gold-week"
    assert form["referring_ib_code"] == "IBTEST" and form["utm_source"] == "newsletter"
    assert api["api_key_name"] == "Main website" and api["utm_medium"] == "cpc"
    assert api["landing_page"] == "https://broker.example/de/start" and api["account_type_interest"] == "ECN"


async def test_the_panel_is_a_fragment_for_htmx_and_a_page_otherwise(client, personas, captured):
    await sign_in(client, personas["sales"])
    r = await client.get(f"/staff/clients/{captured}/sources", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text.lower()
    text = r.text
    assert text.index("Landing-page form") < text.index("Lead API")
    assert "key “Gold landing page”" in text and "key “Main website”" in text
    assert "utm=" not in text and "source=google, medium=cpc, term=forex &lt;broker&gt;" in text
    assert "IB code: IBTEST" in text and "Account type: ECN" in text
    assert "https://broker.example/de/start" in text and "Campaign: gold-week" in text
    page = await client.get(f"/staff/clients/{captured}/sources")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert 'id="sources-panel"' in page.text and "Main website" in page.text


async def test_the_client_page_loads_the_panel_as_a_fragment(client, personas, captured):
    await sign_in(client, personas["admin"])
    r = await client.get(f"/staff/clients/{captured}")
    assert r.status_code == 200
    assert f'hx-get="/staff/clients/{captured}/sources"' in r.text and 'id="sources-panel"' in r.text


async def test_a_client_without_captures_says_so(client, personas):
    await sign_in(client, personas["admin"])
    r = await client.get(f"/staff/clients/{personas['client_a'].id}/sources", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "No captures" in r.text


async def test_a_deleted_key_leaves_the_capture_listed(client, personas, captured):
    await fetch("DELETE FROM api_key_windows")
    await fetch("DELETE FROM api_keys WHERE name = 'Main website'")
    await sign_in(client, personas["admin"])
    r = await client.get(f"/staff/clients/{captured}/sources", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "key since deleted" in r.text and "Lead API" in r.text


async def test_whoever_may_not_see_the_client_gets_404(client, personas, captured):
    b = personas["client_b"].id
    with pytest.raises(NotFound):
        await services.sources_for(as_principal(personas["sales"]), b)
    with pytest.raises(NotFound):
        await services.sources_for(as_principal(personas["client_a"]), personas["client_a"].id)
    await sign_in(client, personas["sales"])
    for headers in ({"HX-Request": "true"}, {}):
        assert (await client.get(f"/staff/clients/{b}/sources", headers=headers)).status_code == 404
        assert (await client.get(f"/staff/clients/{captured}/sources", headers=headers)).status_code == 200
        assert (await client.get("/staff/clients/999999/sources", headers=headers)).status_code == 404
