"""The portal's transfer page and result page, and finance's approval queue, through HTTP: with
and without htmx, double submits, and nobody else's transfer (404)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from app.core import db
from tests.conftest import csrf_token, post_form
from tests.funding.transfer_support import fund, open_live, verified, wallet
from tests.personas import sign_in

HX = {"HX-Request": "true"}


def form_key(html: str) -> str:
    m = re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', html)
    assert m, html[:2000]
    return m.group(1)


@pytest.fixture
async def sender(personas):
    a, b = personas["client_a"], personas["client_b"]
    await verified(a, 2)
    await verified(b, 1)
    await fund(a.id, Decimal(500))
    return a


async def send_to_b(client, personas, htmx: bool = False, **overrides):
    page = (await client.get("/portal/transfer")).text
    data = {
        "from": "wallet:USD",
        "to": "client",
        "amount": "75.25",
        "recipient_email": personas["client_b"].email,
        "recipient_ref": str(personas["client_b"].id),
        "idempotency_key": form_key(page),
        **overrides,
    }
    return await post_form(client, "/portal/transfer", data, page="/portal/transfer", htmx=htmx)


@pytest.mark.parametrize("htmx", [False, True])
async def test_the_transfer_page_is_a_page_or_its_fragment(client, personas, sender, htmx: bool):
    await sign_in(client, sender)
    r = await client.get("/portal/transfer", headers=HX if htmx else {})
    assert r.status_code == 200
    assert 'id="transfer-form"' in r.text and "USD wallet" in r.text
    assert ("<html" in r.text) is not htmx
    assert ("Transfer money" in r.text) is not htmx


@pytest.mark.parametrize("htmx", [False, True])
async def test_a_submitted_transfer_leads_to_its_result_page(client, personas, sender, htmx: bool):
    await sign_in(client, sender)
    r = await send_to_b(client, personas, htmx=htmx)
    row = await db.fetchrow("SELECT id, status, amount FROM funding_transfers")
    assert row is not None and (row["status"], row["amount"]) == ("awaiting_approval", Decimal("75.25"))
    url = f"/portal/transfers/{row['id']}"
    if htmx:
        assert (r.status_code, r.headers["HX-Redirect"]) == (200, url)
    else:
        assert (r.status_code, r.headers["location"]) == (303, url)
    page = await client.get(url, headers=HX if htmx else {})
    assert page.status_code == 200
    assert "Awaiting approval" in page.text and "75.25 USD" in page.text
    assert ("<html" in page.text) is not htmx


async def test_a_double_clicked_submit_makes_one_transfer(client, personas, sender):
    await sign_in(client, sender)
    page = (await client.get("/portal/transfer")).text
    token = await csrf_token(client, "/portal/transfer")
    data = {"from": "wallet:USD", "to": "client", "amount": "10", "recipient_email": personas["client_b"].email,
            "recipient_ref": str(personas["client_b"].id), "idempotency_key": form_key(page), "_csrf_token": token}  # fmt: skip
    first = await client.post("/portal/transfer", data=data)
    second = await client.post("/portal/transfer", data=data)
    assert first.headers["location"] == second.headers["location"]
    assert (await db.fetchrow("SELECT count(*) AS n FROM funding_transfers"))["n"] == 1
    assert (await wallet(sender.id)).held == Decimal(10)


@pytest.mark.parametrize("htmx", [False, True])
async def test_a_bad_transfer_shows_the_reason_beside_the_field_and_keeps_the_form_key(
    client, personas, sender, htmx: bool
):
    await sign_in(client, sender)
    r = await send_to_b(client, personas, htmx=htmx, amount="600", idempotency_key="k" * 32)
    assert r.status_code == 422
    assert "Not enough available funds" in r.text
    assert 'value="' + "k" * 32 + '"' in r.text
    r = await send_to_b(client, personas, htmx=htmx, recipient_email="nobody@nowhere.test")
    assert r.status_code == 422 and "No client matches" in r.text
    r = await send_to_b(client, personas, htmx=htmx, to="wallet")
    assert r.status_code == 422 and "already in your wallet" in r.text
    assert (await db.fetchrow("SELECT count(*) AS n FROM funding_transfers"))["n"] == 0


async def test_another_client_gets_404_for_a_transfer_that_is_not_theirs(client, personas, sender):
    await sign_in(client, sender)
    await send_to_b(client, personas)
    row = await db.fetchrow("SELECT id FROM funding_transfers")
    await sign_in(client, personas["client_b"])  # the recipient, before approval
    assert (await client.get(f"/portal/transfers/{row['id']}")).status_code == 404
    await sign_in(client, personas["ib"])
    assert (await client.get(f"/portal/transfers/{row['id']}")).status_code == 404
    assert (await client.get("/portal/transfers/999999")).status_code == 404


async def test_a_transfer_to_a_trading_account_through_the_portal_reaches_mt5(
    client, personas, sender, ops_server
):
    await sign_in(client, sender)
    account = await open_live(ops_server, sender.id)
    page = (await client.get("/portal/transfer")).text
    assert f"Account {account['login']}" in page
    data = {
        "from": "wallet:USD",
        "to": f"account:{account['id']}",
        "amount": "120",
        "idempotency_key": form_key(page),
    }
    r = await post_form(client, "/portal/transfer", data, page="/portal/transfer", htmx=True)
    row = await db.fetchrow("SELECT id, status FROM funding_transfers")
    assert r.headers["HX-Redirect"] == f"/portal/transfers/{row['id']}"
    assert row["status"] == "done"
    shown = await client.get(f"/portal/transfers/{row['id']}")
    assert "Done" in shown.text and "every 2s" not in shown.text
    assert (await wallet(sender.id)).available == Decimal(380)


@pytest.mark.parametrize("htmx", [False, True])
async def test_finance_sees_the_queue_and_approves_a_transfer(client, personas, sender, htmx: bool):
    await sign_in(client, sender)
    await send_to_b(client, personas)
    row = await db.fetchrow("SELECT id FROM funding_transfers")
    await sign_in(client, personas["finance"])
    r = await client.get("/staff/funding/transfers", headers=HX if htmx else {})
    assert r.status_code == 200 and f'id="transfer-row-{row["id"]}"' in r.text
    assert ("<html" in r.text) is not htmx
    r = await post_form(
        client,
        f"/staff/funding/transfers/{row['id']}/approve",
        {},
        page="/staff/funding/transfers",
        htmx=htmx,
    )
    if htmx:
        assert r.status_code == 200 and f"Transfer {row['id']} approved." in r.text
        assert "No transfer is waiting for approval." in r.text
    else:
        assert (r.status_code, r.headers["location"]) == (303, "/staff/funding/transfers")
    assert (await wallet(personas["client_b"].id)).available == Decimal("75.25")


@pytest.mark.parametrize("htmx", [False, True])
async def test_finance_rejects_a_transfer_with_a_reason_the_client_then_reads(
    client, personas, sender, htmx: bool
):
    await sign_in(client, sender)
    await send_to_b(client, personas)
    row = await db.fetchrow("SELECT id FROM funding_transfers")
    await sign_in(client, personas["finance"])
    url = f"/staff/funding/transfers/{row['id']}/reject"
    r = await post_form(client, url, {"reason": ""}, page="/staff/funding/transfers", htmx=htmx)
    assert r.status_code == 422 and "Say why" in r.text
    r = await post_form(
        client, url, {"reason": "Unknown recipient"}, page="/staff/funding/transfers", htmx=htmx
    )
    assert r.status_code == (200 if htmx else 303)
    await sign_in(client, sender)
    page = await client.get(f"/portal/transfers/{row['id']}")
    assert "Rejected" in page.text and "Unknown recipient" in page.text
    assert (await wallet(sender.id)).available == Decimal(500)


async def test_only_finance_reaches_the_transfer_queue(client, personas, sender):
    await sign_in(client, sender)
    await send_to_b(client, personas)
    row = await db.fetchrow("SELECT id FROM funding_transfers")
    await sign_in(client, personas["sales"])
    assert (await client.get("/staff/funding/transfers")).status_code in (403, 404)
    await sign_in(client, sender)
    assert (await client.get("/staff/funding/transfers")).status_code in (401, 403, 404)
    r = await client.post(f"/staff/funding/transfers/{row['id']}/approve")
    assert r.status_code in (401, 403, 404)
    assert (await db.fetchrow("SELECT status FROM funding_transfers"))["status"] == "awaiting_approval"


async def test_finance_sees_transfers_in_flight_and_failed_with_their_mt5_operations(
    client, personas, sender, ops_server, mt5_sim, monkeypatch
):
    from app.funding import transfers
    from tests.funding.transfer_support import client_actor, key

    account = await open_live(ops_server, sender.id)
    actor = client_actor(sender.id)
    mt5_sim.control(fail_next=[{"command": "trade/balance", "retcode": 1002, "count": 1}])
    failed = await transfers.wallet_to_account(actor, sender.id, account["id"], Decimal(10), key())

    async def later(transfer_id: int, _actor) -> dict:
        return await transfers.get_transfer(transfer_id)

    monkeypatch.setattr(transfers, "_send_after_commit", later)
    pending = await transfers.wallet_to_account(actor, sender.id, account["id"], Decimal(20), key())
    await sign_in(client, personas["finance"])
    r = await client.get("/staff/funding/transfers")
    assert r.status_code == 200
    assert "disabled on the trading server" in r.text and failed["op_id"] in r.text
    assert pending["op_id"] in r.text and "Waiting to be sent to the trading server" in r.text
    assert f'href="/staff/accounts/{account["id"]}/balance"' in r.text
