"""What the transfer tests share: verified clients with funded wallets, live accounts opened on the
real MT5 simulator (through the platform) and linked in the CRM, and the figures to compare
(ledger balances, MT5 balances and the deals on the server)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from app.core import db
from app.core.audit import Actor
from app.funding import balances, ledger
from app.trading import connections
from app.trading.platform import BalanceType, NewAccount
from app.trading.tables import TradingAccount
from tests.funding.support import deposit
from tests.personas import Persona, make_client

LIVE_GROUP = "real\\standard-usd"
_names = itertools.count(1)


def key() -> str:
    return uuid.uuid4().hex


def client_actor(client_id: int) -> Actor:
    return Actor(kind="client", id=str(client_id), label=f"client{client_id}@client.test")


async def verified(p: Persona | int, level: int = 2) -> int:
    """Give the client a KYC level (2: deposits and withdrawals)."""
    client_id = p if isinstance(p, int) else p.id
    await db.fetch(
        "INSERT INTO kyc_profiles (client, entity_type, level, nationality, address, source_of_funds, updated_at) "
        "VALUES ({}, 'individual', {}, '', '', '', now()) ON CONFLICT (client) DO UPDATE SET level = EXCLUDED.level",
        client_id,
        level,
    )
    return client_id


async def new_client(level: int = 2) -> Persona:
    persona = await make_client(f"sender_{next(_names)}_{uuid.uuid4().hex[:6]}")
    await verified(persona, level)
    return persona


async def fund(client_id: int, amount: Decimal, currency: str = "USD") -> int:
    wallet = await ledger.wallet_for(client_id, currency)
    assert wallet is not None
    await deposit(wallet, amount, currency)
    return wallet


async def open_live(server_id: int, client_id: int, *, deposit_on_mt5: Decimal = Decimal(0),
                    group: str = LIVE_GROUP, currency: str = "USD") -> dict:  # fmt: skip
    """A live account: a user on the simulator and its CRM row (active, not demo). `deposit_on_mt5`
    is put on MT5 directly, bypassing the CRM (reconciliation will see it)."""
    platform = await connections.platform_for(server_id)
    user = await platform.create_account(
        NewAccount(group=group, name=f"Live {client_id}", leverage=100, password_main="Passw0rd!x",
                   password_investor="Inv3stor!x", client_ref=str(client_id))
    )  # fmt: skip
    if deposit_on_mt5:
        await platform.balance_operation(user.login, BalanceType.BALANCE, deposit_on_mt5, "outside the CRM")
    now = datetime.now(UTC)
    row = TradingAccount(
        client=client_id, server=server_id, login=user.login, group_name=group, currency=currency,
        leverage=100, is_demo=False, status="active", currency_digits=2, created_at=now, updated_at=now,
    )  # fmt: skip
    await row.save()
    return {"id": row.id, "login": user.login, "client_id": client_id}


async def mt5_balance(server_id: int, login: int) -> Decimal:
    platform = await connections.platform_for(server_id)
    state = (await platform.fetch_accounts([login]))[0]
    return Decimal(state.balance)


async def mt5_deals(server_id: int, login: int) -> list:
    platform = await connections.platform_for(server_id)
    return [d for d in await platform.fetch_deals([login], 0, 2**31 - 1) if d.action == BalanceType.BALANCE]


async def account_ledger(account_id: int) -> Decimal:
    found = await ledger.account_for_trading(account_id, create=False)
    return Decimal(0) if found is None else await balances.balance_of(found)


async def wallet(client_id: int, currency: str = "USD") -> balances.WalletBalance:
    wallet_id = await ledger.wallet_for(client_id, currency)
    assert wallet_id is not None
    return await balances.wallet_balance(wallet_id)


async def transfer_row(transfer_id: int) -> dict:
    row = await db.fetchrow("SELECT * FROM funding_transfers WHERE id = $1", transfer_id)
    assert row is not None
    return row
