"""What the ledger tests share: an acting finance officer, clients with funded wallets, a trading
account row to transfer to (no platform needed: the ledger only mirrors it) and fresh keys."""

from __future__ import annotations

import itertools
import uuid
from decimal import Decimal

from app.core import db
from app.core.audit import Actor
from app.funding import ledger
from tests.personas import make_client

FINANCE = Actor(kind="staff", id="9", label="finance@staff.test")
PROVIDER = "testpay"
_names = itertools.count(1)


def key(prefix: str = "k") -> str:
    return f"{prefix}:{uuid.uuid4().hex}"


async def new_client() -> int:
    persona = await make_client(f"payer_{next(_names)}_{uuid.uuid4().hex[:6]}")
    return persona.id


async def deposit(wallet_id: int, amount: Decimal, currency: str = "USD", **kw) -> ledger.Posted:
    clearing = await ledger.system_account("provider_clearing", currency, PROVIDER)
    return await ledger.transfer(
        FINANCE, "deposit", debit=clearing, credit=wallet_id, amount=amount,
        idempotency_key=kw.pop("idempotency_key", key("dep")), **kw,
    )  # fmt: skip


async def funded_wallet(amount: Decimal, currency: str = "USD", client_id: int | None = None) -> int:
    client_id = client_id or await new_client()
    wallet = await ledger.wallet_for(client_id, currency)
    assert wallet is not None
    if amount:
        await deposit(wallet, amount, currency)
    return wallet


async def trading_account(client_id: int, currency: str = "USD") -> int:
    """A trading_accounts row (and its server) for the ledger to mirror; no MT5 involved."""
    server = await db.fetchrow("SELECT id FROM trading_servers WHERE name = 'ledger tests'")
    if server is None:
        server = await db.fetchrow(
            "INSERT INTO trading_servers (name, platform, address, use_tls, verify_tls, manager_login, "
            "password_enc, active, timeout_seconds, pool_size, created_at, updated_at) VALUES ('ledger tests', "
            "'mt5', '127.0.0.1:1', false, false, 1000, '\\x00'::bytea, true, 10, 1, now(), now()) RETURNING id"
        )
    assert server is not None
    row = await db.fetchrow(
        "INSERT INTO trading_accounts (client, server, login, group_name, currency, leverage, is_demo, status, "
        "trading_disabled, error, currency_digits, created_at, updated_at) VALUES ($1, $2, $3, 'real\\standard-usd', "
        "$4, 100, false, 'active', false, '', 2, now(), now()) RETURNING id",
        client_id,
        server["id"],
        500000 + next(_names),
        currency,
    )
    assert row is not None
    return int(row["id"])


async def ledger_totals() -> dict:
    """Global invariants in one look: transactions that do not sum to zero, accounts whose cache
    differs from their postings, client accounts below zero."""
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM funding_postings GROUP BY transaction_id, currency "
        "HAVING sum(amount) <> 0) u) AS unbalanced, "
        "(SELECT count(*) FROM funding_ledger_accounts a WHERE a.balance <> coalesce((SELECT sum(p.amount) "
        "FROM funding_postings p WHERE p.account_id = a.id), 0) * CASE a.normal_side WHEN 'debit' THEN 1 "
        "ELSE -1 END) AS stale, "
        "(SELECT count(*) FROM funding_ledger_accounts WHERE kind IN ('client_wallet', 'client_hold') "
        "AND balance < 0) AS negative"
    )
    assert row is not None
    return row
