"""Deal sync against the real simulator: every deal stored once, in UTC, whatever the overlap,
the server's clock or an outage; gaps detected and back-filled."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.core import db
from app.trading import platform as p
from app.trading import sync
from app.trading import sync_deals as sync_deals_module
from app.trading.connections import platform_for
from tests.trading.conftest import start_sim
from tests.trading.sync_support import (
    gaps,
    link,
    open_accounts,
    open_on_server,
    server_tickets,
    stored_tickets,
    sync_row,
)


async def deposit(server_id: int, login: int, amount: str, comment: str = "deposit") -> int:
    platform = await platform_for(server_id)
    return await platform.balance_operation(login, p.BalanceType.BALANCE, Decimal(amount), comment)


async def test_each_deal_is_stored_once_across_repeated_runs_and_overlapping_windows(trading_server, mt5_sim):
    accounts = await open_accounts(trading_server.id, 3)
    logins = [a.login for a in accounts]
    mt5_sim.control(step=60)  # the simulated traders open and close positions
    first = await sync.sync_deals(trading_server.id)
    assert first.inserted == first.fetched > 3
    await sync.sync_deals(trading_server.id)  # nothing new: the overlap re-reads, stores nothing
    mt5_sim.control(step=60)
    await sync.sync_deals(trading_server.id)
    # A much wider window than needed (as after a crash before the mark moved) stores nothing twice.
    await db.fetch("UPDATE trading_sync_state SET last_deal_time = 0, last_deal_ticket = 0")
    again = await sync.sync_deals(trading_server.id)
    assert again.inserted == 0 and again.fetched > 0

    on_server = await server_tickets(trading_server.id, logins)
    assert await stored_tickets(trading_server.id) == on_server
    state = await sync_row(trading_server.id)
    assert state["deals_total"] == len(on_server)
    assert state["status"] == "ok" and state["last_error"] == ""
    assert state["last_deal_ticket"] == on_server[-1]
    unresolved = await db.fetch("SELECT count(*) AS n FROM trading_deals WHERE account_id IS NULL")
    assert unresolved[0]["n"] == 0


async def test_a_deposit_on_the_server_is_stored_as_a_deal_of_its_account_and_client(trading_server):
    (account,) = await open_accounts(trading_server.id, 1, deposit=None)
    await sync.sync_deals(trading_server.id)
    ticket = await deposit(trading_server.id, account.login, "250.50", "fx:op123")
    before = time.time()
    result = await sync.sync_deals(trading_server.id)
    assert result.inserted == 1
    (deal,) = await db.fetch("SELECT * FROM trading_deals WHERE deal = {}", ticket)
    assert (deal["account_id"], deal["client_id"], deal["login"]) == (
        account.account_id,
        account.client_id,
        account.login,
    )
    assert (deal["action"], deal["profit"], deal["comment"]) == (2, Decimal("250.50"), "fx:op123")
    assert abs(deal["time"].timestamp() - before) < 5
    assert result.lag_ms is not None and result.lag_ms < 5000


async def test_deal_times_are_stored_in_utc_when_the_server_clock_is_offset(trading_server, mt5_sim):
    mt5_sim.control(clock_offset_seconds=7200)  # a broker's server on UTC+2
    (account,) = await open_accounts(trading_server.id, 1)
    await sync.sync_deals(trading_server.id)
    (deal,) = await db.fetch("SELECT time, platform_time FROM trading_deals")
    now = datetime.now(UTC).timestamp()
    assert abs(deal["time"].timestamp() - now) < 5
    assert abs(deal["platform_time"] - 7200 - now) < 5
    assert (await sync_row(trading_server.id))["clock_offset_seconds"] == 7200


async def test_a_server_clock_moving_back_opens_a_gap_and_no_deal_is_missed(trading_server, mt5_sim):
    (account,) = await open_accounts(trading_server.id, 1)
    await sync.sync_deals(trading_server.id)
    mt5_sim.control(clock_offset_seconds=-3600)  # the server's clock goes back an hour
    ticket = await deposit(trading_server.id, account.login, "100")  # timed an hour behind the mark
    result = await sync.sync_deals(trading_server.id)
    assert result.clock_offset == -3600 and result.inserted == 1
    assert ticket in await stored_tickets(trading_server.id)
    (deal,) = await db.fetch("SELECT time FROM trading_deals WHERE deal = {}", ticket)
    assert abs(deal["time"].timestamp() - time.time()) < 5  # UTC, not the server's shifted clock
    # Recorded for ops, and resolved by the run that re-read behind the mark:
    (gap,) = await gaps(trading_server.id)
    assert gap["note"].startswith("Server clock moved -3600 s (UTC+0 s → UTC-3600 s)")
    assert gap["resolved_at"] is not None and result.gaps_resolved == 1
    assert (await sync_row(trading_server.id))["clock_offset_seconds"] == -3600
    assert (await sync.sync_deals(trading_server.id)).gaps_opened == 0  # measured once, not every run


async def test_a_deal_turning_up_below_the_high_water_mark_is_a_gap_and_the_window_is_re_read(trading_server):
    (account,) = await open_accounts(trading_server.id, 1, deposit=None)
    late = await deposit(trading_server.id, account.login, "10")
    await asyncio.sleep(1.1)  # the next deal is a second later on the server
    await deposit(trading_server.id, account.login, "20")
    await sync.sync_deals(trading_server.id)
    # As if the first deal had not been visible yet when the window passed it:
    await db.fetch("DELETE FROM trading_deals WHERE deal = {}", late)

    result = await sync.sync_deals(trading_server.id)
    assert (result.inserted, result.late, result.gaps_opened) == (1, 1, 1)
    (gap,) = await gaps(trading_server.id)
    assert (gap["from_ticket"], gap["to_ticket"]) == (late, late)
    assert "arrived late" in gap["note"] and gap["resolved_at"] is None

    result = await sync.sync_deals(trading_server.id)
    assert result.since <= (await sync_row(trading_server.id))["last_deal_time"] - 600 + 5
    assert result.gaps_resolved == 1
    assert (await gaps(trading_server.id))[0]["resolved_at"] is not None


async def test_the_back_fill_finds_deals_the_incremental_runs_missed(trading_server, mt5_sim):
    accounts = await open_accounts(trading_server.id, 2)
    mt5_sim.control(step=40)
    await sync.sync_deals(trading_server.id)
    stored = await stored_tickets(trading_server.id)
    missed = stored[1:4]
    await db.fetch("DELETE FROM trading_deals WHERE deal = ANY({}::bigint[])", missed)
    # Nothing stamped before the mark minus the overlap is read again by the incremental runs:
    await db.fetch("UPDATE trading_sync_state SET last_deal_time = last_deal_time + 60")
    assert (await sync.sync_deals(trading_server.id)).inserted == 0

    result = await sync.backfill(trading_server.id, hours=1)
    assert result.inserted == len(missed)
    assert await stored_tickets(trading_server.id) == await server_tickets(
        trading_server.id, [a.login for a in accounts]
    )
    (gap,) = await gaps(trading_server.id)
    assert (gap["from_ticket"], gap["to_ticket"]) == (missed[0], missed[-1])
    assert gap["resolved_at"] is not None and "found by the back-fill" in gap["note"]
    assert (await sync.backfill(trading_server.id, hours=1)).inserted == 0


async def test_a_login_linked_after_its_first_deals_gets_its_whole_history(trading_server):
    await open_accounts(trading_server.id, 1)
    await sync.sync_deals(trading_server.id)
    login = await open_on_server(trading_server.id, deposit=Decimal("5000"))  # on MT5, not yet in the CRM
    await sync.sync_deals(trading_server.id)
    await db.fetch("UPDATE trading_sync_state SET last_deal_time = last_deal_time + 60")  # its deposit is old
    linked = await link(trading_server.id, login, "late_linker")

    result = await sync.sync_deals(trading_server.id)
    assert result.new_logins == 1
    rows = await db.fetch("SELECT client_id, profit FROM trading_deals WHERE login = {}", login)
    assert [(r["client_id"], r["profit"]) for r in rows] == [(linked.client_id, Decimal("5000.00"))]
    assert await gaps(trading_server.id) == []  # history of a new link is not a gap


async def test_an_outage_is_recorded_and_the_next_run_catches_up_without_loss(
    trading_server, mt5_sim, tmp_path
):
    accounts = await open_accounts(trading_server.id, 3)
    logins = [a.login for a in accounts]
    mt5_sim.control(step=30)
    await sync.sync_deals(trading_server.id)
    mt5_sim.stop()

    with pytest.raises(p.PlatformError):
        await sync.sync_deals(trading_server.id)
    with pytest.raises(p.PlatformError):
        await sync.sync_states(trading_server.id)
    state = await sync_row(trading_server.id)
    assert state["status"] == "error" and state["errors_total"] == 2
    assert state["last_error"].startswith("states: ") and state["last_error_at"] is not None

    # The server comes back with its history; its traders and the desk carry on before sync does.
    back = start_sim(mt5_sim.state, port=mt5_sim.port)
    try:
        back.control(step=40)
        for login in logins:
            await deposit(trading_server.id, login, "1.25", "after the outage")
        result = await sync.sync_deals(trading_server.id)
        assert result.inserted > len(logins)
        await sync.sync_deals(trading_server.id)
        assert await stored_tickets(trading_server.id) == await server_tickets(trading_server.id, logins)
        state = await sync_row(trading_server.id)
        assert state["deals_total"] == len(await stored_tickets(trading_server.id))
        assert state["status"] == "error"  # the state sync has not succeeded yet: its error stands
        await sync.sync_states(trading_server.id)
        assert (await sync_row(trading_server.id))["status"] == "ok"
    finally:
        back.stop()


async def test_a_login_linked_while_no_sync_ran_gets_its_history_on_the_next_process_start(trading_server):
    await open_accounts(trading_server.id, 1)
    await sync.sync_deals(trading_server.id)
    login = await open_on_server(trading_server.id, deposit=Decimal("700"))
    await db.fetch("UPDATE trading_sync_state SET last_deal_time = last_deal_time + 60")
    await link(trading_server.id, login, "linked_offline")
    sync_deals_module._known_logins.clear()  # a new worker process: it has not seen any login yet

    result = await sync.sync_deals(trading_server.id)
    assert result.new_logins == 1
    assert await db.fetch("SELECT profit FROM trading_deals WHERE login = {}", login) == [
        {"profit": Decimal("700.00")}
    ]
    assert (await sync.sync_deals(trading_server.id)).new_logins == 0
