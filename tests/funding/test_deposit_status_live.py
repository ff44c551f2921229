"""The portal's deposit page follows its deposit live: every status change is published on the
client's own topic, and their socket re-renders the deposit's card (swapped in by its id); another
client's topic hears nothing and another client's socket renders nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.core import live
from app.core.live import Event, render_for
from app.funding import deposits
from tests.funding.deposit_support import SYSTEM, card_method, set_level
from tests.personas import principal_of


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


@pytest.fixture
async def clients(personas) -> tuple:
    a, b = personas["client_a"], personas["client_b"]
    for p in (a, b):
        await set_level(p.id, 1)
    return a, b


def card_of(html: list[str], deposit_id: int) -> str:
    cards = [h for h in html if f'<section id="deposit-{deposit_id}"' in h]
    assert len(cards) <= 1
    return cards[0] if cards else ""


async def test_a_completed_deposit_reaches_its_clients_page_as_the_re_rendered_card_and_no_one_else(
    app, clients, published
):
    a, b = clients
    card = await card_method()
    d = await deposits.create_deposit(SYSTEM, a.id, card["id"], Decimal("100"), "USD")
    published.clear()
    await deposits.complete_deposit(SYSTEM, d["id"])
    events = [(topic, ids) for topic, type, ids in published if type == "funding.deposit"]
    assert (f"client:{a.id}", {"deposit_id": d["id"], "client_id": a.id}) in events
    assert not any(topic == f"client:{b.id}" for topic, _, _ in published)
    event = Event(f"client:{a.id}", "funding.deposit", {"deposit_id": d["id"], "client_id": a.id})
    html = card_of(await render_for(principal_of(a), event), d["id"])
    assert 'hx-swap-oob="true"' in html and 'data-status="completed"' in html and "96.20 USD" in html
    assert "hx-trigger" not in html  # settled: nothing left to ask for
    assert card_of(await render_for(principal_of(b), event), d["id"]) == ""
    stray = Event(f"client:{b.id}", "funding.deposit", {"deposit_id": d["id"], "client_id": a.id})
    assert card_of(await render_for(principal_of(a), stray), d["id"]) == ""
    assert await render_for(principal_of(b), stray) == []


async def test_every_status_change_of_a_deposit_is_announced_on_its_clients_topic(app, clients, published):
    a, _ = clients
    card = await card_method()
    first = await deposits.create_deposit(SYSTEM, a.id, card["id"], Decimal("50"), "USD")
    await deposits.mark_pending(SYSTEM, first["id"])
    await deposits.fail_deposit(SYSTEM, first["id"], "Declined by the card issuer.")
    second = await deposits.create_deposit(SYSTEM, a.id, card["id"], Decimal("60"), "USD")
    await deposits.cancel_deposit(SYSTEM, second["id"], "Left the payment page.")
    mine = [ids["deposit_id"] for topic, type, ids in published if (topic, type) == (f"client:{a.id}", "funding.deposit")]  # fmt: skip
    assert mine == [first["id"]] * 3 + [second["id"]] * 2  # created, pending, failed; created, cancelled
    event = Event(f"client:{a.id}", "funding.deposit", {"deposit_id": second["id"]})
    html = card_of(await render_for(principal_of(a), event), second["id"])
    assert 'data-status="cancelled"' in html and "Left the payment page." in html


async def test_an_open_deposits_card_carries_its_pay_form_with_the_sockets_csrf_token_and_a_slow_poll(
    app, clients
):
    a, _ = clients
    card = await card_method()
    d = await deposits.create_deposit(SYSTEM, a.id, card["id"], Decimal("70"), "USD")
    event = Event(f"client:{a.id}", "funding.deposit", {"deposit_id": d["id"]})
    html = card_of(await render_for(principal_of(a), event), d["id"])
    assert 'data-status="created"' in html and f'action="/portal/deposits/{d["id"]}/pay"' in html
    assert 'name="_csrf_token"' in html and 'hx-trigger="every 15s"' in html
