"""What the deposit tests share: a verified client, a card method, rates, ledger lookups."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.core import db
from app.core.audit import Actor
from app.funding.tables import FxRate, PaymentMethod
from tests.personas import make_client

SYSTEM = Actor.system("deposit tests")
_names = itertools.count(1)


async def verified_client(level: int = 1, stage: str = "kyc_approved", name: str | None = None) -> int:
    """A client at `stage` whose KYC level is `level` (1: deposits up to 2,000 USD; 2: no limit)."""
    persona = await make_client(name or f"dep_{next(_names)}_{uuid.uuid4().hex[:6]}", stage=stage)
    await set_level(persona.id, level)
    return persona.id


async def set_level(client_id: int, level: int) -> None:
    await db.fetch(
        "INSERT INTO kyc_profiles (client, entity_type, level, nationality, address, source_of_funds, updated_at) "
        "VALUES ({}, 'individual', {}, '', '', '', now()) ON CONFLICT (client) DO UPDATE SET level = EXCLUDED.level",
        client_id,
        level,
    )


async def card_method(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "name": "Visa / Mastercard",
        "kind": "card",
        "provider": "simcard",
        "currencies": "USD,EUR",
        "min_amount": Decimal("10"),
        "max_amount": Decimal("5000"),
        "broker_fee_percent": Decimal("1"),
        "broker_fee_fixed": Decimal("0"),
        "provider_fee_percent": Decimal("2.5"),
        "provider_fee_fixed": Decimal("0.30"),
        "withdrawals_allowed": True,
        "countries": "",
        "kyc_level": 1,
        "active": True,
        "sort_order": 0,
    }
    values.update(overrides)
    row = PaymentMethod(**values, created_at=now, updated_at=now)
    await row.save()
    return {**values, "id": row.id}


async def add_rate(base: str, quote: str, rate: str) -> None:
    await FxRate(
        base=base, quote=quote, rate=Decimal(rate), source="test", created_by="test", as_of=datetime.now(UTC)
    ).save()


async def balance(kind: str, currency: str, *, client_id: int | None = None, provider: str = "") -> Decimal:
    row = await db.fetchrow(
        "SELECT balance FROM funding_ledger_accounts WHERE kind = $1 AND currency = $2 "
        "AND ($3::int IS NULL OR client_id = $3) AND provider = $4",
        kind,
        currency,
        client_id,
        provider,
    )
    return Decimal(0) if row is None else Decimal(row["balance"])


async def count_deposits() -> int:
    row = await db.fetchrow("SELECT count(*) AS n FROM funding_deposits")
    assert row is not None
    return int(row["n"])
