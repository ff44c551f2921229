"""What the balance-operation tests share: a trading server with a short timeout on a real
simulator, an active account created on it through the platform, and the deals the simulator
holds for an operation (counted on the server, not in the CRM)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.core import db
from app.trading import connections, operations
from app.trading.platform import BalanceType, Deal, NewAccount
from app.trading.tables import TradingAccount
from tests.personas import make_client
from tests.trading.conftest import Sim, make_trading_server

TIMEOUT = 2  # the server row's client timeout, seconds
MARGIN = 1  # RESEND_MARGIN_SECONDS in these tests: a re-send waits TIMEOUT + MARGIN after the last one


@pytest.fixture
async def ops_server(settings, mt5_sim: Sim, monkeypatch) -> AsyncIterator[int]:
    monkeypatch.setattr(operations, "RESEND_MARGIN_SECONDS", MARGIN)
    row = await make_trading_server(mt5_sim, timeout=TIMEOUT, pool_size=1)  # one session: one queue
    try:
        yield row.id
    finally:
        await connections.close_all()


async def open_account(server_id: int, *, deposit: Decimal = Decimal(1000), name: str = "trader") -> dict:
    """A client, their user on the simulator (through the platform) and an active CRM account row."""
    client = await make_client(f"{name}_{datetime.now(UTC).strftime('%H%M%S%f')}")
    platform = await connections.platform_for(server_id)
    user = await platform.create_account(
        NewAccount(group="demo\\forex-usd", name=client.name, leverage=100, password_main="Passw0rd!x",
                   password_investor="Inv3stor!x", client_ref=str(client.id))
    )  # fmt: skip
    if deposit:
        await platform.balance_operation(user.login, BalanceType.BALANCE, deposit, "opening deposit")
    now = datetime.now(UTC)
    row = TradingAccount(
        client=client.id, server=server_id, login=user.login, group_name="demo\\forex-usd", currency="USD",
        leverage=100, is_demo=True, status="active", currency_digits=2, created_at=now, updated_at=now,
    )  # fmt: skip
    await row.save()
    return {"id": row.id, "login": user.login, "client_id": client.id}


async def deals_with_comment(server_id: int, login: int, comment: str) -> list[Deal]:
    platform = await connections.platform_for(server_id)
    deals = await platform.fetch_deals([login], 0, 2**31 - 1)
    return [d for d in deals if d.comment == comment]


async def op_row(op_id: str) -> dict:
    row = await db.fetchrow("SELECT * FROM trading_balance_operations WHERE op_id = $1", op_id)
    assert row is not None
    return row


async def settle(op_id: str, timeout: float = 30.0) -> operations.BalanceOperationResult:
    """What the minute sweep does, repeated until the operation is settled (re-sends wait their guard)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await operations.resolve_operation(op_id)
        if result.settled or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.5)


async def audit_actions(op_id: str) -> list[str]:
    rows = await db.fetch(
        "SELECT action FROM audit_events WHERE subject_type = 'trading_balance_operation' AND subject_id = {} "
        "ORDER BY seq",
        op_id,
    )
    return [r["action"] for r in rows]
