"""What transfers tell open pages: events on the clients' and finance's topics when money moves,
and the fragments a live renderer swaps in (only for viewers who may see them)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.core import live
from app.core.audit import Actor
from app.funding import client_transfers, transfer_views, transfers
from app.funding import live as funding_live
from tests.funding.transfer_support import client_actor, fund, key, new_client, open_live
from tests.personas import principal_of, sign_in


@pytest.fixture
def published(monkeypatch) -> list[tuple[str, str, dict]]:
    """Events as published (the delivery at commit is the live module's own, tested there)."""
    seen: list[tuple[str, str, dict]] = []
    real = live.publish

    async def record(topic: str, type: str, **ids) -> None:
        seen.append((topic, type, ids))
        await real(topic, type, **ids)

    monkeypatch.setattr(live, "publish", record)
    return seen


async def test_a_transfer_to_mt5_tells_the_clients_pages_about_the_transfer_and_the_wallet(
    ops_server, published
):
    client = await new_client()
    await fund(client.id, Decimal(100))
    account = await open_live(ops_server, client.id)
    t = await transfers.wallet_to_account(
        client_actor(client.id), client.id, account["id"], Decimal(10), key()
    )
    mine = [
        (topic, type)
        for topic, type, ids in published
        if ids.get("transfer_id") == t["id"] or type == "funding.wallet"
    ]
    assert mine.count((f"client:{client.id}", "funding.transfer")) == 2  # requested, then done
    assert (f"client:{client.id}", "funding.wallet") in mine


async def test_a_client_to_client_transfer_tells_finance_and_after_approval_both_clients(personas, published):
    sender, recipient = await new_client(), await new_client(level=1)
    await fund(sender.id, Decimal(100))
    t = await client_transfers.request(
        client_actor(sender.id), sender.id, "USD", Decimal(5), recipient.email, str(recipient.id), key()
    )
    topics = {(topic, type) for topic, type, _ in published}
    assert ("staff:finance", "funding.transfer") in topics
    assert not any(topic == f"client:{recipient.id}" for topic, _ in topics)
    published.clear()
    finance = personas["finance"]
    await client_transfers.approve(
        principal_of(finance), t["id"], Actor("staff", str(finance.id), finance.email)
    )
    topics = {(topic, type) for topic, type, _ in published}
    for who in (sender.id, recipient.id):
        assert {(f"client:{who}", "funding.transfer"), (f"client:{who}", "funding.wallet")} <= topics
    assert ("staff:finance", "funding.transfer") in topics


async def test_the_live_fragments_render_only_for_viewers_who_may_see_them(app, personas):
    sender, recipient = await new_client(), await new_client(level=1)
    await fund(sender.id, Decimal(100))
    t = await client_transfers.request(
        client_actor(sender.id), sender.id, "USD", Decimal(5), recipient.email, str(recipient.id), key()
    )
    html = await transfer_views.live_status(principal_of(sender), t["id"])
    assert html is not None and f'id="transfer-{t["id"]}"' in html and 'hx-swap-oob="true"' in html
    assert await transfer_views.live_status(principal_of(recipient), t["id"]) is None
    assert await transfer_views.live_status(principal_of(personas["sales"]), t["id"]) is None
    queue = await transfer_views.live_queue(principal_of(personas["finance"]))
    assert queue is not None and f'id="transfer-row-{t["id"]}"' in queue
    assert await transfer_views.live_queue(principal_of(personas["sales"])) is None
    assert await transfer_views.live_queue(principal_of(sender)) is None


async def test_finance_s_transfers_page_watches_the_desk_and_only_those_who_decide_may(client, personas):
    finance = principal_of(personas["finance"])
    assert await funding_live.watch_finance(finance, "desk") == "staff:finance"
    assert await funding_live.watch_finance(finance, "elsewhere") is None
    assert await funding_live.watch_finance(principal_of(personas["sales"]), "desk") is None
    await sign_in(client, personas["finance"])
    page = await client.get("/staff/funding/transfers")
    assert page.status_code == 200 and 'ws-connect="/live?watch=finance:desk"' in page.text


async def test_a_transfer_event_swaps_in_finance_s_lists_and_the_sender_s_status_card(app, personas):
    sender, recipient = await new_client(), await new_client(level=1)
    await fund(sender.id, Decimal(100))
    t = await client_transfers.request(
        client_actor(sender.id), sender.id, "USD", Decimal(5), recipient.email, str(recipient.id), key()
    )
    ids = {"transfer_id": t["id"], "client_id": sender.id}
    desk = live.Event("staff:finance", "funding.transfer", ids)
    lists = await funding_live.transfer_changed(principal_of(personas["finance"]), desk)
    assert lists is not None and 'id="transfers-staff"' in lists and f'id="transfer-row-{t["id"]}"' in lists
    assert await funding_live.transfer_changed(principal_of(personas["sales"]), desk) is None
    assert await funding_live.transfer_changed(principal_of(sender), desk) is None
    own = live.Event(f"client:{sender.id}", "funding.transfer", ids)
    html = await funding_live.transfer_changed(principal_of(sender), own)
    assert html is not None and f'id="movement-transfer-{t["id"]}"' in html
    assert f'id="transfer-{t["id"]}"' in html and "Awaiting approval" in html
    assert await funding_live.transfer_changed(principal_of(recipient), own) is None
