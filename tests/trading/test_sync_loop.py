"""The per-server sync loop and its jobs: a change on the server is in the CRM within about two
seconds, one loop per server, and the cron starts the missing ones."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import asyncpg
import pytest

from app.core import db, jobs
from app.core.db import DB
from app.trading import jobs as trading_jobs
from app.trading import platform as p
from app.trading import sync
from app.trading.connections import platform_for
from app.trading.sync_core import LOCK_DEALS
from tests.trading.conftest import make_trading_server
from tests.trading.sync_support import open_accounts


async def wait_for(query: str, *args, timeout: float = 10.0) -> float:
    """Seconds until `query` returns a row."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await db.fetch(query, *args):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing after {timeout} s: {query}")


async def test_a_deposit_on_the_server_reaches_the_deal_table_and_the_balance_within_about_two_seconds(
    trading_server,
):
    (account,) = await open_accounts(trading_server.id, 1, deposit=Decimal("100"))
    stop = asyncio.Event()
    loop = asyncio.create_task(sync.run_loop(trading_server.id, stop=stop))
    try:
        await wait_for("SELECT 1 FROM trading_accounts WHERE balance = 100")
        platform = await platform_for(trading_server.id)
        ticket = await platform.balance_operation(account.login, p.BalanceType.BALANCE, Decimal("42"), "live")
        deal_after = await wait_for("SELECT 1 FROM trading_deals WHERE deal = {}", ticket)
        balance_after = await wait_for("SELECT 1 FROM trading_accounts WHERE balance = 142")
        assert deal_after < 3 and balance_after < 3  # target ~2 s; slack for a busy test machine
        assert await sync.run_loop(trading_server.id) == "already running"
    finally:
        stop.set()
        assert await loop == "stopped"


async def test_the_loop_ends_when_its_server_is_deactivated(trading_server, monkeypatch):
    monkeypatch.setattr(sync, "CHECK_EVERY", 0.1)
    loop = asyncio.create_task(sync.run_loop(trading_server.id))
    await asyncio.sleep(0.3)
    await db.fetch("UPDATE trading_servers SET active = false")
    assert await asyncio.wait_for(loop, 5) == "server inactive"
    assert await sync.run_loop(trading_server.id) == "server inactive"


async def test_the_loop_backs_off_while_the_server_is_down_and_recovers(trading_server, mt5_sim, monkeypatch):
    await open_accounts(trading_server.id, 1)
    calls: list[float] = []
    real = sync.sync_deals

    async def counted(server_id: int):
        calls.append(time.monotonic())
        return await real(server_id)

    monkeypatch.setattr(sync, "sync_deals", counted)
    mt5_sim.control(error_rate=1.0)
    stop = asyncio.Event()
    loop = asyncio.create_task(sync.run_loop(trading_server.id, stop=stop, deals_every=0.1, states_every=60))
    await asyncio.sleep(1.6)
    failing = len(calls)
    assert 3 <= failing <= 6  # 0.1, 0.2, 0.4, 0.8 s apart rather than every 0.1 s
    mt5_sim.control(error_rate=0.0)
    await wait_for("SELECT 1 FROM trading_sync_state WHERE status = 'ok'", timeout=10)
    stop.set()
    await loop


async def test_the_ensure_cron_starts_one_loop_per_active_server(settings, mt5_sim):
    active = await make_trading_server(mt5_sim)
    inactive = await make_trading_server(mt5_sim, name="Old MT5")
    await db.fetch("UPDATE trading_servers SET active = false WHERE id = {}", inactive.id)
    queue = await jobs.connect(db.current_url())
    try:
        assert await trading_jobs.trading_sync_ensure({}) == 1
        assert await trading_jobs.trading_sync_ensure({}) == 0  # already queued: the key stops a second one
        rows = await db.fetch("SELECT key, status FROM saq_jobs WHERE key LIKE 'trading-sync:%'")
        assert rows == [{"key": f"trading-sync:{active.id}", "status": "queued"}]
        job = await queue.job(f"trading-sync:{active.id}")
        assert job is not None and (job.function, job.kwargs, job.timeout) == (
            "trading_sync_loop", {"server_id": active.id}, 0,
        )  # fmt: skip
    finally:
        await jobs.disconnect()


@pytest.mark.parametrize("function", ["trading_sync_loop", "trading_sync_now", "trading_sync_ensure"])
def test_the_sync_jobs_are_registered_with_the_worker(function):
    jobs.load_job_modules()
    assert function in jobs._functions


async def test_two_runs_at_once_for_one_server_do_the_work_once(trading_server):
    await open_accounts(trading_server.id, 2)
    first, second = await asyncio.gather(
        sync.sync_deals(trading_server.id), sync.sync_deals(trading_server.id)
    )
    assert sorted([first.skipped, second.skipped]) == [False, True]
    assert first.inserted + second.inserted == 2


async def test_a_run_in_another_process_holding_the_server_makes_this_one_skip(trading_server):
    other = await asyncpg.connect(dsn=db.current_url())  # as another worker would hold it
    try:
        await other.execute("SELECT pg_advisory_lock($1, $2)", LOCK_DEALS, trading_server.id)
        assert (await sync.sync_deals(trading_server.id)).skipped
        assert not (await sync.sync_states(trading_server.id)).skipped  # a different lock
        await other.execute("SELECT pg_advisory_unlock($1, $2)", LOCK_DEALS, trading_server.id)
        assert not (await sync.sync_deals(trading_server.id)).skipped
    finally:
        await other.close()


async def test_a_loop_cancelled_mid_run_gives_every_database_connection_back(trading_server, mt5_sim):
    """A worker shutting down cancels the loop: runs finish their writes, nothing is left checked out."""
    await open_accounts(trading_server.id, 5)
    mt5_sim.control(trade_rate=200)
    loop = asyncio.create_task(sync.run_loop(trading_server.id, deals_every=0.01, states_every=0.01))
    await asyncio.sleep(1.5)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    for delay in (0.005, 0.01, 0.02, 0.03, 0.05, 0.08):  # runs cut at various points, writes included
        for run in (sync.sync_deals, sync.sync_states):
            task = asyncio.create_task(run(trading_server.id))
            await asyncio.sleep(delay)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0.5)
    assert DB.pool is not None and DB.pool.get_idle_size() == DB.pool.get_size()
    # This database's locks only: other tests' workers (the live server's) hold their own elsewhere.
    mine = await db.fetch(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    assert mine == [{"n": 0}]
