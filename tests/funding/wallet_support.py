"""Rows of money movements written straight into the tables, as the funding services would leave
them, for the history and wallet tests (the services themselves are tested by their owners)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.core import db

NOW = datetime.now(UTC)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


async def add_deposit(
    client_id: int,
    amount: str = "100.00",
    *,
    status: str = "pending",
    currency: str = "USD",
    at: datetime | None = None,
    kind: str = "card",
    instrument: str = "Visa •••• 4242",
    failure_reason: str = "",
) -> int:
    row = await db.fetchrow(
        "INSERT INTO funding_deposits (client_id, provider, kind, reference, amount, currency, credit_currency, "
        "status, instrument, failure_reason, created_at, updated_at) "
        "VALUES ($1, 'simcard', $2, $3, $4, $5, $5, $6, $7, $8, $9, $9) RETURNING id",
        client_id,
        kind,
        f"D{uuid.uuid4().hex[:10].upper()}",
        Decimal(amount),
        currency,
        status,
        instrument,
        failure_reason,
        at or datetime.now(UTC),
    )
    assert row is not None
    return int(row["id"])


async def add_withdrawal(
    client_id: int,
    amount: str = "40.00",
    *,
    status: str = "requested",
    currency: str = "USD",
    at: datetime | None = None,
    destination: str = "Visa •••• 4242",
    rejection_reason: str = "",
) -> int:
    row = await db.fetchrow(
        "INSERT INTO funding_withdrawals (client_id, amount, requested_amount, currency, status, "
        "destination_label, rejection_reason, created_at, updated_at) "
        "VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        client_id,
        Decimal(amount),
        currency,
        status,
        destination,
        rejection_reason,
        at or datetime.now(UTC),
    )
    assert row is not None
    return int(row["id"])


async def add_transfer(
    client_id: int,
    amount: str = "25.00",
    *,
    kind: str = "wallet_to_account",
    status: str = "pending",
    to_client_id: int | None = None,
    to_account_id: int | None = None,
    from_account_id: int | None = None,
    currency: str = "USD",
    at: datetime | None = None,
    message: str = "",
) -> int:
    row = await db.fetchrow(
        "INSERT INTO funding_transfers (kind, client_id, to_client_id, from_account_id, to_account_id, amount, "
        "currency, status, message, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
        kind,
        client_id,
        to_client_id,
        from_account_id,
        to_account_id,
        Decimal(amount),
        currency,
        status,
        message,
        at or datetime.now(UTC),
    )
    assert row is not None
    return int(row["id"])


async def set_status(table: str, movement_id: int, status: str) -> None:
    assert table in {"funding_withdrawals", "funding_transfers", "funding_deposits"}
    await db.fetchrow(
        f"UPDATE {table} SET status = $2, updated_at = now() WHERE id = $1", movement_id, status
    )
