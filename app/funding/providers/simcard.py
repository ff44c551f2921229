"""The card/e-wallet provider client (key `simcard`): the simulator's HTTP API, the way a real
PSP's SDK would be used.

Every request that creates something carries an Idempotency-Key derived from our own row
(`deposit:{id}`, the withdrawal's key), so a timeout is retried with the same key and the provider
answers the first result instead of charging or paying twice. Errors: a 4xx answer is a definite
refusal (`ProviderError(definite=True)`); a timeout, a 5xx or a broken connection leaves the outcome
unknown (`definite=False`): look it up (`get_payout`) before deciding anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from app.funding.providers.base import (
    PaymentStart,
    PayoutRequest,
    PayoutResult,
    ProviderError,
    ProviderPayment,
)

KEY = "simcard"
_STATUS = {
    "requires_payment": "pending",
    "processing": "pending",
    "succeeded": "succeeded",
    "failed": "failed",
}


class SimCardProvider:
    key = KEY
    kinds: tuple[str, ...] = ("card", "ewallet")

    def __init__(self, base_url: str, api_key: str, webhook_secret: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.webhook_secret = webhook_secret  # the endpoint verifies deliveries with it
        self.timeout = timeout

    async def _call(
        self, method: str, path: str, *, json: Any = None, idempotency_key: str = "", params: Any = None
    ) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {self.api_key}"}
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout) as http:
                r = await http.request(method, path, json=json, headers=headers, params=params)
        except httpx.HTTPError as exc:
            raise ProviderError(f"The payment provider could not be reached ({type(exc).__name__}).") from exc
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code >= 500:
            raise ProviderError(f"The payment provider answered {r.status_code}; the outcome is unknown.")
        if r.status_code >= 400 and r.status_code != 404:
            message = body.get("error") if isinstance(body, dict) else ""
            raise ProviderError(f"The payment provider refused: {message or r.status_code}.", definite=True)
        return r.status_code, body

    async def start_payment(
        self, *, reference: str, amount: Decimal, currency: str, return_url: str, customer: Mapping[str, Any]
    ) -> PaymentStart:
        _, body = await self._call(
            "POST",
            "/v1/payments",
            json={
                "amount": str(amount),
                "currency": currency,
                "reference": reference,
                "return_url": return_url,
                "customer": dict(customer),
            },
            idempotency_key=f"payment:{reference}",
        )
        return PaymentStart(provider_payment_id=body["id"], redirect_url=body["hosted_url"])

    async def get_payment(self, provider_payment_id: str) -> ProviderPayment:
        status, body = await self._call("GET", f"/v1/payments/{provider_payment_id}")
        if status == 404:
            raise ProviderError(f"The provider has no payment {provider_payment_id}.", definite=True)
        return payment_of(body)

    async def list_payments(self, since: datetime) -> list[ProviderPayment]:
        _, body = await self._call("GET", "/v1/payments", params={"since": since.timestamp()})
        return [payment_of(p) for p in body["items"]]

    async def payout(self, request: PayoutRequest) -> PayoutResult:
        _, body = await self._call(
            "POST",
            "/v1/payouts",
            json={
                "amount": str(request.amount),
                "currency": request.currency,
                "destination": dict(request.destination),
                "reference": request.reference,
            },
            idempotency_key=request.idempotency_key,
        )
        return payout_of(body)

    async def get_payout(self, idempotency_key: str) -> PayoutResult | None:
        status, body = await self._call("GET", f"/v1/payouts/{idempotency_key}")
        return None if status == 404 else payout_of(body)

    async def list_payouts(self, since: datetime) -> list[PayoutResult]:
        _, body = await self._call("GET", "/v1/payouts", params={"since": since.timestamp()})
        return [payout_of(p) for p in body["items"]]


def payment_of(body: Mapping[str, Any]) -> ProviderPayment:
    """A payment as the simulator's API and webhooks show it, in the interface's terms."""
    paid = body.get("paid_amount") or body["amount"]
    return ProviderPayment(
        provider_payment_id=body["id"],
        status=_STATUS.get(body["status"], "pending"),
        amount=Decimal(str(paid)),
        currency=str(body["currency"]),
        reference=str(body.get("reference", "")),
        instrument=str(body.get("instrument", "")),
        instrument_key=str(body.get("instrument_key", "")),
        failure_reason=str(body.get("failure_reason", "")),
        updated_at=datetime.fromtimestamp(float(body["updated_at"]), UTC) if body.get("updated_at") else None,
    )


def payout_of(body: Mapping[str, Any]) -> PayoutResult:
    return PayoutResult(
        payout_id=str(body["id"]),
        status=str(body["status"]),
        amount=Decimal(str(body["amount"])),
        currency=str(body["currency"]),
        failure_reason=str(body.get("failure_reason", "")),
    )


def from_settings() -> SimCardProvider:
    from app.settings import get_settings

    pay = get_settings().payments
    return SimCardProvider(pay.sim_url, pay.sim_api_key, pay.webhook_secret)
