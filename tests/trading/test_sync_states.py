"""State sync against the real simulator: balances, equity, margin and positions follow the server,
and only the clients whose accounts changed get a live event."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import asyncpg
import pytest

from app.core import db, live
from app.trading import platform as p
from app.trading import sync
from app.trading.connections import platform_for
from app.trading.sync_states import publish_accounts
from tests.trading.sync_support import open_accounts, sync_row


class Events:
    """What the live channel carries, as a browser's web process would hear it."""

    def __init__(self) -> None:
        self.seen: list[dict] = []
        self.conn: asyncpg.Connection | None = None

    async def start(self) -> None:
        self.conn = await asyncpg.connect(dsn=db.current_url())
        await self.conn.add_listener(live.CHANNEL, lambda *args: self.seen.append(json.loads(args[3])))

    async def drain(self) -> list[dict]:
        await asyncio.sleep(0.2)
        out, self.seen = self.seen, []
        return [e for e in out if e["type"] == "trading.account"]

    async def stop(self) -> None:
        if self.conn is not None:
            await self.conn.close()


@pytest.fixture
async def events(settings):
    listener = Events()
    await listener.start()
    yield listener
    await listener.stop()


async def account_row(account_id: int) -> dict:
    row = await db.fetchrow("SELECT * FROM trading_accounts WHERE id = $1", account_id)
    assert row is not None
    return row


async def test_a_balance_operation_on_the_server_shows_in_the_account_state(trading_server):
    (account,) = await open_accounts(trading_server.id, 1, deposit=Decimal("1000"))
    await sync.sync_states(trading_server.id)
    row = await account_row(account.account_id)
    assert (row["balance"], row["equity"], row["margin"], row["credit"]) == (
        Decimal("1000"),
        Decimal("1000"),
        0,
        0,
    )
    assert row["state_at"] is not None

    platform = await platform_for(trading_server.id)
    await platform.balance_operation(account.login, p.BalanceType.BALANCE, Decimal("234.56"), "desk deposit")
    await platform.balance_operation(account.login, p.BalanceType.CREDIT, Decimal("50"), "credit line")
    result = await sync.sync_states(trading_server.id)
    assert result.accounts_changed == 1
    row = await account_row(account.account_id)
    assert (row["balance"], row["credit"], row["equity"]) == (
        Decimal("1234.56"),
        Decimal("50"),
        Decimal("1284.56"),
    )
    assert (await sync_row(trading_server.id))["states_synced_at"] is not None


async def test_open_positions_appear_and_disappear_as_on_the_server(trading_server, mt5_sim):
    mt5_sim.control(paused=True)  # prices move only when the test steps the market
    accounts = await open_accounts(trading_server.id, 3)
    logins = [a.login for a in accounts]
    platform = await platform_for(trading_server.id)
    appeared = disappeared = 0
    previous: set[int] = set()
    for _ in range(20):
        mt5_sim.control(step=5)
        result = await sync.sync_states(trading_server.id)
        on_server = {x.position: x for x in await platform.fetch_positions(logins)}
        rows = await db.fetch("SELECT * FROM trading_positions ORDER BY position")
        assert {r["position"] for r in rows} == set(on_server)
        for r in rows:
            x = on_server[r["position"]]
            assert (r["login"], r["volume"], r["price_current"], r["profit"]) == (
                x.login, x.volume, x.price_current, x.profit,
            )  # fmt: skip
            assert r["account_id"] in {a.account_id for a in accounts}
        appeared += len(set(on_server) - previous)
        disappeared += len(previous - set(on_server))
        assert result.positions_closed == len(previous - set(on_server))
        previous = set(on_server)
        if appeared and disappeared:
            break
    assert appeared and disappeared


async def test_only_the_clients_whose_accounts_changed_get_a_live_event(trading_server, events):
    accounts = await open_accounts(trading_server.id, 3)
    first = await sync.sync_states(trading_server.id)
    assert first.accounts_changed == 3  # never read before
    assert {e["topic"] for e in await events.drain()} == {f"client:{a.client_id}" for a in accounts}

    quiet = await sync.sync_states(trading_server.id)
    assert (quiet.accounts_changed, quiet.published) == (0, 0)
    assert await events.drain() == []

    platform = await platform_for(trading_server.id)
    await platform.balance_operation(accounts[1].login, p.BalanceType.BALANCE, Decimal("5"), "top up")
    result = await sync.sync_states(trading_server.id)
    assert (result.accounts_changed, result.published) == (1, 1)
    assert await events.drain() == [
        {"topic": f"client:{accounts[1].client_id}", "type": "trading.account",
         "ids": {"account_id": accounts[1].account_id}, "origin": None}
    ]  # fmt: skip


async def test_many_changed_accounts_publish_the_same_events_in_one_statement(trading_server, events):
    events_for = [(1000 + i, i) for i in range(120)]
    async with db.transaction():
        assert await publish_accounts(events_for) == 120
    seen = await events.drain()
    assert len(seen) == 120
    assert seen[0] == {
        "topic": "client:1000",
        "type": "trading.account",
        "ids": {"account_id": 0},
        "origin": None,
    }


async def test_a_state_sync_failure_is_recorded_and_a_later_success_clears_it(trading_server, mt5_sim):
    await open_accounts(trading_server.id, 1)
    await sync.sync_states(trading_server.id)
    mt5_sim.control(error_rate=1.0)
    with pytest.raises(p.PlatformError):
        await sync.sync_states(trading_server.id)
    state = await sync_row(trading_server.id)
    assert state["status"] == "error" and state["errors_total"] == 1
    assert state["last_error"].startswith("states: ")
    mt5_sim.control(error_rate=0.0)
    await sync.sync_states(trading_server.id)
    state = await sync_row(trading_server.id)
    assert state["status"] == "ok" and state["last_error"].startswith("states: ")  # kept for ops to read
