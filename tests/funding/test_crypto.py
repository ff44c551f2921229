"""Crypto deposits: each client's own address, and the simulated chain's feed (a real HTTP server)
turned into deposits whose confirmations grow live and which are credited once at the threshold,
whatever the feed repeats or re-organises. Money to an unknown address lands in suspense."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.core import db, jobs
from app.core.live import Event
from app.funding import crypto, crypto_jobs, crypto_suspense
from app.funding.controllers.crypto import crypto_list_changed
from app.funding.providers import register
from app.funding.providers.simchain import SimChainProvider
from tests.conftest import post_form
from tests.funding.chain_support import chain, chain_url, knob
from tests.funding.deposit_support import balance
from tests.funding.wire_support import FINANCE, audit_actions, crypto_method, may_deposit
from tests.personas import principal_of, sign_in
from tests.servers import free_port

pytestmark = pytest.mark.asyncio
__all__ = ["chain", "chain_url"]  # fixtures


async def ready(personas, who: str = "client_a") -> str:
    """The client may deposit crypto; their BTC address."""
    await may_deposit(personas["client_a"], personas["client_b"])
    if not await db.fetchrow("SELECT id FROM funding_payment_methods WHERE kind = 'crypto'"):
        await crypto_method()
    row = await crypto.address_for(FINANCE, personas[who].id, "BTC")
    return row["address"]


async def the_deposit() -> dict:
    rows = await db.fetch("SELECT * FROM funding_deposits WHERE kind = 'crypto'")
    assert len(rows) == 1
    return rows[0]


async def test_each_client_has_one_stable_address_per_currency(personas) -> None:
    a = await ready(personas)
    assert a == await ready(personas)
    b = (await crypto.address_for(FINANCE, personas["client_b"].id, "BTC"))["address"]
    usdt = (await crypto.address_for(FINANCE, personas["client_a"].id, "USDT"))["address"]
    assert len({a, b, usdt}) == 3 and usdt.startswith("0x") and a.startswith("sb1q")
    assert a == crypto.derive_address(personas["client_a"].id, "BTC", "bitcoin-sim")
    assert (await db.fetchrow("SELECT count(*) AS n FROM funding_crypto_addresses"))["n"] == 3
    assert (await audit_actions()).count("funding.crypto_address.created") == 3
    with pytest.raises(Exception, match="currencies offered"):
        await crypto.address_for(FINANCE, personas["client_a"].id, "ETH")


@pytest.mark.parametrize("htmx", [False, True])
async def test_the_portal_shows_the_address_with_a_copy_button(client, personas, htmx) -> None:
    address = await ready(personas)
    await sign_in(client, personas["client_a"])
    r = await client.get(
        "/portal/deposit/crypto?currency=BTC", headers={"HX-Request": "true"} if htmx else {}
    )
    assert r.status_code == 200 and address in r.text and 'data-copy="crypto-address"' in r.text
    assert ("<html" in r.text) != htmx
    usdt = await client.get("/portal/deposit/crypto?currency=USDT")
    assert (await crypto.address_for(FINANCE, personas["client_a"].id, "USDT"))["address"] in usdt.text


async def test_confirmations_grow_and_the_deposit_is_credited_once_at_the_threshold(chain, personas) -> None:
    address = await ready(personas)
    tx_hash = await chain.send(address, Decimal("0.25"), "BTC")
    result = await crypto.poll(FINANCE, chain)
    assert result.outcomes == {"created": 1}
    d = await the_deposit()
    assert d["status"] == "pending" and d["tx_hash"] == tx_hash and d["confirmations"] == 0
    assert d["crypto_address"] == address and d["client_id"] == personas["client_a"].id

    await chain.mine(1)
    await crypto.poll(FINANCE, chain)
    assert (await the_deposit())["confirmations"] == 1
    await chain.mine(1)
    await crypto.poll(FINANCE, chain)
    assert (await the_deposit())["status"] == "pending"
    await chain.mine(1)  # 3 = FundingPolicy.crypto_confirmations
    assert (await crypto.poll(FINANCE, chain)).outcomes == {"completed": 1}
    d = await the_deposit()
    assert d["status"] == "completed" and d["credited_amount"] == Decimal("0.25") and d["confirmations"] == 3

    await chain.mine(2)
    knob(chain, "/chain/replay")  # every transaction through the feed again
    await crypto.poll(FINANCE, chain)
    await db.fetch("DELETE FROM funding_chain_cursors")  # the whole feed again, from the start
    await asyncio.gather(crypto.poll(FINANCE, chain), crypto.poll(FINANCE, chain))  # and twice at once
    assert await balance("client_wallet", "BTC", client_id=personas["client_a"].id) == Decimal("0.25")
    assert (await audit_actions()).count("funding.deposit.completed") == 1


async def test_a_reorg_takes_confirmations_away_and_the_deposit_still_completes_once(chain, personas) -> None:
    address = await ready(personas)
    await chain.send(address, Decimal("1"), "BTC")
    await chain.mine(2)
    await crypto.poll(FINANCE, chain)
    assert (await the_deposit())["confirmations"] == 2
    knob(chain, "/chain/reorg", depth=2)
    await crypto.poll(FINANCE, chain)
    assert (await the_deposit())["confirmations"] == 0
    await chain.mine(3)
    await crypto.poll(FINANCE, chain)
    assert (await the_deposit())["status"] == "completed"
    knob(chain, "/chain/reorg", depth=3)  # after credit: nothing is taken back automatically
    await chain.mine(4)
    await crypto.poll(FINANCE, chain)
    assert await balance("client_wallet", "BTC", client_id=personas["client_a"].id) == Decimal("1")
    assert (await db.fetchrow("SELECT count(*) AS n FROM funding_deposits"))["n"] == 1


async def test_a_transaction_dropped_before_credit_fails_the_deposit(chain, personas) -> None:
    address = await ready(personas)
    await chain.send(address, Decimal("0.5"), "BTC")
    await chain.mine(1)
    await crypto.poll(FINANCE, chain)
    knob(chain, "/chain/reorg", depth=1, drop=True)
    assert (await crypto.poll(FINANCE, chain)).outcomes == {"dropped": 1}
    d = await the_deposit()
    assert d["status"] == "failed" and "dropped" in d["failure_reason"]
    assert await balance("client_wallet", "BTC", client_id=personas["client_a"].id) == Decimal("0")


async def test_money_to_an_unknown_address_is_kept_for_finance(chain, personas, client) -> None:
    await ready(personas)
    await chain.send("sb1qnobodyhasthisaddress", Decimal("0.1"), "BTC")
    await chain.mine(5)
    assert (await crypto.poll(FINANCE, chain)).outcomes == {"unassigned": 1}
    assert await crypto.poll(FINANCE, chain) is not None
    rows = await crypto_suspense.suspense()
    assert len(rows) == 1 and rows[0]["note"] == "No client has this address."
    assert rows[0]["confirmations"] == 5
    assert (await db.fetchrow("SELECT count(*) AS n FROM funding_deposits"))["n"] == 0
    assert "funding.chain_transaction.unassigned" in await audit_actions()

    await sign_in(client, personas["finance"])
    for htmx in (False, True):
        page = await client.get("/staff/funding/crypto", headers={"HX-Request": "true"} if htmx else {})
        assert (
            page.status_code == 200
            and "sb1qnobodyhasthisaddress" in page.text
            and ("<html" in page.text) != htmx
        )
    url = f"/staff/funding/crypto/{rows[0]['id']}/resolve"
    empty = await post_form(client, url, {"note": ""}, page="/staff/funding/crypto", htmx=True)
    assert empty.status_code == 422 and "Say what was done" in empty.text
    done = await post_form(client, url, {"note": "sent back to the sender"}, page="/staff/funding/crypto")
    assert done.status_code == 303
    assert await crypto_suspense.suspense() == []
    assert "funding.chain_transaction.resolved" in await audit_actions()


async def test_the_wrong_coin_to_an_address_goes_to_suspense(chain, personas) -> None:
    address = await ready(personas)
    await chain.send(address, Decimal("5"), "USDT")
    assert (await crypto.poll(FINANCE, chain)).outcomes == {"unassigned": 1}
    assert "USDT was sent to the client's BTC address" in (await crypto_suspense.suspense())[0]["note"]


async def test_finance_reads_the_feed_with_a_button(chain, client, personas) -> None:
    address = await ready(personas)
    await chain.send(address, Decimal("0.3"), "BTC")
    await sign_in(client, personas["finance"])
    for htmx in (False, True):
        r = await post_form(client, "/staff/funding/crypto/poll", {}, page="/staff/funding/crypto", htmx=htmx)
        assert r.status_code == 200 and "Read " in r.text and ("<html" in r.text) != htmx
    assert (await the_deposit())["status"] == "pending"


async def test_the_worker_runs_the_chain_poller_every_minute() -> None:
    jobs.load_job_modules()
    assert any(c.function is crypto_jobs.funding_crypto_poll and c.cron == "* * * * *" for c in jobs._crons)


async def test_the_poll_job_applies_the_feed(chain, personas) -> None:
    address = await ready(personas)
    await chain.send(address, Decimal("0.3"), "BTC")
    await chain.mine(3)
    assert await crypto_jobs.poll_for(0) == 1
    assert (await the_deposit())["status"] == "completed"


async def test_the_deposit_row_follows_live_and_is_private(chain, client, personas) -> None:
    address = await ready(personas)
    await chain.send(address, Decimal("0.3"), "BTC")
    await chain.mine(1)
    await crypto.poll(FINANCE, chain)
    d = await the_deposit()
    event = Event(topic=f"client:{d['client_id']}", type="funding.deposit", ids={"deposit_id": d["id"]})
    html = await crypto_list_changed(principal_of(personas["client_a"]), event)
    assert html is not None and f'id="crypto-deposit-{d["id"]}"' in html
    assert 'id="crypto-deposits" hx-swap-oob="outerHTML"' in html
    assert "1 / 3 confirmations" in html
    assert await crypto_list_changed(principal_of(personas["client_b"]), event) is None
    await sign_in(client, personas["client_a"])
    own = await client.get(f"/portal/deposit/crypto/{d['id']}", headers={"HX-Request": "true"})
    assert own.status_code == 200 and "<html" not in own.text
    assert (await client.get(f"/portal/deposit/crypto/{d['id']}")).status_code == 200
    await sign_in(client, personas["client_b"])
    assert (await client.get(f"/portal/deposit/crypto/{d['id']}")).status_code == 404
    page = await client.get("/portal/deposit/crypto")
    assert d["tx_hash"][:14] not in page.text


async def test_an_unreachable_chain_is_reported_not_crashed(database, personas) -> None:
    register(SimChainProvider(f"http://127.0.0.1:{free_port()}", timeout=1))
    assert await crypto_jobs.poll_for(0) == 0


async def test_the_threshold_is_finances_policy(chain, personas) -> None:
    address = await ready(personas)
    await db.fetch("UPDATE funding_policy SET crypto_confirmations = 1 WHERE id = 1")
    await chain.send(address, Decimal("0.2"), "BTC")
    assert (await crypto.poll(FINANCE, chain)).outcomes == {"created": 1}
    await chain.mine(1)
    assert (await crypto.poll(FINANCE, chain)).outcomes == {"completed": 1}


async def test_an_amount_the_deposit_rules_refuse_is_kept_in_suspense(chain, personas) -> None:
    address = await ready(personas)
    await chain.send(address, Decimal("50"), "BTC")  # the method's maximum is 10 BTC
    assert (await crypto.poll(FINANCE, chain)).outcomes == {"unassigned": 1}
    row = (await crypto_suspense.suspense())[0]
    assert "maximum" in row["note"] and str(personas["client_a"].id) in row["note"]
    assert (await db.fetchrow("SELECT count(*) AS n FROM funding_deposits"))["n"] == 0


async def test_a_client_who_may_not_deposit_gets_no_address_but_the_reason(client, personas) -> None:
    await crypto_method(kyc_level=0)
    await sign_in(client, personas["client_a"])  # level 0: no deposit right
    r = await client.get("/portal/deposit/crypto")
    assert r.status_code == 200 and 'id="crypto-address"' not in r.text
    assert (await db.fetchrow("SELECT count(*) AS n FROM funding_crypto_addresses"))["n"] == 0


async def test_a_feed_item_that_cannot_be_stored_is_skipped_not_fatal(database) -> None:
    from app.funding.providers.simchain import ChainItem

    for item in (
        ChainItem("0xabc", "addr", Decimal("0"), "BTC", "simnet", 1, "confirmed"),
        ChainItem("0x" + "f" * 300, "addr", Decimal("1"), "BTC", "simnet", 1, "confirmed"),
    ):
        assert await crypto.ingest(FINANCE, item, "simchain", 3) == "ignored"
    assert (await db.fetchrow("SELECT count(*) AS n FROM funding_chain_transactions"))["n"] == 0


async def test_finance_credits_unassigned_money_to_its_client_once(chain, client, personas) -> None:
    await ready(personas)
    await chain.send("sb1qanoldaddressofclientb", Decimal("0.4"), "BTC")
    await chain.mine(3)
    await crypto.poll(FINANCE, chain)
    row = (await crypto_suspense.suspense())[0]
    await sign_in(client, personas["finance"])
    url = f"/staff/funding/crypto/{row['id']}/assign"
    bad = await post_form(
        client, url, {"client_id": "abc", "note": "x"}, page="/staff/funding/crypto", htmx=True
    )
    assert bad.status_code == 422 and "client&#39;s number" in bad.text and "<html" not in bad.text
    nobody = await post_form(client, url, {"client_id": "999999", "note": "x"}, page="/staff/funding/crypto")
    assert nobody.status_code == 422 and "no client 999999" in nobody.text
    done = await post_form(
        client,
        url,
        {"client_id": personas["client_b"].id, "note": "ticket 42: old address"},
        page="/staff/funding/crypto",
    )
    assert done.status_code == 303
    d = await the_deposit()
    assert d["client_id"] == personas["client_b"].id and d["status"] == "completed"
    assert await balance("client_wallet", "BTC", client_id=personas["client_b"].id) == Decimal("0.4")
    again = await post_form(
        client, url, {"client_id": personas["client_b"].id, "note": "again"}, page="/staff/funding/crypto"
    )
    assert again.status_code == 422
    await chain.mine(2)
    await crypto.poll(FINANCE, chain)
    assert await balance("client_wallet", "BTC", client_id=personas["client_b"].id) == Decimal("0.4")
    assert "funding.chain_transaction.assigned" in await audit_actions()
    assert await crypto_suspense.suspense() == []


async def test_an_assigned_transaction_still_confirming_completes_with_the_feed(chain, personas) -> None:
    await ready(personas)
    await chain.send("sb1qunknown", Decimal("0.1"), "BTC")
    await crypto.poll(FINANCE, chain)
    row = (await crypto_suspense.suspense())[0]
    await crypto_suspense.assign(
        FINANCE, principal_of(personas["finance"]), row["id"], personas["client_a"].id, "theirs"
    )
    assert (await the_deposit())["status"] == "pending"
    await chain.mine(3)
    assert (await crypto.poll(FINANCE, chain)).outcomes == {"completed": 1}


async def test_our_own_payouts_in_the_feed_are_not_taken_for_deposits(chain, personas) -> None:
    from app.funding.providers.base import PayoutRequest

    await ready(personas)
    await chain.payout(PayoutRequest("withdrawal:5", Decimal("0.1"), "BTC", {"address": "sb1qsomeoneelse"}))
    await chain.mine(3)
    assert (await crypto.poll(FINANCE, chain)).outcomes == {"outgoing": 1}
    assert await crypto_suspense.suspense() == []
    assert await chain.list_payments(datetime.now(UTC)) == []


async def test_the_provider_reports_a_payment_succeeded_at_the_policy_threshold(chain, personas) -> None:
    address = await ready(personas)
    tx_hash = await chain.send(address, Decimal("0.2"), "BTC")
    await chain.mine(2)
    (payment,) = await chain.list_payments(datetime.now(UTC))
    assert (payment.provider_payment_id, payment.status) == (tx_hash, "pending")
    await chain.mine(1)
    (payment,) = await chain.list_payments(datetime.now(UTC))
    assert payment.status == "succeeded" and payment.amount == Decimal("0.2")
