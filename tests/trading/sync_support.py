"""Helpers for the sync tests: accounts opened on the simulator through the platform and linked in
the CRM by inserting `TradingAccount` rows directly (provisioning is tested elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from app.core import db
from app.trading import platform as p
from app.trading.connections import platform_for
from app.trading.tables import TradingAccount
from tests.personas import make_client

DEMO = "demo\\forex-usd"
FAR_FUTURE = 4_000_000_000


@dataclass
class Linked:
    account_id: int
    client_id: int
    login: int


async def open_on_server(server_id: int, *, deposit: Decimal | None = Decimal("10000")) -> int:
    """A user on the trading server only (not linked in the CRM); returns its login."""
    platform = await platform_for(server_id)
    user = await platform.create_account(
        p.NewAccount(group=DEMO, name="Sync Tester", leverage=100, password_main="Strong#Pass1",
                     password_investor="Invest#Pass1")
    )  # fmt: skip
    if deposit:
        await platform.balance_operation(user.login, p.BalanceType.BALANCE, deposit, "first deposit")
    return user.login


async def link(server_id: int, login: int, client_name: str) -> Linked:
    client = await make_client(client_name)
    now = datetime.now(UTC)
    row = TradingAccount(
        client=client.id, server=server_id, login=login, group_name=DEMO, currency="USD", leverage=100,
        status="active", created_at=now, updated_at=now,
    )  # fmt: skip
    await row.save()
    return Linked(row.id, client.id, login)


async def open_accounts(
    server_id: int, n: int, *, deposit: Decimal | None = Decimal("10000")
) -> list[Linked]:
    out = []
    for i in range(n):
        login = await open_on_server(server_id, deposit=deposit)
        out.append(await link(server_id, login, f"sync_trader_{login}_{i}"))
    return out


async def server_tickets(server_id: int, logins: list[int]) -> list[int]:
    platform = await platform_for(server_id)
    return sorted(d.deal for d in await platform.fetch_deals(logins, 0, FAR_FUTURE))


async def stored_tickets(server_id: int) -> list[int]:
    rows = await db.fetch("SELECT deal FROM trading_deals WHERE server_id = {} ORDER BY deal", server_id)
    return [r["deal"] for r in rows]


async def sync_row(server_id: int) -> dict:
    row = await db.fetchrow("SELECT * FROM trading_sync_state WHERE server = $1", server_id)
    assert row is not None
    return row


async def gaps(server_id: int) -> list[dict]:
    return await db.fetch("SELECT * FROM trading_sync_gaps WHERE server = {} ORDER BY id", server_id)
