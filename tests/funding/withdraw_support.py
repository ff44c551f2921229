"""What the withdrawal tests share: a verified client with a funded wallet and card deposits, finance
officers, and a small in-process payment provider that keeps its own payouts by idempotency key
(as a real one does) and can be told to refuse or to time out."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.core import db
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.funding import ledger, providers
from app.funding.providers import PayoutRequest, PayoutResult, ProviderError
from tests.funding.support import deposit
from tests.personas import make_client, make_staff

PROVIDER = "testcard"
_n = itertools.count(1)


@dataclass
class InMemoryProvider:
    """A provider that pays out in memory; `payouts` is its own record, keyed like a real one's."""

    key: str = PROVIDER
    kinds: tuple[str, ...] = ("card", "ewallet")
    payouts: dict[str, PayoutResult] = field(default_factory=dict)
    calls: int = 0
    mode: str = "paid"  # paid | pending | refuse | timeout (applied, answer lost) | down (not applied)

    async def start_payment(self, **kw: Any) -> Any:  # pragma: no cover - deposits are not tested here
        raise ProviderError("not used", definite=True)

    async def get_payment(self, provider_payment_id: str) -> Any:  # pragma: no cover
        raise ProviderError("not used", definite=True)

    async def list_payments(self, since: datetime) -> list[Any]:  # pragma: no cover
        return []

    async def payout(self, request: PayoutRequest) -> PayoutResult:
        self.calls += 1
        if request.idempotency_key in self.payouts:
            return self.payouts[request.idempotency_key]
        if self.mode == "refuse":
            raise ProviderError("The card issuer declined the payout.", definite=True)
        if self.mode == "down":
            raise ProviderError("connection refused")
        status = "pending" if self.mode == "pending" else "paid"
        result = PayoutResult(f"po_{len(self.payouts) + 1}", status, request.amount, request.currency)
        self.payouts[request.idempotency_key] = result
        if self.mode == "timeout":
            raise TimeoutError("read timed out")
        return result

    async def get_payout(self, idempotency_key: str) -> PayoutResult | None:
        return self.payouts.get(idempotency_key)

    async def list_payouts(self, since: datetime) -> list[PayoutResult]:
        return list(self.payouts.values())


def install_provider() -> InMemoryProvider:
    provider = InMemoryProvider()
    providers.register(provider)
    return provider


async def officer(name: str = "") -> Principal:
    persona = await make_staff(name or f"fin{next(_n)}_{uuid.uuid4().hex[:4]}", ["finance"])
    return Principal(
        "staff", persona.id, persona.email, persona.name.title(), 0, True, True, frozenset(["finance"])
    )


def actor_of(p: Principal) -> Actor:
    return p.actor("127.0.0.1", "pytest")


async def verified_client(level: int = 2) -> Principal:
    persona = await make_client(f"wd{next(_n)}_{uuid.uuid4().hex[:6]}", stage="funded")
    await db.fetchrow(
        "INSERT INTO kyc_profiles (client, entity_type, level, nationality, address, source_of_funds, updated_at) "
        "VALUES ($1, 'individual', $2, '', '', '', now())",
        persona.id,
        level,
    )
    return Principal("client", persona.id, persona.email, persona.name, 0, True, False)


async def card_deposit(client_id: int, amount: Decimal, card: str = "tok_4242", currency: str = "USD") -> int:
    """A completed card deposit from `card` with its ledger credit (what return-to-source reads)."""
    wallet = await ledger.wallet_for(client_id, currency)
    assert wallet is not None
    posted = await deposit(wallet, amount, currency)
    row = await db.fetchrow(
        "INSERT INTO funding_deposits (client_id, provider, kind, reference, amount, currency, credit_currency, "
        "credited_amount, status, instrument, instrument_key, transaction_id, created_at, updated_at, completed_at) "
        "VALUES ($1, $2, 'card', $3, $4, $5, $5, $4, 'completed', $6, $7, $8, now(), now(), now()) RETURNING id",
        client_id,
        PROVIDER,
        f"D{uuid.uuid4().hex[:10]}",
        amount,
        currency,
        f"Visa •••• {card[-4:]}",
        card,
        posted.id,
    )
    assert row is not None
    return int(row["id"])


async def wire_method(currency: str = "USD") -> str:
    row = await db.fetchrow(
        "INSERT INTO funding_payment_methods (name, kind, provider, currencies, min_amount, max_amount, "
        "withdrawals_allowed, active, created_at, updated_at) VALUES ('Bank wire', 'wire', $1, $2, 1, 100000, "
        "true, true, now(), now()) RETURNING id",
        PROVIDER,
        currency,
    )
    assert row is not None
    return f"method:{row['id']}"


async def funded_client(amount: Decimal = Decimal("1000"), card: str = "tok_4242") -> Principal:
    client = await verified_client()
    await card_deposit(client.id, amount, card)
    return client


async def wallet_of(client_id: int, currency: str = "USD") -> dict[str, Decimal]:
    from app.funding import balances

    wallet = await ledger.wallet_for(client_id, currency)
    assert wallet is not None
    view = await balances.wallet_balance(wallet)
    return {"available": view.available, "held": view.held}
