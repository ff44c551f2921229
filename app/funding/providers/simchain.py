"""The crypto provider (`simchain`): the CRM's client of the simulated chain's HTTP feed.

A crypto deposit has no payment to start: the client sends coins to their own address
(`app.funding.crypto`), and the CRM learns about it from the feed (`feed`), which
`app.funding.crypto_jobs` polls. Payouts are broadcast once per idempotency key (the chain keeps
the key → transaction mapping), so a retried payout never sends twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from app.core import db
from app.funding.providers.base import (
    PaymentStart,
    PayoutRequest,
    PayoutResult,
    ProviderError,
    ProviderPayment,
)

KEY = "simchain"


@dataclass(frozen=True)
class ChainItem:
    """One feed entry: a transaction's state at the time the feed was read."""

    tx_hash: str
    address: str
    amount: Decimal
    currency: str
    network: str
    confirmations: int
    status: str  # pending | confirmed | dropped
    outgoing: bool = False  # one of our payouts, not money coming in


class SimChainProvider:
    key = KEY
    kinds: tuple[str, ...] = ("crypto",)

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    async def _call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout) as http:
                r = await http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderError(f"The chain node could not be reached ({type(exc).__name__}).") from None
        try:
            body = r.json()
        except ValueError:
            raise ProviderError(f"The chain node answered {r.status_code} without JSON.") from None
        if r.status_code >= 500:
            raise ProviderError(f"The chain node failed ({r.status_code}).")
        return r.status_code, body

    # --- the feed -------------------------------------------------------------------------------

    async def feed(self, cursor: str = "", limit: int = 500) -> tuple[list[ChainItem], str]:
        status, body = await self._call(
            "GET", "/chain/transactions", params={"since": cursor, "limit": limit}
        )
        if status != 200:
            raise ProviderError(
                f"The chain feed refused the cursor: {body.get('error', status)}", definite=True
            )
        try:
            items = [_item(raw) for raw in body["items"]]
            return items, str(body["cursor"])
        except (KeyError, TypeError, ValueError, ArithmeticError):
            raise ProviderError("The chain feed sent an entry we cannot read.") from None

    async def send(self, address: str, amount: Decimal, currency: str) -> str:
        """Send coins to `address` (the client's wallet app, in tests and the demo); the tx hash."""
        status, body = await self._call(
            "POST", "/chain/send", json={"address": address, "amount": str(amount), "currency": currency}
        )
        if status != 201:
            raise ProviderError(str(body.get("error", status)), definite=True)
        return str(body["tx_hash"])

    async def mine(self, blocks: int = 1) -> int:
        _, body = await self._call("POST", "/chain/mine", json={"blocks": blocks})
        return int(body["height"])

    # --- PaymentProvider ----------------------------------------------------------------------

    async def start_payment(
        self, *, reference: str, amount: Decimal, currency: str, return_url: str, customer: Mapping[str, Any]
    ) -> PaymentStart:
        """Nothing to start on a chain: the instructions are the client's own address."""
        return PaymentStart(
            provider_payment_id="",
            instructions={
                "address": str(customer.get("crypto_address", "")),
                "network": str(customer.get("network", "")),
                "currency": currency,
            },
        )

    async def get_payment(self, provider_payment_id: str) -> ProviderPayment:
        status, body = await self._call("GET", f"/chain/transactions/{provider_payment_id}")
        if status == 404:
            raise ProviderError("The chain has no such transaction.", definite=True)
        return _payment(_item(body), 1)

    async def list_payments(self, since: datetime) -> list[ProviderPayment]:
        """Money that came in on the chain: succeeded once confirmed as finance requires."""
        row = await db.fetchrow("SELECT crypto_confirmations FROM funding_policy WHERE id = 1")
        needed = int(row["crypto_confirmations"]) if row else 3
        items, _ = await self.feed("")
        return [_payment(i, needed) for i in items if not i.outgoing]

    async def payout(self, request: PayoutRequest) -> PayoutResult:
        address = str(request.destination.get("address", "")).strip()
        if not address:
            raise ProviderError("A crypto payout needs the destination address.", definite=True)
        status, body = await self._call(
            "POST",
            "/chain/payout",
            json={
                "idempotency_key": request.idempotency_key,
                "address": address,
                "amount": str(request.amount),
                "currency": request.currency,
            },
        )
        if status != 200:
            raise ProviderError(str(body.get("error", status)), definite=True)
        return _payout(body)

    async def get_payout(self, idempotency_key: str) -> PayoutResult | None:
        status, body = await self._call("GET", f"/chain/payouts/{idempotency_key}")
        return None if status == 404 else _payout(body)

    async def list_payouts(self, since: datetime) -> list[PayoutResult]:
        _, body = await self._call("GET", "/chain/payouts", params={"since": since.isoformat()})
        return [_payout(raw) for raw in body.get("items", [])]


def _item(raw: Mapping[str, Any]) -> ChainItem:
    return ChainItem(
        tx_hash=str(raw["tx_hash"]),
        address=str(raw["address"]),
        amount=Decimal(str(raw["amount"])),
        currency=str(raw["currency"]).upper(),
        network=str(raw.get("network", "")),
        confirmations=int(raw["confirmations"]),
        status=str(raw["status"]),
        outgoing=bool(raw.get("payout_key")),
    )


def _payment(item: ChainItem, needed: int) -> ProviderPayment:
    if item.status == "dropped":
        status = "failed"
    else:
        status = "succeeded" if item.confirmations >= needed else "pending"
    return ProviderPayment(item.tx_hash, status, item.amount, item.currency)


def _payout(raw: Mapping[str, Any]) -> PayoutResult:
    status = "failed" if raw.get("status") == "dropped" else "paid"
    return PayoutResult(str(raw["tx_hash"]), status, Decimal(str(raw["amount"])), str(raw["currency"]))
