"""Ledger accounts: which exist, which side they are normally on, and finding or opening them.

An account is opened on first use and never changes identity (a trigger refuses it). Opening
is race-safe: `INSERT … ON CONFLICT DO NOTHING` on the partial unique index of its kind, then a
read, so two requests opening the same wallet at once both get the one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.core import db
from app.core.errors import NotFound
from app.funding.amounts import MINOR_UNITS, LedgerError, currency_code

# kind → normal side. Wallets, holds and trading accounts are what the broker owes its clients
# (liabilities, credit-normal); provider clearing is what providers owe the broker (an asset).
NORMAL_SIDE: dict[str, str] = {
    "client_wallet": "credit",
    "client_hold": "credit",
    "trading_account": "credit",
    "provider_clearing": "debit",
    "fees": "credit",  # the broker's fee income
    "suspense": "credit",  # money received that nobody has claimed yet (an unmatched wire)
    "fx": "credit",  # the other side of currency conversions, one per currency
}
SYSTEM_KINDS = ("provider_clearing", "fees", "suspense", "fx")
CLIENT_KINDS = ("client_wallet", "client_hold")  # never below zero


@dataclass(frozen=True)
class Account:
    id: int
    kind: str
    currency: str
    minor_units: int
    normal_side: str
    balance: Decimal
    client_id: int | None
    trading_account_id: int | None
    parent_id: int | None
    provider: str


_COLUMNS = "id, kind, currency, minor_units, normal_side, balance, client_id, trading_account_id, parent_id, provider"


async def get_account(account_id: int) -> Account:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM funding_ledger_accounts WHERE id = $1", account_id)
    if row is None:
        raise NotFound("ledger account")
    return Account(**row)


async def wallet_for(client_id: int, currency: str, *, create: bool = True) -> int | None:
    """The client's wallet in `currency` (opened with its hold account when missing and `create`)."""
    currency = currency_code(currency)
    found = await _wallet_id(client_id, currency)
    if found is not None or not create:
        return found
    async with db.transaction():
        if await db.fetchrow("SELECT 1 FROM clients WHERE id = $1", client_id) is None:
            raise NotFound("client")
        row = await db.fetchrow(
            "INSERT INTO funding_ledger_accounts (kind, currency, minor_units, normal_side, client_id, balance, "
            "created_at) VALUES ('client_wallet', $1, $3, 'credit', $2, 0, now()) "
            "ON CONFLICT (client_id, currency) WHERE kind = 'client_wallet' DO NOTHING RETURNING id",
            currency,
            client_id,
            MINOR_UNITS[currency],
        )
        if row is not None:
            await db.fetchrow(
                "INSERT INTO funding_ledger_accounts (kind, currency, minor_units, normal_side, client_id, "
                "parent_id, balance, created_at) VALUES ('client_hold', $1, $4, 'credit', $2, $3, 0, now())",
                currency,
                client_id,
                row["id"],
                MINOR_UNITS[currency],
            )
            return int(row["id"])
    found = await _wallet_id(client_id, currency)
    assert found is not None  # the concurrent opener committed it
    return found


async def _wallet_id(client_id: int, currency: str) -> int | None:
    row = await db.fetchrow(
        "SELECT id FROM funding_ledger_accounts WHERE kind = 'client_wallet' AND client_id = $1 AND currency = $2",
        client_id,
        currency,
    )
    return None if row is None else int(row["id"])


async def hold_account_of(wallet_id: int) -> int:
    row = await db.fetchrow(
        "SELECT id FROM funding_ledger_accounts WHERE kind = 'client_hold' AND parent_id = $1", wallet_id
    )
    if row is None:
        raise LedgerError("Funds can only be held on a client wallet.", field="wallet")
    return int(row["id"])


async def account_for_trading(trading_account_id: int, *, create: bool = True) -> int | None:
    """The ledger account mirroring what funding moved to or from a trading account (its currency)."""
    found = await _one("kind = 'trading_account' AND trading_account_id = $1", trading_account_id)
    if found is not None or not create:
        return found
    trading = await db.fetchrow(
        "SELECT client AS client_id, currency FROM trading_accounts WHERE id = $1", trading_account_id
    )
    if trading is None:
        raise NotFound("trading account")
    currency = currency_code(trading["currency"])
    await db.fetchrow(
        "INSERT INTO funding_ledger_accounts (kind, currency, minor_units, normal_side, client_id, "
        "trading_account_id, balance, created_at) VALUES ('trading_account', $1, $4, 'credit', $2, $3, 0, now()) "
        "ON CONFLICT (trading_account_id) WHERE kind = 'trading_account' DO NOTHING",
        currency,
        trading["client_id"],
        trading_account_id,
        MINOR_UNITS[currency],
    )
    return await _one("kind = 'trading_account' AND trading_account_id = $1", trading_account_id)


async def system_account(
    kind: str, currency: str, provider: str | None = None, *, create: bool = True
) -> int:
    """The broker's own account of `kind` in `currency`: provider clearing (per provider), fees,
    suspense or fx."""
    if kind not in SYSTEM_KINDS:
        raise ValueError(f"not a system account kind: {kind!r}")
    currency = currency_code(currency)
    provider = (provider or "").strip()
    if (kind == "provider_clearing") != bool(provider):
        raise ValueError("a provider is required for provider_clearing accounts, and only for them")
    where = "kind = $1 AND currency = $2 AND provider = $3"
    found = await _one(where, kind, currency, provider)
    if found is not None:
        return found
    if not create:
        raise NotFound("ledger account")
    conflict = (
        "(provider, currency) WHERE kind = 'provider_clearing'"
        if provider
        else "(kind, currency) WHERE kind IN ('fees', 'suspense', 'fx')"
    )
    await db.fetchrow(
        "INSERT INTO funding_ledger_accounts (kind, currency, minor_units, normal_side, provider, balance, "
        f"created_at) VALUES ($1, $2, $5, $3, $4, 0, now()) ON CONFLICT {conflict} DO NOTHING",
        kind,
        currency,
        NORMAL_SIDE[kind],
        provider,
        MINOR_UNITS[currency],
    )
    found = await _one(where, kind, currency, provider)
    assert found is not None
    return found


async def _one(where: str, *args: object) -> int | None:
    row = await db.fetchrow(f"SELECT id FROM funding_ledger_accounts WHERE {where}", *args)
    return None if row is None else int(row["id"])
