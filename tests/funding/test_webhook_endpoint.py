"""Funding › Card deposits end to end: the simulator's hosted page and its signed, asynchronous
webhooks arriving at the running application; duplicates, out-of-order and retried deliveries
processed exactly once; forged, stale and replayed deliveries refused; unknown payments kept."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest

from app.core import db, jobs
from app.funding import deposit_events, deposit_jobs, deposits, webhooks
from app.settings import get_settings
from tests.funding import simcard_support as sims
from tests.funding.deposit_support import SYSTEM, balance, card_method, verified_client
from tests.funding.simcard_support import DECLINED
from tests.funding.support import ledger_totals
from tests.servers import free_port

_pay_sim_process, pay_sim, app_server = sims._pay_sim_process, sims.pay_sim, sims.app_server  # fixtures

URL = "/api/funding/webhooks/simcard"
pytestmark = pytest.mark.usefixtures("database")


async def card_deposit(amount: str = "100.00") -> tuple[dict[str, Any], str]:
    client_id = await verified_client()
    method = await card_method()
    d = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal(amount), "USD")
    url = await deposit_events.start_card_payment(SYSTEM, d, "http://testserver.local/portal/deposits/1", {})
    return await deposits.get_deposit(d["id"]), url


async def wait_status(deposit_id: int, status: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = await deposits.get_deposit(deposit_id)
        if d["status"] == status:
            return d
        await asyncio.sleep(0.1)
    raise AssertionError(f"deposit {deposit_id} is {d['status']}, not {status}")


async def inbox() -> list[dict[str, Any]]:
    return await db.fetch(
        "SELECT event_id, event_type, processed_at, attempts, last_error, signature_ok FROM funding_webhook_events "
        "ORDER BY id"
    )


async def test_a_paid_card_deposit_is_credited_by_the_webhook(app_server, pay_sim):
    d, url = await card_deposit()
    assert (await pay_sim.pay(url)).status_code == 303
    done = await wait_status(d["id"], "completed")
    assert done["instrument"] == "Visa •••• 4242" and done["credited_amount"] == Decimal("96.20")
    deliveries = await pay_sim.settled()
    assert sorted(x["type"] for x in deliveries) == ["payment.processing", "payment.succeeded"]
    events = await inbox()
    assert len(events) == 2 and all(e["processed_at"] is not None and e["signature_ok"] for e in events)
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}


async def test_duplicated_and_out_of_order_webhooks_credit_exactly_once(app_server, pay_sim):
    await pay_sim.control(duplicates=2, out_of_order=True)
    d, url = await card_deposit()
    await pay_sim.pay(url)
    deliveries = await pay_sim.settled()
    assert len(deliveries) == 6 and deliveries[0]["type"] == "payment.processing"
    done = await wait_status(d["id"], "completed")
    events = await inbox()
    assert len(events) == 2 and all(e["attempts"] == 1 and e["processed_at"] for e in events)
    assert done["status"] == "completed"  # the late "processing" did not move it back
    assert await balance("client_wallet", "USD", client_id=d["client_id"]) == Decimal("96.20")
    n = await db.fetchrow(
        "SELECT count(*) AS n FROM funding_transactions WHERE reference = $1", d["reference"]
    )
    assert n is not None and n["n"] == 1


async def test_the_provider_paying_less_than_asked_credits_what_was_paid(app_server, pay_sim):
    await pay_sim.control(next_paid_amount="95.00")
    d, url = await card_deposit("100.00")
    await pay_sim.pay(url)
    done = await wait_status(d["id"], "completed")
    assert (done["amount"], done["requested_amount"]) == (Decimal("95.00"), Decimal("100.00"))
    assert (done["fee_broker"], done["fee_provider"], done["credited_amount"]) == (
        Decimal("0.95"),
        Decimal("2.68"),
        Decimal("91.37"),
    )


async def test_delayed_webhooks_arrive_later_and_the_deposit_waits_for_them(app_server, pay_sim):
    await pay_sim.control(delay=1.5)
    d, url = await card_deposit()
    await pay_sim.pay(url)
    await asyncio.sleep(0.8)
    assert all(x["attempts"] == 0 for x in await pay_sim.deliveries())
    assert (await deposits.get_deposit(d["id"]))["status"] == "created"
    await wait_status(d["id"], "completed")


async def test_a_delivery_that_failed_is_retried_until_it_arrives(app_server, pay_sim):
    await pay_sim.control(webhook_url=f"http://127.0.0.1:{free_port()}/nothing-here")
    d, url = await card_deposit()
    await pay_sim.pay(url)
    deadline = time.monotonic() + 20
    while not all(x["attempts"] >= 2 for x in await pay_sim.deliveries()):
        assert time.monotonic() < deadline, await pay_sim.deliveries()
        await asyncio.sleep(0.1)
    assert (await deposits.get_deposit(d["id"]))["status"] == "created"
    await pay_sim.control(webhook_url=f"{app_server.url}{URL}")
    await wait_status(d["id"], "completed")
    assert all(x["delivered_at"] and x["attempts"] >= 3 for x in await pay_sim.settled())


async def test_a_declined_card_fails_the_deposit_with_the_reason(app_server, pay_sim):
    d, url = await card_deposit()
    await pay_sim.pay(url, number=DECLINED)
    failed = await wait_status(d["id"], "failed")
    assert failed["failure_reason"] == "Your card was declined."
    mail = await db.fetchrow("SELECT subject FROM outbound_emails WHERE template = 'deposit_failed'")
    assert mail is not None and d["reference"] in mail["subject"]


async def test_a_missed_webhook_is_caught_by_asking_the_provider(app_server, pay_sim):
    await pay_sim.control(drop_webhooks=True)
    d, url = await card_deposit()
    await pay_sim.pay(url)
    await pay_sim.settled()
    assert (await deposits.get_deposit(d["id"]))["status"] == "created"
    assert await deposit_events.check_stale(SYSTEM, minutes=60) == 0  # not stale yet
    assert await deposit_events.check_stale(SYSTEM, minutes=0) == 1
    done = await deposits.get_deposit(d["id"])
    assert done["status"] == "completed" and done["instrument_key"].startswith("card_")


async def test_the_worker_runs_the_deposit_sweeps() -> None:
    jobs.load_job_modules()
    scheduled = {c.function: c.cron for c in jobs._crons}
    assert scheduled[deposit_jobs.funding_webhook_sweep] == "* * * * *"
    assert scheduled[deposit_jobs.funding_deposit_stale_check] == "* * * * *"
    assert scheduled[deposit_jobs.funding_deposit_awaiting_rate] == "*/5 * * * *"


async def test_a_payment_page_left_unpaid_is_asked_about_and_cancelled_after_a_day(pay_sim):
    fresh, _ = await card_deposit()
    old, _ = await card_deposit()
    await db.fetch(
        "UPDATE funding_deposits SET created_at = now() - interval '25 hours' WHERE id = {}", old["id"]
    )
    assert await deposit_events.check_stale(SYSTEM, minutes=0) == 1
    assert (await deposits.get_deposit(fresh["id"]))["status"] == "created"
    cancelled = await deposits.get_deposit(old["id"])
    assert cancelled["status"] == "cancelled" and "not completed in time" in cancelled["failure_reason"]


# --- signatures, replays, unknown payments (straight at the endpoint) ---------------------------------


def event(payment_id: str, event_type: str = "payment.succeeded", reference: str = "", **data: Any) -> bytes:
    payment = {
        "id": payment_id, "status": event_type.split(".")[1], "amount": "100.00", "currency": "USD",
        "paid_amount": "100.00", "reference": reference, "instrument": "Visa •••• 4242",
        "instrument_key": "card_t", "failure_reason": "", "updated_at": time.time(), **data,
    }  # fmt: skip
    return json.dumps({"id": uuid.uuid4().hex, "type": event_type, "data": payment}).encode()


def signed(body: bytes, msg_id: str | None = None, timestamp: int | None = None) -> dict[str, str]:
    secret = get_settings().payments.webhook_secret
    return {
        "content-type": "application/json",
        **webhooks.headers_for(secret, msg_id or uuid.uuid4().hex, body, timestamp),
    }


async def attached_deposit(payment_id: str) -> dict[str, Any]:
    client_id = await verified_client()
    method = await card_method()
    d = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("100.00"), "USD")
    return await deposits.attach_payment(SYSTEM, d["id"], payment_id)


async def test_a_replayed_webhook_is_processed_once(client):
    d = await attached_deposit("pay_replay")
    body = event("pay_replay")
    headers = signed(body, msg_id="msg_replay")
    first = await client.post(URL, content=body, headers=headers)
    again = await client.post(URL, content=body, headers=headers)
    assert (first.json()["outcome"], again.json()["outcome"]) == ("processed", "already_processed")
    assert (await deposits.get_deposit(d["id"]))["status"] == "completed"
    assert await balance("client_wallet", "USD", client_id=d["client_id"]) == Decimal("96.20")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (lambda body: {**signed(body), "webhook-signature": "v1,Zm9yZ2Vk"}, 401),
        (lambda body: signed(body, timestamp=int(time.time()) - 600), 400),
        (lambda body: signed(body, timestamp=int(time.time()) + 600), 400),
        (lambda body: {"content-type": "application/json"}, 400),
    ],
    ids=["forged", "stale", "from the future", "unsigned"],
)
async def test_a_forged_or_stale_webhook_is_refused_and_never_processed(client, headers, status):
    d = await attached_deposit("pay_forged")
    body = event("pay_forged")
    r = await client.post(URL, content=body, headers=headers(body))
    assert r.status_code == status
    assert (await deposits.get_deposit(d["id"]))["status"] == "created"
    assert all(not e["signature_ok"] and e["processed_at"] is None for e in await inbox())


async def test_a_forger_who_guesses_an_event_id_cannot_block_the_real_event(client):
    d = await attached_deposit("pay_guess")
    body = event("pay_guess")
    forged = {**signed(body, msg_id="msg_guess"), "webhook-signature": "v1,Zm9yZ2Vk"}
    assert (await client.post(URL, content=body, headers=forged)).status_code == 401
    r = await client.post(URL, content=body, headers=signed(body, msg_id="msg_guess"))
    assert r.json()["outcome"] == "processed"
    assert (await deposits.get_deposit(d["id"]))["status"] == "completed"


async def test_a_webhook_for_an_unknown_payment_is_answered_and_left_for_finance(client):
    r = await client.post(
        URL, content=(body := event("pay_nobody", reference="DNOBODY1")), headers=signed(body)
    )
    assert r.status_code == 200 and r.json()["outcome"] == "unknown_payment"
    [row] = await inbox()
    assert (
        row["processed_at"] is None
        and "unknown payment" in row["last_error"]
        and "DNOBODY1" in row["last_error"]
    )
    for _ in range(8):
        await deposit_events.sweep_webhooks()
    [row] = await inbox()
    assert row["attempts"] == deposit_events.MAX_SWEEP_ATTEMPTS and row["processed_at"] is None


async def test_an_event_that_overtook_its_payment_is_processed_by_the_sweep(client):
    body = event("pay_late")
    r = await client.post(URL, content=body, headers=signed(body))
    assert r.json()["outcome"] == "unknown_payment"
    d = await attached_deposit("pay_late")
    assert await deposit_events.sweep_webhooks() == 1
    assert (await deposits.get_deposit(d["id"]))["status"] == "completed"


@pytest.mark.parametrize("provider", ["nosuch", "wire", "simchain"])
async def test_a_provider_without_webhooks_has_no_endpoint(client, provider):
    r = await client.post(
        f"/api/funding/webhooks/{provider}", content=b"{}", headers={"content-type": "application/json"}
    )
    assert r.status_code == 404
    assert await inbox() == []
