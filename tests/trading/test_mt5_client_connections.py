"""`app.trading.connections`: the platform for a configured server row, cached per process, and the
console's "test connection"."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from app.trading import connections, credentials
from app.trading import platform as p
from app.trading.mt5.platform import MT5Platform
from app.trading.tables import TradingServer
from tests.servers import free_port
from tests.trading.conftest import MANAGER_LOGIN, MANAGER_PASSWORD


async def test_the_platform_of_a_server_row_is_built_once_and_reused(trading_server):
    platform = await connections.platform_for(trading_server.id)
    assert isinstance(platform, MT5Platform)
    assert await platform.server_time() > 0
    assert await connections.platform_for(trading_server.id) is platform
    assert len(platform.pool.sessions) == 2


async def test_a_changed_server_row_gets_a_new_platform_and_the_old_one_is_closed(trading_server):
    old = await connections.platform_for(trading_server.id)
    assert isinstance(old, MT5Platform)
    await old.server_time()
    await TradingServer.update(
        {TradingServer.pool_size: 3, TradingServer.updated_at: datetime.now(UTC) + timedelta(seconds=1)}
    ).where(TradingServer.id == trading_server.id)
    new = await connections.platform_for(trading_server.id)
    assert new is not old and isinstance(new, MT5Platform) and len(new.pool.sessions) == 3
    await asyncio.sleep(0.2)
    with pytest.raises(p.Unreachable):
        await old.server_time()  # closed
    assert await new.server_time() > 0


async def test_an_unknown_server_is_not_found(settings):
    with pytest.raises(p.NotFound):
        await connections.platform_for(999_999)


async def test_a_platform_this_crm_does_not_speak_is_a_clear_error(trading_server):
    await TradingServer.update({TradingServer.platform: "ctrader"}).where(
        TradingServer.id == trading_server.id
    )
    with pytest.raises(p.PlatformError) as caught:
        await connections.platform_for(trading_server.id)
    assert "'ctrader'" in caught.value.message and "mt5" in caught.value.message


async def test_a_password_that_does_not_decrypt_asks_for_it_again(trading_server):
    blob = credentials.encrypt(MANAGER_PASSWORD, "another server")
    await TradingServer.update({TradingServer.password_enc: blob}).where(
        TradingServer.id == trading_server.id
    )
    with pytest.raises(p.AuthFailed) as caught:
        await connections.platform_for(trading_server.id)
    assert "Enter it again" in caught.value.message


async def test_testing_a_saved_server_logs_in_and_reads_its_clock(trading_server):
    message = await connections.test_connection(trading_server.id)
    assert message.startswith(
        f"Connected to {trading_server.address} as manager {MANAGER_LOGIN}: server time "
    )


async def test_testing_unsaved_settings_with_a_wrong_password_says_so(mt5_sim):
    with pytest.raises(p.AuthFailed) as caught:
        await connections.test_connection(mt5_sim.address, MANAGER_LOGIN, "Wrong#2026", tls=False)
    assert "rejected manager 1000" in caught.value.message
    message = await connections.test_connection(mt5_sim.address, MANAGER_LOGIN, MANAGER_PASSWORD, tls=False)
    assert "same as UTC" in message


async def test_testing_an_address_where_nothing_listens_says_it_cannot_be_reached():
    with pytest.raises(p.Unreachable) as caught:
        await connections.test_connection(f"127.0.0.1:{free_port()}", MANAGER_LOGIN, "x", tls=False)
    assert "cannot be reached" in caught.value.message
