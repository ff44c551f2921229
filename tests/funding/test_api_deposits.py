"""The funding API's deposits and wallets, and what every money-moving endpoint shares: API-key
scopes, the Idempotency-Key (missing → 400, replay → the first response, reused → 422, per key),
and bad amounts refused field by field before anything is stored."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import pytest

from app.core import db
from app.funding import ledger
from app.funding.providers import base
from app.funding.providers.simcard import SimCardProvider
from tests.funding.api_support import api_key, at_level, call, count, method
from tests.funding.simcard_support import _pay_sim_process, pay_sim  # noqa: F401 (fixtures)
from tests.funding.support import deposit as book_deposit
from tests.servers import free_port

BODY = {"method_id": 0, "amount": "100.00", "currency": "USD"}


@pytest.fixture
async def world(personas):
    client_id = await at_level(personas["client_a"].id, 2)
    return {
        "client_id": client_id,
        "method_id": await method(personas["finance"]),
        "write": await api_key("funding:write", "funding:read"),
        "read": await api_key("funding:read", name="Reporting"),
    }


def body(world, **changes):
    return {**BODY, "method_id": world["method_id"], **changes}


def deposits_of(world):
    return f"/clients/{world['client_id']}/deposits"


async def test_a_deposit_is_created_and_described(client, world):
    r = await call(client, deposits_of(world), body(world), key=world["write"])
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "created" and out["reference"].startswith("D")
    assert (out["amount"], out["currency"], out["client_id"]) == ("100.00", "USD", world["client_id"])
    assert "Idempotent-Replayed" not in r.headers
    got = await call(client, f"/deposits/{out['id']}", key=world["read"], method="GET")
    assert got.status_code == 200 and got.json()["reference"] == out["reference"]


async def test_a_replay_returns_the_identical_first_response_and_creates_one_deposit(client, world):
    key = uuid.uuid4().hex
    first = await call(client, deposits_of(world), body(world), key=world["write"], idem=key)
    again = await call(client, deposits_of(world), body(world), key=world["write"], idem=key)
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await count("funding_deposits") == 1


async def test_the_same_key_with_a_different_body_is_refused(client, world):
    key = uuid.uuid4().hex
    await call(client, deposits_of(world), body(world), key=world["write"], idem=key)
    r = await call(client, deposits_of(world), body(world, amount="200.00"), key=world["write"], idem=key)
    assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"
    assert await count("funding_deposits") == 1


@pytest.mark.parametrize(
    "idem, code", [(None, "idempotency_key_missing"), ("x" * 201, "idempotency_key_invalid")]
)
async def test_a_missing_or_malformed_idempotency_key_is_a_400_and_stores_nothing(client, world, idem, code):
    r = await call(client, deposits_of(world), body(world), key=world["write"], idem=idem)
    assert r.status_code == 400 and r.json()["error"] == code
    assert "Idempotency-Key" in r.json()["detail"]
    assert await count("funding_deposits") == 0 and await count("funding_idempotent_requests") == 0


async def test_a_key_is_per_api_key(client, world):
    other = await api_key("funding:write", name="Second integration")
    key = uuid.uuid4().hex
    a = await call(client, deposits_of(world), body(world), key=world["write"], idem=key)
    b = await call(client, deposits_of(world), body(world), key=other, idem=key)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"] and "Idempotent-Replayed" not in b.headers
    assert await count("funding_deposits") == 2


async def test_concurrent_identical_requests_create_one_deposit(client, world):
    key = uuid.uuid4().hex
    results = await asyncio.gather(
        *(call(client, deposits_of(world), body(world), key=world["write"], idem=key) for _ in range(4))
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    firsts = {r.content for r in results if r.status_code == 201}
    assert len(firsts) == 1
    for r in results:
        if r.status_code == 409:
            assert r.json()["error"] == "request_in_progress" and r.headers["Retry-After"] == "1"
    assert await count("funding_deposits") == 1


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"amount": "-10.00"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "10.005"}, "amount"),
        ({"amount": "1e3"}, "amount"),
        ({"amount": ""}, "amount"),
        ({"currency": "XXX"}, "currency"),
        ({"currency": "GBP"}, "currency"),  # a real currency the method does not take
        ({"amount": "60000.00"}, "amount"),  # over the method's maximum
    ],
)
async def test_bad_amounts_are_refused_with_field_errors_and_create_nothing(client, world, changes, field):
    r = await call(client, deposits_of(world), body(world, **changes), key=world["write"])
    assert r.status_code == 422, r.text
    out = r.json()
    assert out["error"] == "invalid_fields" and field in out["fields"] and out["detail"]
    assert await count("funding_deposits") == 0


async def test_a_refusal_by_the_service_is_replayed_with_the_same_key(client, world):
    key = uuid.uuid4().hex
    first = await call(
        client, deposits_of(world), body(world, amount="60000.00"), key=world["write"], idem=key
    )
    again = await call(
        client, deposits_of(world), body(world, amount="60000.00"), key=world["write"], idem=key
    )
    assert first.status_code == 422 and (again.status_code, again.content) == (422, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_a_number_where_a_string_amount_belongs_and_unknown_fields_are_refused(client, world):
    r = await call(client, deposits_of(world), body(world, amount=100.5), key=world["write"])
    assert r.status_code == 422 and "amount" in r.json()["fields"]
    r = await call(client, deposits_of(world), body(world, fee="0"), key=world["write"])
    assert r.status_code == 400 and r.json()["error"] == "unknown_field"
    r = await call(client, deposits_of(world), b"{not json", key=world["write"])
    assert r.status_code == 400 and r.json()["error"] == "malformed_json"
    assert await count("funding_deposits") == 0 and await count("funding_idempotent_requests") == 0


@pytest.mark.parametrize(
    "which, status, error", [("none", 401, "missing_api_key"), ("bogus", 401, "invalid_api_key"),
                             ("read", 403, "insufficient_scope"), ("leads", 403, "insufficient_scope")],
)  # fmt: skip
async def test_writing_needs_a_valid_key_with_the_write_scope(client, world, which, status, error):
    key = {"none": None, "bogus": "fx_nope", "read": world["read"], "leads": await api_key("leads:write")}[
        which
    ]
    r = await call(client, deposits_of(world), body(world), key=key)
    assert (r.status_code, r.json()["error"]) == (status, error)
    assert await count("funding_deposits") == 0


async def test_reading_needs_the_read_scope(client, world):
    writer_only = await api_key("funding:write", name="Writer")
    r = await call(client, f"/clients/{world['client_id']}/wallets", key=writer_only, method="GET")
    assert (r.status_code, r.json()["error"]) == (403, "insufficient_scope")


async def test_a_client_that_does_not_exist_is_a_404(client, world):
    r = await call(client, "/clients/999999/deposits", body(world), key=world["write"])
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await call(client, "/clients/999999/wallets", key=world["read"], method="GET")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await call(client, "/deposits/999999", key=world["read"], method="GET")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_a_client_without_the_deposits_right_is_refused_with_the_reason(client, world, personas):
    await at_level(personas["client_b"].id, 0)
    r = await call(client, f"/clients/{personas['client_b'].id}/deposits", body(world), key=world["write"])
    assert (
        r.status_code == 403 and r.json()["error"] == "right_denied" and "verification" in r.json()["detail"]
    )
    assert await count("funding_deposits") == 0


async def test_wallets_show_balances_as_strings(client, world):
    wallet = await ledger.wallet_for(world["client_id"], "USD")
    assert wallet is not None
    await book_deposit(wallet, Decimal("250.50"))
    r = await call(client, f"/clients/{world['client_id']}/wallets", key=world["read"], method="GET")
    assert r.status_code == 200
    assert r.json() == {
        "client_id": world["client_id"],
        "wallets": [{"currency": "USD", "balance": "250.50", "available": "250.50", "held": "0.00"}],
    }


async def test_the_api_is_documented_with_the_idempotency_key_header(client):
    schema = (await client.get("/schema/openapi.json")).json()
    op = schema["paths"]["/api/v1/funding/clients/{client_id}/deposits"]["post"]
    header = next(p for p in op["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and header["required"] is True
    assert {"400", "401", "403", "409", "422"} <= set(op["responses"])
    assert "Idempotent-Replayed" in json.dumps(op["responses"]["201"])


async def test_the_audit_trail_names_the_api_key_that_created_the_deposit(client, world):
    r = await call(client, deposits_of(world), body(world), key=world["write"])
    row = await db.fetchrow(
        "SELECT actor_kind, actor_label FROM audit_events WHERE action = 'funding.deposit.created' "
        "AND subject_id = $1",
        str(r.json()["id"]),
    )
    assert row is not None and row["actor_kind"] == "api_key" and "Back office" in row["actor_label"]


@pytest.fixture
async def card(world, personas):
    return await method(personas["finance"], name="Visa / Mastercard", kind="card", provider="simcard")


async def test_a_card_deposit_returns_the_hosted_payment_page_and_a_replay_the_same_one(
    client,
    world,
    card,
    pay_sim,  # noqa: F811 (the fixture)
):
    key = uuid.uuid4().hex
    r = await call(client, deposits_of(world), body(world, method_id=card), key=world["write"], idem=key)
    assert r.status_code == 201, r.text
    url = r.json()["redirect_url"]
    assert url and url.startswith(pay_sim.url)
    again = await call(client, deposits_of(world), body(world, method_id=card), key=world["write"], idem=key)
    assert again.content == r.content
    row = await db.fetchrow("SELECT provider_payment_id FROM funding_deposits WHERE id = $1", r.json()["id"])
    assert row is not None and row["provider_payment_id"]
    paid = await pay_sim.pay(url)
    assert paid.status_code in (200, 302, 303)


async def test_a_provider_outage_is_a_502_that_frees_the_key_for_a_retry_of_the_same_deposit(
    client,
    world,
    card,
    pay_sim,  # noqa: F811 (the fixture)
):
    key = uuid.uuid4().hex
    base.register(SimCardProvider(f"http://127.0.0.1:{free_port()}", pay_sim.api_key, pay_sim.webhook_secret))
    down = await call(client, deposits_of(world), body(world, method_id=card), key=world["write"], idem=key)
    assert down.status_code == 502 and down.json()["error"] == "provider_unavailable"
    assert await count("funding_idempotent_requests") == 0
    base.register(SimCardProvider(pay_sim.url, pay_sim.api_key, pay_sim.webhook_secret))
    up = await call(client, deposits_of(world), body(world, method_id=card), key=world["write"], idem=key)
    assert up.status_code == 201 and up.json()["redirect_url"]
    assert await count("funding_deposits") == 1


async def test_a_return_url_must_be_a_web_address(client, world, card):
    r = await call(
        client, deposits_of(world), body(world, method_id=card, return_url="javascript:x"), key=world["write"]
    )
    assert r.status_code == 422 and "return_url" in r.json()["fields"]
