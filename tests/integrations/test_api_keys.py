"""API keys: shown once and stored hashed, scoped, revocable, rate-limited; admins manage them."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from app.core.audit import Actor
from app.core.tables import AuditEvent
from app.integrations import services
from app.integrations.services import ApiKeyError
from app.integrations.tables import ApiKey
from app.settings import SettingsError, use_settings
from tests.conftest import post_form
from tests.conftest import test_settings as settings_for
from tests.personas import sign_in

KEY_RE = re.compile(r'id="new-api-key" readonly value="(fx_[A-Za-z0-9_-]+)"')
SYSTEM = Actor.system("pytest")


async def test_an_admin_creates_a_key_that_is_shown_once_and_stored_only_as_its_hash(client, personas):
    await sign_in(client, personas["admin"])
    r = await post_form(
        client,
        "/staff/settings/api-keys/new",
        {"name": "Spanish landing page", "scopes": ["leads:write", "leads:form"]},
    )
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    key = KEY_RE.search(r.text).group(1)
    assert len(key) > 40
    row = await ApiKey.select().where(ApiKey.name == "Spanish landing page").first()
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["prefix"] == key[:8]
    assert sorted(row["scopes"]) == ["leads:form", "leads:write"]
    assert row["created_by"] == personas["admin"].id
    assert key not in json.dumps(row, default=str)
    event = await AuditEvent.select().where(AuditEvent.action == "api_key.created").first()
    assert event["subject_id"] == str(row["id"]) and event["actor_id"] == str(personas["admin"].id)
    assert key not in json.dumps(event, default=str) and key[:8] in json.dumps(event, default=str)
    listing = await client.get("/staff/settings/api-keys")
    assert listing.status_code == 200
    assert "Spanish landing page" in listing.text and key[:8] in listing.text
    assert key not in listing.text
    assert (await services.authenticate(key, "leads:write")).id == row["id"]


async def test_a_key_needs_a_name_and_a_known_permission(client, personas):
    await sign_in(client, personas["admin"])
    r = await post_form(client, "/staff/settings/api-keys/new", {"name": "", "scopes": "admin:all"})
    assert r.status_code == 422
    assert "Give the key a name" in r.text and "Unknown permission" in r.text
    r = await post_form(client, "/staff/settings/api-keys/new", {"name": "No scopes"})
    assert r.status_code == 422 and "Choose at least one permission" in r.text
    assert await ApiKey.count() == 0
    assert await AuditEvent.count().where(AuditEvent.action == "api_key.created") == 0


async def test_an_admin_revokes_a_key_and_it_stops_working_at_once(client, personas):
    key_id, key = await services.create_api_key("Site", ["leads:write"], SYSTEM, by_staff_id=None)
    await services.authenticate(key, "leads:write")
    await sign_in(client, personas["admin"])
    r = await post_form(
        client, f"/staff/settings/api-keys/{key_id}/revoke", {}, page="/staff/settings/api-keys"
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/settings/api-keys"
    assert (await ApiKey.select(ApiKey.revoked_at).where(ApiKey.id == key_id).first())["revoked_at"]
    with pytest.raises(ApiKeyError) as err:
        await services.authenticate(key, "leads:write")
    assert (err.value.code, err.value.status) == ("revoked_api_key", 401)
    assert await AuditEvent.count().where(AuditEvent.action == "api_key.revoked") == 1
    listing = await client.get("/staff/settings/api-keys")
    assert "revoked" in listing.text and f"/staff/settings/api-keys/{key_id}/revoke" not in listing.text
    fragment = await client.get("/staff/settings/api-keys", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and key[:8] in fragment.text


async def test_revoking_an_unknown_key_is_a_404(client, personas):
    await sign_in(client, personas["admin"])
    r = await post_form(client, "/staff/settings/api-keys/999/revoke", {}, page="/staff/settings/api-keys")
    assert r.status_code == 404


async def test_a_key_works_only_for_its_scopes(database):
    _, form_key = await services.create_api_key("Landing", ["leads:form"], SYSTEM, by_staff_id=None)
    assert (await services.authenticate(form_key, "leads:form")).scopes == ("leads:form",)
    with pytest.raises(ApiKeyError) as err:
        await services.authenticate(form_key, "leads:write")
    assert (err.value.code, err.value.status) == ("insufficient_scope", 403)


@pytest.mark.parametrize(
    ("key", "code"),
    [(None, "missing_api_key"), ("", "missing_api_key"), ("fx_not-a-real-key", "invalid_api_key")],
)
async def test_a_missing_or_unknown_key_is_refused(database, key, code):
    with pytest.raises(ApiKeyError) as err:
        await services.authenticate(key, "leads:write")
    assert (err.value.code, err.value.status) == (code, 401)


async def test_a_key_is_limited_per_minute_by_the_setting(database):
    use_settings(settings_for(database, API_RATE_LIMIT_PER_MINUTE="3"))
    from tests.leads.test_api import away_from_a_minute_boundary

    key_id, key = await services.create_api_key("Busy", ["leads:write"], SYSTEM, by_staff_id=None)
    await away_from_a_minute_boundary()
    for _ in range(3):
        await services.authenticate(key, "leads:write")
    with pytest.raises(ApiKeyError) as err:
        await services.authenticate(key, "leads:write")
    assert (err.value.code, err.value.status) == ("rate_limited", 429)
    assert 1 <= err.value.retry_after <= 60
    row = await ApiKey.select(ApiKey.last_used_at).where(ApiKey.id == key_id).first()
    assert row["last_used_at"] is not None


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "1.5"])
def test_the_rate_limit_setting_is_parsed_strictly(raw):
    with pytest.raises(SettingsError, match="API_RATE_LIMIT_PER_MINUTE"):
        settings_for("postgresql://x/y", API_RATE_LIMIT_PER_MINUTE=raw)


def test_the_rate_limit_defaults_to_120_a_minute():
    assert settings_for("postgresql://x/y").api_rate_limit_per_minute == 120


@pytest.mark.parametrize("persona", ["compliance", "finance", "sales", "dealing"])
async def test_only_admins_reach_the_api_key_pages(client, personas, persona):
    _, key = await services.create_api_key("Site", ["leads:write"], SYSTEM, by_staff_id=None)
    await sign_in(client, personas[persona])
    for url in ("/staff/settings/api-keys", "/staff/settings/api-keys/new"):
        r = await client.get(url)
        assert r.status_code == 403 and key[:8] not in r.text
    await sign_in(client, personas["admin"])
    assert (await client.get("/staff/settings/api-keys/new")).status_code == 200
