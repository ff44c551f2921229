"""The lead API and the landing-page form: a valid lead becomes a client at stage `lead` (or joins
the person already known by e-mail or phone); every bad request is refused precisely, storing nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from app.clients.tables import Client
from app.core.audit import Actor
from app.core.db import fetch
from app.core.tables import AuditEvent
from app.integrations import services as keys
from app.integrations.tables import ApiKey
from app.leads.tables import LeadSource
from app.settings import use_settings
from tests.conftest import test_settings as settings_for

SYSTEM = Actor.system("pytest")

LEAD = {
    "first_name": "Maria",
    "last_name": "García",
    "email": "Maria.Garcia@Example.com",
    "phone": "030 901820",
    "country": "DEU",
    "language": "de",
    "campaign": "spring-2026",
    "utm_source": "google",
    "utm_medium": "cpc",
    "utm_campaign": "spring",
    "utm_term": "forex broker",
    "utm_content": "banner-a",
    "landing_page": "https://example.com/de/start",
    "referring_ib_code": "IBTEST",
    "account_type_interest": "ECN",
}


async def away_from_a_minute_boundary() -> None:
    """Rate-limit windows are calendar minutes: don't let a test's burst straddle two of them."""
    second = (await fetch("SELECT extract(second FROM now())::float AS s"))[0]["s"]
    if second > 55:
        await asyncio.sleep(61 - second)


@pytest.fixture
async def api_key(database) -> str:
    return (await keys.create_api_key("Website", ["leads:write"], SYSTEM, by_staff_id=None))[1]


@pytest.fixture
async def form_key(database) -> str:
    return (await keys.create_api_key("Landing page", ["leads:form"], SYSTEM, by_staff_id=None))[1]


async def stored() -> tuple[int, int, int, int]:
    return (await Client.count(), await LeadSource.count(), await AuditEvent.count(), await ApiKey.count())


async def post_lead(client, key: str | None, body) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["X-API-Key"] = key
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post("/api/v1/leads", content=content, headers=headers)


async def test_a_valid_lead_becomes_a_client_at_stage_lead_with_its_source(client, api_key):
    r = await post_lead(client, api_key, LEAD)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "created"
    row = await Client.select().where(Client.id == body["id"]).first()
    assert row["stage"] == "lead" and row["password_hash"] is None
    assert row["email"] == "maria.garcia@example.com"
    assert row["phone"] == "+4930901820"
    assert (row["country"], row["language"]) == ("DE", "de")
    assert (row["first_name"], row["last_name"]) == ("Maria", "García")
    source = await LeadSource.select().where(LeadSource.client == body["id"]).first()
    key_row = await ApiKey.select().first()
    assert source["channel"] == "api" and source["api_key"] == key_row["id"]
    assert key_row["last_used_at"] is not None
    for name in ("campaign", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"):
        assert source[name] == LEAD[name]
    assert source["landing_page"] == LEAD["landing_page"] and source["referring_ib_code"] == "IBTEST"
    assert source["account_type_interest"] == "ECN"
    event = await AuditEvent.select().where(AuditEvent.action == "lead.captured").first()
    assert event["subject_id"] == str(body["id"]) and event["actor_kind"] == "api_key"


async def test_a_country_may_be_given_by_its_english_name_or_alpha_2_code(client, api_key):
    for i, country in enumerate(("Germany", "de", "united kingdom")):
        r = await post_lead(
            client,
            api_key,
            {"first_name": "A", "last_name": "B", "email": f"c{i}@example.com", "country": country},
        )
        assert r.status_code == 201, r.text
    countries = [r["country"] for r in await Client.select(Client.country).order_by(Client.id)]
    assert countries[-3:] == ["DE", "DE", "GB"]


@pytest.mark.parametrize(
    "duplicate",
    [
        {"email": "MARIA.garcia@example.COM", "phone": ""},
        {"email": "someone.else@example.com", "phone": "+49 30 901820"},
        {"email": "someone.else@example.com", "phone": "(030) 90-18-20", "country": "DE"},
    ],
    ids=["same e-mail in another case", "same phone in international format", "same phone with punctuation"],
)
async def test_a_lead_already_known_by_email_or_phone_is_merged_not_duplicated(client, api_key, duplicate):
    first = (await post_lead(client, api_key, LEAD)).json()
    before = await stored()
    r = await post_lead(
        client, api_key, {**LEAD, **duplicate, "campaign": "autumn", "utm_source": "facebook"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"id": first["id"], "status": "merged"}
    clients, sources, events, _ = await stored()
    assert (clients, sources, events) == (before[0], before[1] + 1, before[2] + 1)
    campaigns = [
        s["campaign"]
        for s in await LeadSource.select(LeadSource.campaign)
        .where(LeadSource.client == first["id"])
        .order_by(LeadSource.id)
    ]
    assert campaigns == ["spring-2026", "autumn"]
    assert await AuditEvent.count().where(AuditEvent.action == "lead.merged") == 1


async def test_a_lead_with_a_registered_clients_email_joins_that_client(client, api_key, personas):
    known = personas["client_a"]
    r = await post_lead(client, api_key, {**LEAD, "email": known.email.upper(), "phone": ""})
    assert r.status_code == 200 and r.json() == {"id": known.id, "status": "merged"}
    row = await Client.select(Client.stage).where(Client.id == known.id).first()
    assert row["stage"] == "registered"  # a capture never moves a client back to `lead`


def fields_error(status: int, fields: dict) -> tuple[int, str, dict]:
    return status, "invalid_fields", fields


BAD = [
    ("malformed JSON", b'{"first_name": "Maria",', 400, "malformed_json", None),
    ("not an object", b"[1, 2]", 400, "invalid_body", {}),
    ("unknown field", {**LEAD, "fax": "123"}, 400, "unknown_field", {"fax": "Unknown field."}),
    ("invalid e-mail", {**LEAD, "email": "maria@"}, 422, "invalid_fields", ["email"]),
    ("invalid phone", {**LEAD, "phone": "12345"}, 422, "invalid_fields", ["phone"]),
    (
        "phone without country",
        {**LEAD, "phone": "030 901820", "country": ""},
        422,
        "invalid_fields",
        ["phone"],
    ),
    (
        "invalid country",
        {**LEAD, "country": "Atlantis", "phone": "+49 30 901820"},
        422,
        "invalid_fields",
        ["country"],
    ),
    (
        "numeric country",
        {**LEAD, "country": "276", "phone": "+49 30 901820"},
        422,
        "invalid_fields",
        ["country"],
    ),
    ("invalid language", {**LEAD, "language": "xx"}, 422, "invalid_fields", ["language"]),
    ("missing names", {"email": "a@example.com"}, 422, "invalid_fields", ["first_name"]),
    (
        "blank names",
        {**LEAD, "first_name": " ", "last_name": ""},
        422,
        "invalid_fields",
        ["first_name", "last_name"],
    ),
    ("wrong type", {**LEAD, "phone": 4930901820}, 422, "invalid_fields", ["phone"]),
    ("too long", {**LEAD, "utm_source": "x" * 201}, 422, "invalid_fields", ["utm_source"]),
    ("relative landing page", {**LEAD, "landing_page": "/de/start"}, 422, "invalid_fields", ["landing_page"]),
]


@pytest.mark.parametrize(("body", "status", "code", "fields"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_input_is_refused_precisely_and_nothing_is_stored(
    client, api_key, body, status, code, fields
):
    before = await stored()
    r = await post_lead(client, api_key, body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    payload = r.json()
    assert payload["error"] == code and payload["detail"]
    if isinstance(fields, dict):
        assert payload["fields"] == fields
    elif isinstance(fields, list):
        assert sorted(payload["fields"]) == sorted(fields)
        assert all(payload["fields"].values())
    assert await stored() == before


async def test_a_wrong_type_error_names_the_field_and_the_problem(client, api_key):
    r = await post_lead(client, api_key, {**LEAD, "phone": 4930901820})
    assert r.json()["fields"] == {"phone": "Expected `str`, got `int`"}


async def test_invalid_values_are_all_reported_at_once(client, api_key):
    r = await post_lead(
        client, api_key, {**LEAD, "email": "x", "phone": "1", "country": "ZZZ", "language": "zz"}
    )
    assert r.status_code == 422
    assert sorted(r.json()["fields"]) == ["country", "email", "language", "phone"]


async def test_key_problems_are_refused_precisely_and_nothing_is_stored(client, api_key, form_key):
    revoked_id, revoked = await keys.create_api_key("Old site", ["leads:write"], SYSTEM, by_staff_id=None)
    await keys.revoke_api_key(revoked_id, SYSTEM)
    cases = [
        (None, 401, "missing_api_key"),
        ("", 401, "missing_api_key"),
        ("fx_" + "a" * 43, 401, "invalid_api_key"),
        (revoked, 401, "revoked_api_key"),
        (form_key, 403, "insufficient_scope"),
    ]
    before = await stored()
    for key, status, code in cases:
        # A bad body too: the key is checked first, so the answer is about the key.
        for body in (LEAD, b"{not json"):
            r = await post_lead(client, key, body)
            assert (r.status_code, r.json()["error"]) == (status, code), (key, body)
            assert r.json()["fields"] == {} and r.json()["detail"]
    assert await stored() == before


@pytest.fixture
async def limited_client(database) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a limit of 3 requests a minute per key."""
    from app.asgi import create_app

    settings = settings_for(database, API_RATE_LIMIT_PER_MINUTE="3")
    use_settings(settings)
    app = create_app(settings, start_queue=False)
    for hook in app.on_startup:
        await hook()
    try:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as c:
            yield c
    finally:
        for hook in app.on_shutdown:
            await hook()


async def test_over_the_rate_limit_a_key_gets_429_with_retry_after_and_nothing_is_stored(
    limited_client, api_key, form_key
):
    other_id, other = await keys.create_api_key("Other site", ["leads:write"], SYSTEM, by_staff_id=None)
    await away_from_a_minute_boundary()
    for i in range(3):
        r = await post_lead(limited_client, api_key, {**LEAD, "email": f"lead{i}@example.com", "phone": ""})
        assert r.status_code == 201, r.text
    before = await stored()
    r = await post_lead(limited_client, api_key, {**LEAD, "email": "lead4@example.com", "phone": ""})
    assert r.status_code == 429
    assert r.json()["error"] == "rate_limited" and r.json()["fields"] == {}
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert await stored() == before
    # Another key has its own allowance.
    r = await post_lead(limited_client, other, {**LEAD, "email": "lead5@example.com", "phone": ""})
    assert r.status_code == 201
    # The form endpoint counts the same way.
    for _ in range(3):
        r = await limited_client.post(
            "/api/v1/leads/form", data={**LEAD, "email": "form@example.com", "api_key": form_key}
        )
        assert r.status_code == 200
    r = await limited_client.post(
        "/api/v1/leads/form", data={**LEAD, "email": "form@example.com", "api_key": form_key}
    )
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60


async def test_the_form_endpoint_creates_a_lead_and_thanks_the_visitor(client, form_key):
    r = await client.post("/api/v1/leads/form", data={**LEAD, "api_key": form_key, "submit": "Send"})
    assert r.status_code == 200, r.text
    assert "Thank you" in r.text and "<html" in r.text
    row = await Client.select().first()
    assert (row["stage"], row["phone"], row["country"]) == ("lead", "+4930901820", "DE")
    source = await LeadSource.select().first()
    assert source["channel"] == "form" and source["utm_campaign"] == "spring"


async def test_the_form_endpoint_redirects_only_to_an_absolute_http_address(client, form_key):
    data = {**LEAD, "api_key": form_key}
    r = await client.post("/api/v1/leads/form", data={**data, "redirect": "https://example.com/thanks?x=1"})
    assert r.status_code == 303 and r.headers["location"] == "https://example.com/thanks?x=1"
    for bad in ("javascript:alert(1)", "/portal", "//evil.example"):
        r = await client.post("/api/v1/leads/form", data={**data, "redirect": bad})
        assert r.status_code == 200 and "Thank you" in r.text, bad
    assert await Client.count() == 1 and await LeadSource.count() == 4


async def test_the_form_endpoint_lists_the_problems_and_stores_nothing(client, form_key, api_key):
    before = await stored()
    r = await client.post(
        "/api/v1/leads/form", data={**LEAD, "email": "nope", "phone": "12", "api_key": form_key}
    )
    assert r.status_code == 422
    assert "valid e-mail address" in r.text and "valid phone number" in r.text
    for key, status, phrase in (
        (None, 401, "API key"),
        ("fx_wrong", 401, "not valid"),
        (api_key, 403, "leads:form"),
    ):
        data = {**LEAD, **({"api_key": key} if key else {})}
        r = await client.post("/api/v1/leads/form", data=data)
        assert r.status_code == status and phrase in r.text, key
    assert await stored() == before


async def test_the_openapi_schema_documents_the_lead_api(client):
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    op = schema["paths"]["/api/v1/leads"]["post"]
    assert op["tags"] == ["Leads"]
    assert op["security"] == [{"ApiKey": []}]
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "name": "X-API-Key",
        "in": "header",
    }
    assert {"200", "201", "400", "401", "403", "422", "429"} <= set(op["responses"])
    body = op["requestBody"]["content"]["application/json"]["schema"]
    ref = body["$ref"].rsplit("/", 1)[-1]
    props = schema["components"]["schemas"][ref]["properties"]
    assert {"first_name", "email", "phone", "country", "utm_source", "referring_ib_code"} <= set(props)
    assert not any(p.startswith("/staff") or p.startswith("/portal") for p in schema["paths"])


async def test_simultaneous_posts_of_the_same_person_create_one_client(client, api_key):
    bodies = [{**LEAD, "email": f"Same.Person@Example.com{' ' * i}"} for i in range(4)]
    answers = await asyncio.gather(*(post_lead(client, api_key, b) for b in bodies))
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in answers}) == 1
    assert await Client.count() == 1 and await LeadSource.count() == 4
