"""Bank wire (`wire`): a provider with no API. The client pays from their bank to ours quoting the
deposit reference; finance learns of it from the bank statement (`app.funding.statements`).

`start_payment` answers with the instructions (our bank details from the FundingPolicy and the
reference). A payout is a transfer finance makes in the bank's own portal: it stays `pending`
here until finance confirms it was sent (the withdrawal's "mark as paid" action), which is why
`payout` never reports `paid` and asking again with the same key changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.core import db
from app.funding.providers.base import (
    PaymentStart,
    PayoutRequest,
    PayoutResult,
    ProviderError,
    ProviderPayment,
    register,
)

KEY = "wire"


async def bank_details() -> dict[str, str]:
    """Where clients send wires: finance's settings (FundingPolicy row 1)."""
    row = await db.fetchrow(
        "SELECT bank_name, bank_beneficiary, bank_iban, bank_swift FROM funding_policy WHERE id = 1"
    )
    if row is None:
        return {"bank_name": "", "beneficiary": "", "iban": "", "swift": ""}
    return {
        "bank_name": row["bank_name"],
        "beneficiary": row["bank_beneficiary"],
        "iban": row["bank_iban"],
        "swift": row["bank_swift"],
    }


class WireProvider:
    key = KEY
    kinds: tuple[str, ...] = ("wire",)

    async def start_payment(
        self, *, reference: str, amount: Decimal, currency: str, return_url: str, customer: Mapping[str, Any]
    ) -> PaymentStart:
        details = await bank_details()
        if not details["iban"] or not details["beneficiary"]:
            raise ProviderError(
                "Bank wire is not available: finance has not entered the bank details yet.", definite=True
            )
        return PaymentStart(
            provider_payment_id=reference,
            instructions={**details, "reference": reference, "amount": str(amount), "currency": currency},
        )

    async def get_payment(self, provider_payment_id: str) -> ProviderPayment:
        row = await db.fetchrow(
            "SELECT reference, status, amount, currency, credited_amount FROM funding_deposits "
            "WHERE provider = 'wire' AND reference = $1",
            provider_payment_id,
        )
        if row is None:
            raise ProviderError("No wire deposit has this reference.", definite=True)
        status = {"completed": "succeeded", "failed": "failed", "cancelled": "failed"}.get(
            row["status"], "pending"
        )
        return ProviderPayment(
            row["reference"], status, row["amount"], row["currency"], reference=row["reference"]
        )

    async def list_payments(self, since: datetime) -> list[ProviderPayment]:
        """What the bank statements said we received (matched lines), the bank's own record, under
        the deposit's payment id (its reference) so the reconciliation finds the deposit."""
        rows = await db.fetch(
            "SELECT l.bank_id, l.amount, l.currency, d.reference, d.provider_payment_id FROM funding_statement_lines l "
            "JOIN funding_deposits d ON d.id = l.deposit_id WHERE l.status = 'matched' AND l.matched_at >= {}",
            since,
        )
        return [
            ProviderPayment(
                r["provider_payment_id"] or r["reference"],
                "succeeded",
                r["amount"],
                r["currency"],
                reference=r["reference"],
            )
            for r in rows
        ]

    async def payout(self, request: PayoutRequest) -> PayoutResult:
        """Nothing is sent from here: finance wires it and then confirms it on the withdrawal."""
        return PayoutResult(f"wire:{request.idempotency_key}", "pending", request.amount, request.currency)

    async def get_payout(self, idempotency_key: str) -> PayoutResult | None:
        return None  # the withdrawal row is the only record; finance's confirmation settles it

    async def list_payouts(self, since: datetime) -> list[PayoutResult]:
        return []


PROVIDER = register(WireProvider())  # no configuration: importing this module makes `wire` available
