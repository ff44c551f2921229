"""Funding › Portal deposit pages: the methods with both fees, the live fee preview, the form that
sends the browser to the provider's hosted page, and the deposit's own page (404 to anyone else)."""

from __future__ import annotations

import asyncio
import re
import time
from decimal import Decimal

import httpx

from app.core import db
from app.funding import deposits
from tests.conftest import csrf_token, post_form
from tests.funding import simcard_support as sims
from tests.funding.deposit_support import SYSTEM, add_rate, card_method, count_deposits, set_level
from tests.personas import sign_in

_pay_sim_process, pay_sim, app_server = sims._pay_sim_process, sims.pay_sim, sims.app_server  # fixtures

HX = {"HX-Request": "true"}


async def ready(personas, *, level: int = 1) -> int:
    a = personas["client_a"]
    await set_level(a.id, level)
    return a.id


async def test_the_deposit_page_lists_the_methods_with_both_fees(client, personas):
    await ready(personas)
    card = await card_method()
    await card_method(
        name="Bank wire",
        kind="wire",
        provider="wire",
        provider_fee_percent=Decimal(0),
        provider_fee_fixed=Decimal(0),
    )
    await sign_in(client, personas["client_a"])
    page = await client.get("/portal/deposit")
    assert page.status_code == 200 and "<html" in page.text
    assert (
        "Visa / Mastercard" in page.text
        and "Our fee: 1%" in page.text
        and "Provider's fee: 2.5% + 0.30 USD" in page.text
    )
    assert 'href="/portal/deposit/wire"' in page.text
    assert f'<option value="{card["id"]}"' in page.text and 'name="idempotency_key"' in page.text
    fragment = await client.get("/portal/deposit", headers=HX)
    assert (
        fragment.status_code == 200 and "<html" not in fragment.text and 'id="deposit-page"' in fragment.text
    )


async def test_the_fee_preview_shows_both_fees_and_the_net_amount(client, personas):
    await ready(personas)
    card = await card_method()
    await sign_in(client, personas["client_a"])
    query = {"method_id": card["id"], "amount": "100", "currency": ""}
    fragment = await client.get("/portal/deposit/preview", params=query, headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    text = re.sub(r"\s+", " ", fragment.text)
    assert "1.00 USD" in text and "2.80 USD" in text and "96.20 USD" in text
    bad = await client.get("/portal/deposit/preview", params={**query, "amount": "10.001"}, headers=HX)
    assert "Enter a positive amount in USD." in bad.text
    page = await client.get("/portal/deposit/preview", params=query)
    assert "<html" in page.text and "96.20 USD" in page.text and 'value="100"' in page.text


async def test_a_bad_amount_is_shown_on_the_form_and_nothing_is_stored(client, personas):
    await ready(personas)
    card = await card_method()
    await sign_in(client, personas["client_a"])
    for htmx in (False, True):
        r = await post_form(
            client, "/portal/deposit", {"method_id": card["id"], "amount": "-5", "currency": "USD"}, htmx=htmx
        )
        assert r.status_code == 422 and "The amount must be positive." in r.text
        assert ("<html" in r.text) is not htmx
    r = await post_form(
        client, "/portal/deposit", {"method_id": card["id"], "amount": "100", "currency": "GBP"}
    )
    assert r.status_code == 422 and "takes USD, EUR, not GBP" in r.text
    assert await count_deposits() == 0


async def test_a_client_who_may_not_deposit_is_told_why(client, personas):
    await ready(personas, level=0)
    card = await card_method(kyc_level=0)
    await sign_in(client, personas["client_a"])
    page = await client.get("/portal/deposit")
    assert "level 1" in page.text and "Continue to the secure payment page" not in page.text
    r = await post_form(
        client, "/portal/deposit", {"method_id": card["id"], "amount": "100"}, page="/portal/deposit"
    )
    assert r.status_code == 403 and await count_deposits() == 0


async def test_the_form_sends_the_browser_to_the_hosted_page_once(client, personas, pay_sim):
    client_id = await ready(personas)
    card = await card_method()
    await sign_in(client, personas["client_a"])
    form = {"method_id": card["id"], "amount": "100", "currency": "USD", "idempotency_key": "dbl-click-1"}
    first = await post_form(client, "/portal/deposit", form, htmx=True)
    again = await post_form(client, "/portal/deposit", form, htmx=True)
    assert first.status_code == 200 and first.headers["HX-Redirect"].startswith(f"{pay_sim.url}/pay/pay_")
    assert again.headers["HX-Redirect"] == first.headers["HX-Redirect"]
    rows = await db.fetch(
        "SELECT id, provider_payment_id FROM funding_deposits WHERE client_id = {}", client_id
    )
    assert len(rows) == 1 and first.headers["HX-Redirect"].endswith(rows[0]["provider_payment_id"])
    plain = await post_form(client, "/portal/deposit", {**form, "idempotency_key": "no-js-1"})
    assert plain.status_code == 303 and re.fullmatch(
        r"/portal/deposits/\d+\?pay=1", plain.headers["location"]
    )


async def test_the_deposit_page_refreshes_while_open_and_is_404_to_others(client, personas):
    client_id = await ready(personas)
    card = await card_method()
    d = await deposits.create_deposit(SYSTEM, client_id, card["id"], Decimal("100"), "USD")
    await sign_in(client, personas["client_a"])
    page = await client.get(f"/portal/deposits/{d['id']}")
    assert page.status_code == 200 and "<html" in page.text and d["reference"] in page.text
    fragment = await client.get(f"/portal/deposits/{d['id']}", headers=HX)
    assert "<html" not in fragment.text and 'hx-trigger="every 15s"' in fragment.text
    await deposits.complete_deposit(SYSTEM, d["id"])
    done = await client.get(f"/portal/deposits/{d['id']}", headers=HX)
    assert (
        'hx-trigger="every 15s"' not in done.text
        and "96.20 USD" in done.text
        and 'data-status="completed"' in done.text
    )
    await set_level(personas["client_b"].id, 1)
    await sign_in(client, personas["client_b"])
    assert (await client.get(f"/portal/deposits/{d['id']}")).status_code == 404
    assert (await client.get(f"/portal/deposits/{d['id']}", headers=HX)).status_code == 404
    r = await post_form(client, f"/portal/deposits/{d['id']}/pay", {}, page="/portal/deposit")
    assert r.status_code == 404


async def test_a_client_pays_by_card_and_watches_the_deposit_complete(personas, app_server, pay_sim):
    """Over real HTTP: the portal form, the provider's hosted page, its webhook, the polled status."""
    await ready(personas)
    card = await card_method()
    await add_rate("EUR", "USD", "1.08")  # the method's limits are in USD
    await add_rate("USD", "EUR", "0.92")  # and so is its fixed fee
    async with httpx.AsyncClient(base_url=app_server.url, timeout=10) as browser:
        await sign_in(browser, personas["client_a"])
        token = await csrf_token(browser, "/portal/deposit")
        form = {
            "method_id": card["id"],
            "amount": "250.00",
            "currency": "EUR",
            "idempotency_key": "e2e-1",
            "_csrf_token": token,
        }
        r = await browser.post("/portal/deposit", data=form, headers=HX)
        assert r.status_code == 200, r.text[:3000]
        hosted = r.headers["HX-Redirect"]
        back = await pay_sim.pay(hosted)
        assert back.status_code == 303
        deposit_id = int(back.headers["location"].split("/portal/deposits/")[1].split("?")[0])
        deadline = time.monotonic() + 20
        while (
            'data-status="completed"'
            not in (page := await browser.get(f"/portal/deposits/{deposit_id}", headers=HX)).text
        ):
            assert time.monotonic() < deadline, page.text
            await asyncio.sleep(0.2)
    assert "Visa •••• 4242" in page.text and "EUR" in page.text
    d = await deposits.get_deposit(deposit_id)
    assert (d["amount"], d["currency"], d["credit_currency"]) == (Decimal("250.00"), "EUR", "EUR")
    assert (d["fee_broker"], d["fee_provider"], d["credited_amount"]) == (
        Decimal("2.50"),
        Decimal("6.53"),
        Decimal("240.97"),
    )
