"""Portal › Withdraw: the live pre-checks before submitting, one withdrawal per form however often
it is submitted, the status page, cancelling, and nobody else's withdrawals."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from app.core import db
from tests.conftest import csrf_token
from tests.funding.withdraw_support import card_deposit, install_provider, wallet_of
from tests.personas import sign_in

HX = {"HX-Request": "true"}


@pytest.fixture
async def ready(personas):
    install_provider()
    a = personas["client_a"]
    await db.fetchrow(
        "INSERT INTO kyc_profiles (client, entity_type, level, nationality, address, source_of_funds, updated_at) "
        "VALUES ($1, 'individual', 2, '', '', '', now())",
        a.id,
    )
    await card_deposit(a.id, Decimal("500"))
    return personas


def checks_url(amount: str) -> str:
    return f"/portal/withdraw/checks?source=wallet:USD&amount={amount}&destination=card:tok_4242"


async def test_the_form_shows_sources_destinations_and_a_fresh_key(client, ready):
    await sign_in(client, ready["client_a"])
    r = await client.get("/portal/withdraw")
    assert r.status_code == 200
    assert "USD wallet" in r.text and "Visa •••• 4242" in r.text
    assert re.search(r'name="idempotency_key" value="[0-9a-f]{32}"', r.text)


async def test_the_live_checks_return_only_the_fragment_for_htmx(client, ready):
    await sign_in(client, ready["client_a"])
    r = await client.get(checks_url("100"), headers=HX)
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<div id="withdraw-live"')
    assert (
        'id="withdraw-submit"' in r.text
        and "disabled" not in r.text.split('id="withdraw-submit"')[1].split(">")[0]
    )


async def test_the_live_checks_disable_submit_when_something_blocks(client, ready):
    await sign_in(client, ready["client_a"])
    r = await client.get(checks_url("900"), headers=HX)
    assert "The amount is more than that" in r.text
    assert "disabled" in r.text.split('id="withdraw-submit"')[1].split(">")[0]


async def test_the_checks_url_without_htmx_renders_the_whole_page(client, ready):
    await sign_in(client, ready["client_a"])
    r = await client.get(checks_url("900"))
    assert r.status_code == 200 and "<html" in r.text.lower()
    assert "The amount is more than that" in r.text


async def test_a_double_submitted_form_creates_one_withdrawal(client, ready):
    a = ready["client_a"]
    await sign_in(client, a)
    token = await csrf_token(client, "/portal/withdraw")
    form = {"source": "wallet:USD", "amount": "120", "destination": "card:tok_4242", "idempotency_key": "k" * 32,
            "_csrf_token": token}  # fmt: skip
    first = await client.post("/portal/withdraw", data=form)
    second = await client.post("/portal/withdraw", data=form)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    count = await db.fetchrow("SELECT count(*) AS n FROM funding_withdrawals WHERE client_id = $1", a.id)
    assert count == {"n": 1}
    assert await wallet_of(a.id) == {"available": Decimal("380"), "held": Decimal("120")}


async def test_a_blocked_submit_is_refused_with_the_reasons(client, ready):
    await sign_in(client, ready["client_a"])
    token = await csrf_token(client, "/portal/withdraw")
    form = {"source": "wallet:USD", "amount": "9000", "destination": "card:tok_4242", "idempotency_key": "x1",
            "_csrf_token": token}  # fmt: skip
    r = await client.post("/portal/withdraw", data=form, headers=HX)
    assert r.status_code == 422 and "The amount is more than that" in r.text
    assert 'id="withdraw-form"' in r.text and "<html" not in r.text.lower()


async def test_htmx_submit_redirects_with_hx_redirect(client, ready):
    await sign_in(client, ready["client_a"])
    token = await csrf_token(client, "/portal/withdraw")
    form = {"source": "wallet:USD", "amount": "10", "destination": "card:tok_4242", "idempotency_key": "x2",
            "_csrf_token": token}  # fmt: skip
    r = await client.post("/portal/withdraw", data=form, headers=HX)
    assert r.status_code == 200 and r.headers["HX-Redirect"].startswith("/portal/withdrawals/")


async def _withdrawal(client, persona) -> str:
    await sign_in(client, persona)
    token = await csrf_token(client, "/portal/withdraw")
    form = {"source": "wallet:USD", "amount": "50", "destination": "card:tok_4242", "idempotency_key": "s1",
            "_csrf_token": token}  # fmt: skip
    r = await client.post("/portal/withdraw", data=form)
    return r.headers["location"]


async def test_the_status_page_and_its_fragment(client, ready):
    url = await _withdrawal(client, ready["client_a"])
    page = await client.get(url)
    assert page.status_code == 200 and "waiting for approval" in page.text and "<html" in page.text.lower()
    fragment = await client.get(url, headers=HX)
    assert fragment.text.lstrip().startswith("{") is False and 'id="withdrawal-status"' in fragment.text
    assert "<html" not in fragment.text.lower()


async def test_cancelling_with_and_without_htmx(client, ready):
    a = ready["client_a"]
    url = await _withdrawal(client, a)
    token = await csrf_token(client, url)
    r = await client.post(url + "/cancel", data={"_csrf_token": token}, headers=HX)
    assert r.status_code == 200 and "cancelled" in r.text and "<html" not in r.text.lower()
    assert await wallet_of(a.id) == {"available": Decimal("500"), "held": Decimal("0")}
    again = await client.post(url + "/cancel", data={"_csrf_token": token})
    assert again.status_code == 422 and "<html" in again.text.lower()


async def test_another_client_gets_404(client, ready):
    url = await _withdrawal(client, ready["client_a"])
    await sign_in(client, ready["client_b"])
    assert (await client.get(url)).status_code == 404
    token = await csrf_token(client, "/portal/withdraw")
    assert (await client.post(url + "/cancel", data={"_csrf_token": token})).status_code == 404


async def test_staff_and_visitors_cannot_use_the_portal_form(client, ready):
    await sign_in(client, ready["finance"])
    assert (await client.get("/portal/withdraw")).status_code == 403
    await sign_in(client, ready["outsider"])
    r = await client.get("/portal/withdraw")
    assert r.status_code in (302, 303) and "/portal/login" in r.headers["location"]
