"""Transfers through the funding API against the real MT5 simulator: however often a request is
replayed or raced, MT5 and the ledger see one movement, and both still agree."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from tests.funding.api_support import api_key, call, count
from tests.funding.support import ledger_totals
from tests.funding.transfer_support import account_ledger, fund, mt5_balance, new_client, open_live, wallet

CLEAN = {"unbalanced": 0, "stale": 0, "negative": 0}


@pytest.fixture
async def world(ops_server):
    client = await new_client()
    await fund(client.id, Decimal("1000"))
    return {
        "server": ops_server,
        "client_id": client.id,
        "account": await open_live(ops_server, client.id),
        "write": await api_key("funding:write", "funding:read"),
    }


def path(world) -> str:
    return f"/clients/{world['client_id']}/transfers"


def to_account(world, **changes):
    return {
        "kind": "wallet_to_account",
        "amount": "250.50",
        "currency": "USD",
        "to_account_id": world["account"]["id"],
        **changes,
    }


async def test_money_sent_to_an_account_arrives_on_mt5_and_in_the_ledger(client, world):
    r = await call(client, path(world), to_account(world), key=world["write"])
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["kind"], out["status"], out["amount"]) == ("wallet_to_account", "done", "250.50")
    assert await mt5_balance(world["server"], world["account"]["login"]) == Decimal("250.50")
    assert await account_ledger(world["account"]["id"]) == Decimal("250.50")
    got = await call(client, f"/transfers/{out['id']}", key=world["write"], method="GET")
    assert got.status_code == 200 and got.json()["status"] == "done"


async def test_a_replay_returns_the_first_response_and_moves_money_once(client, world):
    key = uuid.uuid4().hex
    first = await call(client, path(world), to_account(world), key=world["write"], idem=key)
    postings = await count("funding_postings")
    again = await call(client, path(world), to_account(world), key=world["write"], idem=key)
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await count("funding_postings") == postings and await count("funding_transfers") == 1
    assert await mt5_balance(world["server"], world["account"]["login"]) == Decimal("250.50")
    assert (await wallet(world["client_id"])).available == Decimal("749.50")


async def test_concurrent_identical_requests_move_money_once(client, world):
    key = uuid.uuid4().hex
    results = await asyncio.gather(
        *(call(client, path(world), to_account(world), key=world["write"], idem=key) for _ in range(3))
    )
    assert {r.status_code for r in results} <= {201, 409} and 201 in {r.status_code for r in results}
    assert len({r.content for r in results if r.status_code == 201}) == 1
    assert await count("funding_transfers") == 1
    assert await mt5_balance(world["server"], world["account"]["login"]) == Decimal("250.50")
    assert await account_ledger(world["account"]["id"]) == Decimal("250.50")
    assert await ledger_totals() == CLEAN


async def test_the_same_key_for_another_transfer_is_refused(client, world):
    key = uuid.uuid4().hex
    await call(client, path(world), to_account(world), key=world["write"], idem=key)
    r = await call(client, path(world), to_account(world, amount="1.00"), key=world["write"], idem=key)
    assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"
    assert await mt5_balance(world["server"], world["account"]["login"]) == Decimal("250.50")


async def test_money_comes_back_from_the_account(client, world):
    await call(client, path(world), to_account(world), key=world["write"])
    back = {
        "kind": "account_to_wallet",
        "amount": "50.50",
        "currency": "USD",
        "from_account_id": world["account"]["id"],
    }
    r = await call(client, path(world), back, key=world["write"])
    assert r.status_code == 201 and r.json()["status"] == "done", r.text
    assert (await wallet(world["client_id"])).available == Decimal("800.00")
    assert await mt5_balance(world["server"], world["account"]["login"]) == Decimal("200.00")


async def test_a_transfer_to_another_client_waits_for_approval_with_the_amount_held(client, world):
    recipient = await new_client()
    body = {"kind": "client_to_client", "amount": "100.00", "currency": "USD", "to_client_id": recipient.id}
    r = await call(client, path(world), body, key=world["write"])
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["to_client_id"]) == ("awaiting_approval", recipient.id)
    w = await wallet(world["client_id"])
    assert (w.available, w.held) == (Decimal("900.00"), Decimal("100.00"))


async def test_an_unknown_recipient_is_refused_without_saying_who_exists(client, world):
    body = {"kind": "client_to_client", "amount": "100.00", "currency": "USD", "to_client_id": 999999}
    r = await call(client, path(world), body, key=world["write"])
    assert r.status_code == 422 and "recipient" in r.json()["fields"]
    assert await count("funding_transfers") == 0


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"to_account_id": None}, "to_account_id"),
        ({"to_client_id": 5}, "to_client_id"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "1.234"}, "amount"),
        ({"currency": "EUR"}, "currency"),  # the account is in USD
    ],
)
async def test_bad_transfers_are_refused_field_by_field_and_move_nothing(client, world, changes, field):
    body = {k: v for k, v in to_account(world, **changes).items() if v is not None}
    r = await call(client, path(world), body, key=world["write"])
    assert r.status_code == 422 and field in r.json()["fields"], r.text
    assert await count("funding_transfers") == 0
    assert (await wallet(world["client_id"])).available == Decimal("1000.00")


async def test_another_clients_account_is_refused(client, world):
    other = await new_client()
    account = await open_live(world["server"], other.id)
    r = await call(client, path(world), to_account(world, to_account_id=account["id"]), key=world["write"])
    assert r.status_code in (404, 422) and r.json()["error"] in ("not_found", "invalid_fields")
    assert await count("funding_transfers") == 0


async def test_an_unknown_transfer_kind_is_refused(client, world):
    r = await call(client, path(world), to_account(world, kind="wallet_to_moon"), key=world["write"])
    assert r.status_code == 422 and "kind" in r.json()["fields"]
