"""Portal › Wallet and the staff client page's funding panel: balances, trading accounts, the
history with its filters, and live updates rendered for the client they belong to only."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

from app.core import db, live
from app.core.audit import Actor
from app.core.live import Event, hub, render_for
from app.funding import deposits
from app.funding.live import watch_wallet
from tests.funding.support import funded_wallet, trading_account
from tests.funding.wallet_support import add_deposit, add_transfer, add_withdrawal, ago, set_status
from tests.personas import principal_of, sign_in


def _deposit_event(client_id: int, deposit_id: int) -> Event:
    return Event(
        topic=f"client:{client_id}",
        type="funding.deposit",
        ids={"deposit_id": deposit_id, "client_id": client_id},
    )


async def test_the_wallet_page_shows_balances_accounts_actions_and_history(client, personas):
    a = personas["client_a"].id
    await funded_wallet(Decimal("1234.50"), client_id=a)
    await trading_account(a)
    deposit = await add_deposit(a, "80.00", at=ago(1))
    await sign_in(client, personas["client_a"])
    r = await client.get("/portal/wallet")
    assert r.status_code == 200 and "<html" in r.text.lower()
    assert 'data-figure="available">1,234.50<' in r.text and 'data-figure="total">1,234.50<' in r.text
    for href in ("/portal/deposit", "/portal/withdraw", "/portal/transfer", "/portal/accounts"):
        assert f'href="{href}"' in r.text
    assert f'id="movement-deposit-{deposit}"' in r.text and "Processing" in r.text
    assert 'href="/portal/wallet" class="active"' in r.text  # the portal's nav has the wallet
    fragment = await client.get("/portal/wallet", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text.lower()
    assert 'id="wallet-balances"' in fragment.text


async def test_the_history_list_filters_and_pages_as_a_fragment_or_a_page(client, personas):
    a = personas["client_a"].id
    deposit = await add_deposit(a, at=ago(3))
    withdrawal = await add_withdrawal(a, at=ago(2))
    await sign_in(client, personas["client_a"])
    fragment = await client.get("/portal/wallet/history?kind=withdrawal", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text.lower()
    assert (
        f"movement-withdrawal-{withdrawal}" in fragment.text
        and f"movement-deposit-{deposit}" not in fragment.text
    )
    assert '<option value="withdrawal" selected>' in fragment.text
    page = await client.get("/portal/wallet/history?status=completed")
    assert page.status_code == 200 and "<html" in page.text.lower() and 'id="wallet-balances"' in page.text
    assert "Nothing matches these filters." in page.text
    nonsense = await client.get("/portal/wallet/history?kind=<script>&page=x", headers={"HX-Request": "true"})
    assert nonsense.status_code == 200 and "<script>" not in nonsense.text


async def test_another_client_sees_none_of_it(client, personas):
    a = personas["client_a"].id
    deposit = await add_deposit(a, "555.55")
    await funded_wallet(Decimal("777.77"), client_id=a)
    await sign_in(client, personas["client_b"])
    r = await client.get("/portal/wallet")
    assert r.status_code == 200
    assert "555.55" not in r.text and "777.77" not in r.text and f"movement-deposit-{deposit}" not in r.text
    assert 'id="no-wallets"' in r.text and 'id="no-movements"' in r.text


async def test_staff_and_outsiders_cannot_open_the_portal_wallet(client, personas):
    await sign_in(client, personas["finance"])
    assert (await client.get("/portal/wallet")).status_code == 403
    await sign_in(client, personas["outsider"])
    r = await client.get("/portal/wallet/history")
    assert r.status_code in (302, 303) and "/portal/login" in r.headers["location"]


async def test_the_renderer_sends_the_row_to_its_owner_and_nothing_to_anyone_else(app, personas):
    a, b = personas["client_a"].id, personas["client_b"].id
    deposit = await add_deposit(a, "99.00")
    event = _deposit_event(a, deposit)
    html = "".join(await render_for(principal_of(personas["client_a"]), event))
    assert re.search(
        rf'<li class="list-item movement" id="movement-deposit-{deposit}" hx-swap-oob="true"', html
    )
    assert "Processing" in html and 'id="history-sync"' in html
    assert await render_for(principal_of(personas["client_b"]), event) == []
    # A forged event on client_b's own topic naming client_a's deposit renders nothing either.
    forged = _deposit_event(b, deposit)
    assert await render_for(principal_of(personas["client_b"]), forged) == []
    assert await render_for(principal_of(personas["client_a"]), forged) == []
    # Staff: the funding panel for money roles, nothing for sales.
    panel = "".join(await render_for(principal_of(personas["finance"]), event))
    assert (
        '<div id="funding-panel" hx-swap-oob="innerHTML">' in panel and f"movement-deposit-{deposit}" in panel
    )
    assert await render_for(principal_of(personas["sales"]), event) == []


async def test_withdrawal_and_transfer_rows_follow_their_status(app, personas):
    a, b = personas["client_a"].id, personas["client_b"].id
    withdrawal = await add_withdrawal(a)
    incoming = await add_transfer(b, kind="client_to_client", to_client_id=a, status="awaiting_approval")
    owner, recipient = principal_of(personas["client_a"]), principal_of(personas["client_b"])
    w_event = Event(
        topic=f"client:{a}", type="funding.withdrawal", ids={"withdrawal_id": withdrawal, "client_id": a}
    )
    assert "Awaiting approval" in "".join(await render_for(owner, w_event))
    await set_status("funding_withdrawals", withdrawal, "paid")
    assert ">Paid<" in "".join(await render_for(owner, w_event))
    assert await render_for(recipient, w_event) == []
    t_event = Event(
        topic=f"client:{a}", type="funding.transfer", ids={"transfer_id": incoming, "client_id": a}
    )
    assert await render_for(owner, t_event) == []  # not the recipient's to see before it is done
    sender_event = Event(
        topic=f"client:{b}", type="funding.transfer", ids={"transfer_id": incoming, "client_id": b}
    )
    assert f"movement-transfer-{incoming}" in "".join(await render_for(recipient, sender_event))
    await set_status("funding_transfers", incoming, "done")
    html = "".join(await render_for(owner, t_event))
    assert f"movement-transfer-{incoming}" in html and "From Client Client_B" in html
    bad = Event(topic=f"client:{a}", type="funding.transfer", ids={"transfer_id": "x"})
    assert await render_for(owner, bad) == []


async def test_the_balances_block_is_rerendered_for_its_owner_only(app, personas):
    a = personas["client_a"].id
    await funded_wallet(Decimal("42.00"), client_id=a)
    event = Event(topic=f"client:{a}", type="funding.wallet", ids={"client_id": a})
    html = "".join(await render_for(principal_of(personas["client_a"]), event))
    assert '<section class="card" id="wallet-balances" hx-swap-oob="true">' in html
    assert 'data-figure="available">42.00<' in html
    assert await render_for(principal_of(personas["client_b"]), event) == []
    assert await render_for(principal_of(personas["sales"]), event) == []
    assert "42.00" in "".join(await render_for(principal_of(personas["dealing"]), event))


async def test_a_completed_deposit_reaches_the_open_wallet_through_the_live_channel(client, personas):
    a = personas["client_a"].id
    deposit = await add_deposit(a, "320.00")
    queue = hub.subscribe({f"client:{a}"})
    try:
        await deposits.complete_deposit(Actor.system("test"), deposit)
        seen: dict[str, str] = {}
        while {"funding.deposit", "funding.wallet"} - set(seen):
            event = await asyncio.wait_for(queue.get(), timeout=5)
            seen[event.type] = "".join(await render_for(principal_of(personas["client_a"]), event))
    finally:
        hub.unsubscribe(queue)
    assert (
        f'id="movement-deposit-{deposit}"' in seen["funding.deposit"]
        and "Completed" in seen["funding.deposit"]
    )
    assert 'data-figure="available">320.00<' in seen["funding.wallet"]


async def test_a_movement_published_by_hand_is_delivered_at_commit(client, personas):
    a = personas["client_a"].id
    queue = hub.subscribe({f"client:{a}"})
    try:
        async with db.transaction():
            deposit = await add_deposit(a, "12.00")
            await live.publish(f"client:{a}", "funding.deposit", deposit_id=deposit, client_id=a)
        event = await asyncio.wait_for(queue.get(), timeout=5)
    finally:
        hub.unsubscribe(queue)
    assert f"movement-deposit-{deposit}" in "".join(
        await render_for(principal_of(personas["client_a"]), event)
    )


async def test_only_staff_with_a_money_role_may_watch_a_clients_wallet(personas):
    a = personas["client_a"].id
    assert await watch_wallet(principal_of(personas["finance"]), str(a)) == f"client:{a}"
    assert await watch_wallet(principal_of(personas["sales"]), str(a)) is None
    assert await watch_wallet(principal_of(personas["client_a"]), str(a)) is None
    assert await watch_wallet(principal_of(personas["finance"]), "1 OR 1=1") is None


async def test_the_staff_funding_panel_and_history_for_money_roles(client, personas):
    a = personas["client_a"].id
    await funded_wallet(Decimal("10.00"), client_id=a)
    deposit = await add_deposit(a, "66.00")
    await sign_in(client, personas["compliance"])
    panel = await client.get(f"/staff/clients/{a}/funding", headers={"HX-Request": "true"})
    assert panel.status_code == 200 and "<html" not in panel.text.lower()
    assert f"movement-deposit-{deposit}" in panel.text and 'data-figure="available">10.00<' in panel.text
    page = await client.get(f"/staff/clients/{a}/funding")
    assert page.status_code == 200 and "?watch=wallet:" in page.text and 'id="funding-panel"' in page.text
    full = await client.get(f"/staff/clients/{a}/funding/history?kind=deposit")
    assert (
        full.status_code == 200
        and "<html" in full.text.lower()
        and f"movement-deposit-{deposit}" in full.text
    )
    part = await client.get(
        f"/staff/clients/{a}/funding/history?kind=withdrawal", headers={"HX-Request": "true"}
    )
    assert (
        part.status_code == 200 and "<html" not in part.text.lower() and "movement-deposit" not in part.text
    )
    assert (await client.get("/staff/clients/999999/funding")).status_code == 404
    await sign_in(client, personas["sales"])
    assert (await client.get(f"/staff/clients/{a}/funding")).status_code == 403
    await sign_in(client, personas["client_a"])
    assert (await client.get(f"/staff/clients/{a}/funding")).status_code in (302, 303, 403)
