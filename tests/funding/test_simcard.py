"""Funding › The card/e-wallet provider simulator over real HTTP, through the `simcard` client:
the hosted page, its test cards, API keys, payouts that are never made twice, state that survives a
restart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from app.funding.providers import base
from app.funding.providers.base import PayoutRequest, ProviderError
from app.funding.providers.simcard import SimCardProvider
from tests.funding import simcard_support as sims
from tests.funding.simcard_support import DECLINED, NO_FUNDS, start_pay_sim, stop

_pay_sim_process, pay_sim = sims._pay_sim_process, sims.pay_sim  # fixtures

RETURN = "http://testserver.local/portal/deposits/1"


def provider() -> SimCardProvider:
    found = base.get("simcard")
    assert isinstance(found, SimCardProvider)
    return found


async def start(amount: str = "100.00", reference: str | None = None):
    return await provider().start_payment(
        reference=reference or f"D{uuid.uuid4().hex[:8].upper()}",
        amount=Decimal(amount),
        currency="USD",
        return_url=RETURN,
        customer={"client_id": 1},
    )


async def test_a_payment_is_started_once_per_reference(pay_sim):
    first = await start(reference="DSAMEREF1")
    again = await start(reference="DSAMEREF1")
    assert first.provider_payment_id == again.provider_payment_id
    assert first.redirect_url == f"{pay_sim.url}/pay/{first.provider_payment_id}"
    payment = await provider().get_payment(first.provider_payment_id)
    assert (payment.status, payment.amount, payment.reference) == ("pending", Decimal("100.00"), "DSAMEREF1")
    listed = await provider().list_payments(datetime.now(UTC) - timedelta(minutes=1))
    assert [p.provider_payment_id for p in listed].count(first.provider_payment_id) == 1


async def test_the_hosted_page_takes_the_card_and_sends_the_browser_back(pay_sim):
    started = await start()
    r = await pay_sim.pay(started.redirect_url)
    assert r.status_code == 303
    assert r.headers["location"] == f"{RETURN}?payment_id={started.provider_payment_id}&status=succeeded"
    payment = await provider().get_payment(started.provider_payment_id)
    assert payment.status == "succeeded" and payment.instrument == "Visa •••• 4242"
    assert payment.instrument_key.startswith("card_")
    # the page now says so, and a second submission (another card) changes nothing
    assert "This payment is succeeded" in httpx.get(started.redirect_url).text
    again = httpx.post(started.redirect_url, data={"card_number": DECLINED, "expiry": "12/39", "name": "X"})
    assert again.status_code == 303 and again.headers["location"].endswith("status=succeeded")
    assert (await provider().get_payment(started.provider_payment_id)).status == "succeeded"


@pytest.mark.parametrize(
    ("number", "reason"),
    [(DECLINED, "Your card was declined."), (NO_FUNDS, "Your card has insufficient funds.")],
)
async def test_the_test_cards_fail_with_their_reason(pay_sim, number, reason):
    started = await start()
    r = await pay_sim.pay(started.redirect_url, number=number)
    assert r.status_code == 303 and r.headers["location"].endswith("status=failed")
    payment = await provider().get_payment(started.provider_payment_id)
    assert (payment.status, payment.failure_reason) == ("failed", reason)


@pytest.mark.parametrize(
    ("number", "expiry", "message"),
    [
        ("4242424242424241", "12/39", "The card number is not valid."),
        ("4242424242424242", "13/39", "Write the expiry as MM/YY."),
        ("4242424242424242", "01/20", "The card has expired."),
    ],
)
async def test_a_bad_card_is_shown_on_the_page_and_nothing_happens(pay_sim, number, expiry, message):
    started = await start()
    r = await pay_sim.pay(started.redirect_url, number=number, expiry=expiry)
    assert r.status_code == 400 and message in r.text
    assert (await provider().get_payment(started.provider_payment_id)).status == "pending"


async def test_the_api_needs_the_key(pay_sim):
    async with httpx.AsyncClient(base_url=pay_sim.url) as http:
        r = await http.post("/v1/payments", json={}, headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401
        assert (await http.get("/v1/payouts")).status_code == 401
    wrong = SimCardProvider(pay_sim.url, "sk_wrong_key", pay_sim.webhook_secret)
    with pytest.raises(ProviderError) as refused:
        await wrong.get_payment("pay_x")
    assert refused.value.definite


async def test_a_payout_is_made_once_per_key(pay_sim):
    key = f"withdrawal:{uuid.uuid4().hex}"
    request = PayoutRequest(key, Decimal("50.00"), "USD", {"instrument_key": "card_1"}, reference="W1")
    first = await provider().payout(request)
    again = await provider().payout(request)
    assert first.payout_id == again.payout_id and first.status == "paid"
    with pytest.raises(ProviderError) as conflict:
        await provider().payout(PayoutRequest(key, Decimal("60.00"), "USD", {"instrument_key": "card_1"}))
    assert conflict.value.definite
    looked_up = await provider().get_payout(key)
    assert looked_up is not None and looked_up.payout_id == first.payout_id
    assert await provider().get_payout("never-used") is None
    listed = await provider().list_payouts(datetime.now(UTC) - timedelta(minutes=1))
    assert [p.payout_id for p in listed].count(first.payout_id) == 1


async def test_a_timed_out_payout_is_found_and_retried_without_paying_twice(pay_sim):
    await pay_sim.control(payout_timeout_next=1)
    key = f"withdrawal:{uuid.uuid4().hex}"
    request = PayoutRequest(key, Decimal("75.00"), "USD", {"instrument_key": "card_2"})
    with pytest.raises(ProviderError) as unknown:
        await provider().payout(request)
    assert not unknown.value.definite
    found = await provider().get_payout(key)
    retried = await provider().payout(request)
    assert found is not None and found.payout_id == retried.payout_id and retried.status == "paid"


async def test_a_failing_bank_refuses_the_payout(pay_sim):
    await pay_sim.control(fail_payouts=1)
    failed = await provider().payout(PayoutRequest(f"w:{uuid.uuid4().hex}", Decimal("5"), "USD", {}))
    ok = await provider().payout(PayoutRequest(f"w:{uuid.uuid4().hex}", Decimal("5"), "USD", {}))
    assert (failed.status, ok.status) == ("failed", "paid") and "refused" in failed.failure_reason


async def test_unknown_or_bad_knobs_are_refused(pay_sim):
    async with httpx.AsyncClient(base_url=pay_sim.url, headers=pay_sim.headers()) as http:
        assert (await http.post("/sim/control", json={"nonsense": 1})).status_code == 400
        assert (await http.post("/sim/control", json={"duplicates": -1})).status_code == 400
        assert (await http.post("/sim/control", json={"out_of_order": "yes"})).status_code == 400


def test_payments_survive_a_restart(tmp_path):
    sim = start_pay_sim(tmp_path / "state.sqlite3")
    try:
        r = httpx.post(
            f"{sim.url}/v1/payments",
            json={"amount": "10.00", "currency": "EUR", "reference": "DRESTART1", "return_url": RETURN},
            headers={**sim.headers(), "idempotency-key": "restart-1"},
        )
        assert r.status_code == 201
        payment_id = r.json()["id"]
    finally:
        stop(sim.proc)
    sim = start_pay_sim(tmp_path / "state.sqlite3")
    try:
        r = httpx.get(f"{sim.url}/v1/payments/{payment_id}", headers=sim.headers())
        assert r.status_code == 200 and r.json()["reference"] == "DRESTART1"
    finally:
        stop(sim.proc)


def test_the_payment_settings_are_parsed_strictly(tmp_path):
    from app.funding import webhooks
    from app.settings import SettingsError, load_settings

    env = {"SECRET_KEY": "s" * 40, "FXCRM_VAR_DIR": str(tmp_path)}
    dev = load_settings(env).payments
    assert (
        dev.webhook_secret.startswith("whsec_")
        and dev.webhook_secret == load_settings(env).payments.webhook_secret
    )
    assert dev.sim_url == dev.chain_url == "http://127.0.0.1:4480" and dev.sim_api_key.startswith("sk_test_")
    assert dev.webhook_secret not in repr(dev) and dev.sim_api_key not in repr(dev)
    secret = webhooks.new_secret()
    custom = load_settings(
        {**env, "PAYSIM_URL": "https://psp.example/", "PAYSIM_WEBHOOK_SECRET": secret}
    ).payments
    assert custom.sim_url == "https://psp.example" and custom.webhook_secret == secret
    for name, value in [
        ("PAYSIM_URL", "psp.example"),
        ("CHAIN_URL", "ftp://chain"),
        ("PAYSIM_WEBHOOK_SECRET", "not-a-secret"),
        ("PAYSIM_WEBHOOK_SECRET", "whsec_c2hvcnQ="),
        ("PAYSIM_API_KEY", "short"),
        ("PAYSIM_STALE_MINUTES", "0"),
        ("PAYSIM_ENABLED", "maybe"),
    ]:
        with pytest.raises(SettingsError, match=name):
            load_settings({**env, name: value})
