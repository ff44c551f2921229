"""The interface every payment provider implements, and the registry of configured providers.

Deposits start a payment (`start_payment`: a hosted page to redirect to, or instructions), learn
its outcome from signed webhooks or a feed, and can ask for it again (`get_payment`).
Withdrawals pay out with `payout`, which carries our idempotency key: asking twice with the same
key must never pay twice (the provider answers with the first payout), so a crash or timeout is
retried safely. `list_payments` / `list_payouts` are the provider's own records that the daily
reconciliation compares with the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable


class ProviderError(Exception):
    """The provider refused or could not be reached. `definite`: it refused before doing anything
    (retrying would be refused again); otherwise the outcome is unknown and must be looked up."""

    def __init__(self, message: str, *, definite: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.definite = definite


@dataclass(frozen=True)
class PaymentStart:
    provider_payment_id: str
    redirect_url: str = ""  # the hosted payment page, when the provider has one
    instructions: Mapping[str, str] = field(default_factory=dict)  # wire details, crypto address …


@dataclass(frozen=True)
class ProviderPayment:
    provider_payment_id: str
    status: str  # pending | succeeded | failed
    amount: Decimal
    currency: str
    reference: str = ""  # our deposit reference, as the provider knows it
    instrument: str = ""  # "Visa •••• 4242"
    instrument_key: str = ""  # the provider's token for the card/account (return-to-source)
    failure_reason: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class PayoutRequest:
    idempotency_key: str  # ours, e.g. "withdrawal:812"; the provider dedups on it
    amount: Decimal
    currency: str
    destination: Mapping[str, Any]  # instrument_key / bank details / address
    reference: str = ""


@dataclass(frozen=True)
class PayoutResult:
    payout_id: str
    status: str  # pending | paid | failed
    amount: Decimal
    currency: str
    failure_reason: str = ""


@runtime_checkable
class PaymentProvider(Protocol):
    key: str
    kinds: tuple[str, ...]  # the payment method kinds it serves: card, ewallet, wire, crypto

    async def start_payment(
        self, *, reference: str, amount: Decimal, currency: str, return_url: str, customer: Mapping[str, Any]
    ) -> PaymentStart: ...

    async def get_payment(self, provider_payment_id: str) -> ProviderPayment: ...

    async def list_payments(self, since: datetime) -> list[ProviderPayment]: ...

    async def payout(self, request: PayoutRequest) -> PayoutResult: ...

    async def get_payout(self, idempotency_key: str) -> PayoutResult | None: ...

    async def list_payouts(self, since: datetime) -> list[PayoutResult]: ...


_registry: dict[str, PaymentProvider] = {}


def register(provider: PaymentProvider) -> PaymentProvider:
    """Make `provider` the one used for its key (replacing any earlier one: tests point a key at
    the simulator they started)."""
    _registry[provider.key] = provider
    return provider


def registered() -> dict[str, PaymentProvider]:
    return dict(_registry)


def _configured_from_settings(key: str) -> PaymentProvider | None:
    """The providers this application ships, configured from settings the first time one is asked
    for (in the web process, the worker and the CLI alike); None for a key we do not ship."""
    if key == "simcard":
        from app.funding.providers import simcard

        return register(simcard.from_settings())
    if key == "wire":
        from app.funding.providers import wire

        return register(wire.WireProvider())
    if key == "simchain":
        from app.funding.providers.simchain import SimChainProvider
        from app.settings import get_settings

        return register(SimChainProvider(get_settings().payments.chain_url))
    return None


def get(key: str) -> PaymentProvider:
    found = _registry.get(key) or _configured_from_settings(key)
    if found is None:
        raise ProviderError(f"The payment provider {key!r} is not configured.", definite=True)
    return found
