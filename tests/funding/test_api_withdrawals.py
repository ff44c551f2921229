"""Withdrawals through the funding API: the amount is held once however often the request is
replayed or raced, a blocking pre-check is a clear 422, and the ledger still balances."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from app.core import db
from app.funding import balances, ledger
from tests.funding.api_support import api_key, at_level, call, count, method
from tests.funding.support import deposit as book_deposit
from tests.funding.support import ledger_totals

CLEAN = {"unbalanced": 0, "stale": 0, "negative": 0}


@pytest.fixture
async def world(personas):
    client_id = await at_level(personas["client_a"].id, 2)
    wire = await method(personas["finance"])
    wallet = await ledger.wallet_for(client_id, "USD")
    assert wallet is not None
    await book_deposit(wallet, Decimal("1000.00"))
    return {
        "client_id": client_id,
        "wallet": wallet,
        "destination": f"method:{wire}",
        "write": await api_key("funding:write", "funding:read"),
    }


def body(world, **changes):
    return {"amount": "100.00", "currency": "USD", "destination": world["destination"], **changes}


def path(world):
    return f"/clients/{world['client_id']}/withdrawals"


async def wallet(world) -> balances.WalletBalance:
    return await balances.wallet_balance(world["wallet"])


async def test_a_withdrawal_is_requested_and_its_amount_held(client, world):
    r = await call(client, path(world), body(world), key=world["write"])
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["status"], out["amount"], out["currency"], out["destination"]) == (
        "requested",
        "100.00",
        "USD",
        "Bank wire",
    )
    w = await wallet(world)
    assert (w.available, w.held) == (Decimal("900.00"), Decimal("100.00"))
    got = await call(client, f"/withdrawals/{out['id']}", key=world["write"], method="GET")
    assert got.status_code == 200 and got.json()["id"] == out["id"]


async def test_a_replay_returns_the_first_response_and_holds_once(client, world):
    key = uuid.uuid4().hex
    first = await call(client, path(world), body(world), key=world["write"], idem=key)
    postings = await count("funding_postings")
    again = await call(client, path(world), body(world), key=world["write"], idem=key)
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await count("funding_postings") == postings and await count("funding_withdrawals") == 1
    assert (await wallet(world)).held == Decimal("100.00")


async def test_the_same_key_with_another_amount_is_refused_and_holds_nothing_more(client, world):
    key = uuid.uuid4().hex
    await call(client, path(world), body(world), key=world["write"], idem=key)
    r = await call(client, path(world), body(world, amount="150.00"), key=world["write"], idem=key)
    assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"
    assert (await wallet(world)).held == Decimal("100.00")


async def test_concurrent_identical_requests_hold_once(client, world):
    key = uuid.uuid4().hex
    results = await asyncio.gather(
        *(call(client, path(world), body(world), key=world["write"], idem=key) for _ in range(4))
    )
    assert {r.status_code for r in results} <= {201, 409}
    assert len({r.content for r in results if r.status_code == 201}) == 1
    assert await count("funding_withdrawals") == 1
    assert (await wallet(world)).held == Decimal("100.00")
    assert await ledger_totals() == CLEAN


async def test_distinct_keys_racing_for_the_whole_balance_never_overdraw(client, world):
    results = await asyncio.gather(
        *(call(client, path(world), body(world, amount="400.00"), key=world["write"]) for _ in range(4))
    )
    assert sorted(r.status_code for r in results) == [201, 201, 422, 422]
    refused = [r.json() for r in results if r.status_code == 422]
    assert all(r["error"] == "withdrawal_refused" and r["detail"] for r in refused)
    w = await wallet(world)
    assert (w.available, w.held) == (Decimal("200.00"), Decimal("800.00"))
    assert await ledger_totals() == CLEAN


async def test_more_than_the_balance_is_refused_with_the_reason_and_replayed(client, world):
    key = uuid.uuid4().hex
    first = await call(client, path(world), body(world, amount="5000.00"), key=world["write"], idem=key)
    assert first.status_code == 422 and first.json()["error"] == "withdrawal_refused"
    assert "1,000.00 USD" in first.json()["detail"]
    again = await call(client, path(world), body(world, amount="5000.00"), key=world["write"], idem=key)
    assert (again.status_code, again.content) == (422, first.content)
    assert await count("funding_withdrawals") == 0 and (await wallet(world)).held == 0


@pytest.mark.parametrize(
    "changes, field",
    [({"amount": "-5"}, "amount"), ({"amount": "0.00"}, "amount"), ({"amount": "1.001"}, "amount"),
     ({"currency": "usdx"}, "currency"), ({"amount": "abc", "currency": "nope"}, "currency")],
)  # fmt: skip
async def test_bad_amounts_are_refused_before_anything_is_held(client, world, changes, field):
    postings = await count("funding_postings")
    r = await call(client, path(world), body(world, **changes), key=world["write"])
    assert r.status_code == 422 and field in r.json()["fields"]
    assert await count("funding_postings") == postings and await count("funding_idempotent_requests") == 0


async def test_a_client_without_the_withdrawals_right_is_refused(client, world, personas):
    other = await at_level(personas["client_b"].id, 1)
    r = await call(client, f"/clients/{other}/withdrawals", body(world), key=world["write"])
    assert r.status_code == 422 and r.json()["error"] == "withdrawal_refused"
    assert await count("funding_withdrawals") == 0


async def test_an_unknown_client_or_withdrawal_is_a_404(client, world):
    r = await call(client, "/clients/999999/withdrawals", body(world), key=world["write"])
    assert r.status_code == 404
    r = await call(client, "/withdrawals/999999", key=world["write"], method="GET")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_the_destinations_list_gives_the_keys_to_send(client, world):
    r = await call(
        client,
        f"/clients/{world['client_id']}/withdrawal-destinations?currency=usd",
        key=world["write"],
        method="GET",
    )
    assert r.status_code == 200
    assert {
        "key": world["destination"],
        "label": "Bank wire",
        "kind": "wire",
        "returnable": None,
    } in r.json()["destinations"]


async def test_a_crash_before_the_response_was_stored_is_rebuilt_from_the_same_withdrawal(client, world):
    """The service committed, the process died before storing the response: once the claim's lease
    has run out, the replay runs the service again with the same key, which returns the first
    withdrawal; nothing is held twice."""
    key = uuid.uuid4().hex
    first = await call(client, path(world), body(world), key=world["write"], idem=key)
    await db.fetchrow(
        "UPDATE funding_idempotent_requests SET status_code = NULL, response = '{}', "
        "created_at = now() - interval '5 minutes' WHERE key = $1",
        key,
    )
    rebuilt = await call(client, path(world), body(world), key=world["write"], idem=key)
    assert rebuilt.status_code == 201 and rebuilt.json()["id"] == first.json()["id"]
    assert await count("funding_withdrawals") == 1 and (await wallet(world)).held == Decimal("100.00")
    replay = await call(client, path(world), body(world), key=world["write"], idem=key)
    assert replay.content == rebuilt.content and replay.headers["Idempotent-Replayed"] == "true"


async def test_while_the_first_request_is_unfinished_a_twin_gets_409_with_retry_after(client, world):
    key = uuid.uuid4().hex
    await call(client, path(world), body(world), key=world["write"], idem=key)
    await db.fetchrow(
        "UPDATE funding_idempotent_requests SET status_code = NULL, response = '{}' WHERE key = $1", key
    )
    r = await call(client, path(world), body(world), key=world["write"], idem=key)
    assert (
        r.status_code == 409
        and r.json()["error"] == "request_in_progress"
        and r.headers["Retry-After"] == "1"
    )


async def test_a_key_used_for_a_withdrawal_is_refused_for_a_deposit(client, world):
    key = uuid.uuid4().hex
    await call(client, path(world), body(world), key=world["write"], idem=key)
    method_id = int(world["destination"].split(":")[1])
    deposit = {"method_id": method_id, "amount": "100.00", "currency": "USD"}
    r = await call(client, f"/clients/{world['client_id']}/deposits", deposit, key=world["write"], idem=key)
    assert r.status_code == 422 and r.json()["error"] == "idempotency_key_reused"
    assert await count("funding_deposits") == 0
