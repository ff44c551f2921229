"""Sync as deployed: a real `fxcrm worker` process starts the loop of a new trading server by
itself (the ensure cron), and a deposit made on the server reaches the CRM."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import asyncpg

from app.trading import credentials
from app.trading import platform as p
from app.trading.mt5.platform import MT5Platform
from tests.trading.conftest import MANAGER_LOGIN, MANAGER_PASSWORD, start_sim


async def test_a_running_worker_syncs_a_new_server_and_a_deposit_on_it_reaches_the_crm(
    live_server, settings, tmp_path
):
    sim = start_sim(tmp_path / "sim.sqlite3")
    platform = MT5Platform(
        sim.address, MANAGER_LOGIN, MANAGER_PASSWORD, tls=False, verify_tls=False, timeout=5
    )
    conn = await asyncpg.connect(dsn=live_server.database_url)
    name = f"Worker sync {uuid.uuid4().hex[:6]}"
    server_id = None
    try:
        user = await platform.create_account(
            p.NewAccount(group="demo\\forex-usd", name="Worker Test", leverage=100,
                         password_main="Strong#Pass1", password_investor="Invest#Pass1")
        )  # fmt: skip
        server_id = await conn.fetchval(
            "INSERT INTO trading_servers (name, platform, address, use_tls, verify_tls, manager_login, "
            "password_enc, active, timeout_seconds, pool_size, created_at, updated_at) "
            "VALUES ($1, 'mt5', $2, false, false, $3, $4, true, 10, 2, now(), now()) RETURNING id",
            name, sim.address, MANAGER_LOGIN, credentials.encrypt(MANAGER_PASSWORD, name),
        )  # fmt: skip
        client_id = await conn.fetchval(
            "INSERT INTO clients (email, first_name, last_name, country, language, password_hash, stage, "
            "stage_changed_at, is_active, totp_enabled, created_at) VALUES ($1, 'Worker', 'Test', 'DE', 'en', "
            "'!', 'active', now(), true, false, now()) RETURNING id",
            f"{uuid.uuid4().hex[:8]}@worker.sync.test",
        )
        await conn.execute(
            "INSERT INTO trading_accounts (client, server, login, group_name, currency, leverage, is_demo, "
            "status, trading_disabled, error, currency_digits, created_at, updated_at) "
            "VALUES ($1, $2, $3, 'demo\\forex-usd', 'USD', 100, true, 'active', false, '', 2, now(), now())",
            client_id, server_id, user.login,
        )  # fmt: skip
        ticket = await platform.balance_operation(user.login, p.BalanceType.BALANCE, Decimal("321"), "worker")

        deadline = time.monotonic() + 40  # the ensure cron runs every 10 s; then ~2 s
        row = None
        while time.monotonic() < deadline:
            row = await conn.fetchrow(
                "SELECT a.balance, d.client_id FROM trading_accounts a "
                "LEFT JOIN trading_deals d ON d.server_id = a.server AND d.deal = $2 WHERE a.login = $1 "
                "AND a.server = $3",
                user.login, ticket, server_id,
            )  # fmt: skip
            if row and row["balance"] == Decimal("321") and row["client_id"] == client_id:
                break
            await asyncio.sleep(0.3)
        assert row is not None and (row["balance"], row["client_id"]) == (Decimal("321"), client_id)
        status = await conn.fetchval("SELECT status FROM trading_sync_state WHERE server = $1", server_id)
        assert status == "ok"
    finally:
        if server_id is not None:  # its loop ends within ~10 s; other tests share this worker
            await conn.execute("UPDATE trading_servers SET active = false WHERE id = $1", server_id)
        await conn.close()
        await platform.close()
        sim.stop()
