"""The chain simulator itself (its dispatcher, no server) and the `simchain` provider's payouts over
real HTTP: a feed that loses nothing, re-orgs, replays, once-per-key payouts, clear refusals."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from app.funding.providers.base import PayoutRequest
from app.funding.providers.sim.chain import Chain, handle
from tests.funding.chain_support import chain, chain_url

__all__ = ["chain", "chain_url"]  # fixtures


def call(c: Chain, method: str, path: str, body: dict | None = None, **query: str) -> tuple[int, dict]:
    answer = handle(c, method, path, query, json.dumps(body or {}).encode())
    assert answer is not None
    return answer


def test_a_sent_transaction_gains_one_confirmation_per_block() -> None:
    c = Chain()
    status, tx = call(c, "POST", "/chain/send", {"address": "a1", "amount": "0.5", "currency": "btc"})
    assert (
        status == 201
        and tx["confirmations"] == 0
        and tx["currency"] == "BTC"
        and tx["tx_hash"].startswith("0x")
    )
    call(c, "POST", "/chain/mine", {"blocks": 3})
    assert call(c, "GET", f"/chain/transactions/{tx['tx_hash']}")[1]["confirmations"] == 3


def test_the_feed_lists_only_changes_after_the_cursor() -> None:
    c = Chain()
    call(c, "POST", "/chain/send", {"address": "a1", "amount": "1", "currency": "BTC"})
    _, first = call(c, "GET", "/chain/transactions", since="")
    assert len(first["items"]) == 1
    _, nothing = call(c, "GET", "/chain/transactions", since=first["cursor"])
    assert nothing["items"] == [] and nothing["cursor"] == first["cursor"]
    call(c, "POST", "/chain/mine")
    _, later = call(c, "GET", "/chain/transactions", since=first["cursor"])
    assert [i["confirmations"] for i in later["items"]] == [1]


def test_the_feed_pages_without_losing_items() -> None:
    c = Chain()
    for n in range(5):
        call(c, "POST", "/chain/send", {"address": f"a{n}", "amount": "1", "currency": "BTC"})
    seen, cursor = [], ""
    for _ in range(10):
        _, page = call(c, "GET", "/chain/transactions", since=cursor, limit="2")
        seen += [i["address"] for i in page["items"]]
        if page["cursor"] == cursor:
            break
        cursor = page["cursor"]
    assert seen == [f"a{n}" for n in range(5)]


def test_a_cursor_from_another_run_starts_from_the_beginning() -> None:
    c = Chain()
    call(c, "POST", "/chain/send", {"address": "a1", "amount": "1", "currency": "BTC"})
    _, page = call(c, "GET", "/chain/transactions", since="deadbeef:99")
    assert len(page["items"]) == 1


def test_a_reorg_takes_confirmations_away_or_drops_transactions() -> None:
    c = Chain()
    _, tx = call(c, "POST", "/chain/send", {"address": "a1", "amount": "1", "currency": "BTC"})
    call(c, "POST", "/chain/mine", {"blocks": 2})
    _, r = call(c, "POST", "/chain/reorg", {"depth": 2})
    assert r["affected"] == [tx["tx_hash"]] and r["height"] == 0
    assert call(c, "GET", f"/chain/transactions/{tx['tx_hash']}")[1]["status"] == "pending"
    call(c, "POST", "/chain/mine")
    call(c, "POST", "/chain/reorg", {"depth": 1, "drop": True})
    assert call(c, "GET", f"/chain/transactions/{tx['tx_hash']}")[1]["status"] == "dropped"


def test_payouts_are_sent_once_per_key() -> None:
    c = Chain()
    body = {"idempotency_key": "withdrawal:1", "address": "x", "amount": "0.1", "currency": "BTC"}
    _, first = call(c, "POST", "/chain/payout", body)
    _, again = call(c, "POST", "/chain/payout", body)
    assert first["tx_hash"] == again["tx_hash"] and len(c.txs) == 1
    status, _ = call(c, "POST", "/chain/payout", {**body, "amount": "0.2"})
    assert status == 409


@pytest.mark.parametrize(
    "body",
    [
        {"address": "", "amount": "1", "currency": "BTC"},
        {"address": "a", "amount": "-1", "currency": "BTC"},
        {"address": "a", "amount": "abc", "currency": "BTC"},
        {"address": "a", "amount": "1", "currency": "B T C"},
    ],
)
def test_bad_sends_are_refused_with_a_message(body: dict) -> None:
    status, answer = call(Chain(), "POST", "/chain/send", body)
    assert status == 400 and answer["error"]


def test_paths_outside_the_chain_are_not_answered() -> None:
    assert handle(Chain(), "GET", "/v1/payments", {}, b"") is None
    assert call(Chain(), "GET", "/chain/nothing")[0] == 404
    assert handle(Chain(), "POST", "/chain/send", {}, b"not json")[0] == 400


@pytest.mark.asyncio
async def test_the_provider_pays_out_once_per_key_over_http(chain) -> None:
    request = PayoutRequest("withdrawal:7", Decimal("0.01"), "BTC", {"address": "sb1qdest"})
    first = await chain.payout(request)
    again = await chain.payout(request)
    assert first.payout_id == again.payout_id and first.status == "paid"
    assert (await chain.get_payout("withdrawal:7")) == first
    assert await chain.get_payout("withdrawal:8") is None
    payment = await chain.get_payment(first.payout_id)
    assert payment.status == "pending" and payment.amount == Decimal("0.01")
