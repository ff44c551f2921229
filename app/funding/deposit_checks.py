"""What a deposit request must pass before it is stored: a strict amount, the method's limits
(in its own currency), the KYC level's cumulative limit, and the fees it will cost."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from app.core import db
from app.funding import fx, payment_methods
from app.funding.amounts import LedgerError, currency_code, format_amount, parse_typed
from app.kyc import levels

log = logging.getLogger(__name__)


def parse_amount(text: Any, field: str = "amount") -> Decimal:
    """What a person typed as an exact Decimal, or a LedgerError (`amounts.parse_typed`)."""
    return parse_typed(text, field)


async def fees_in(method: dict[str, Any], amount: Decimal, currency: str) -> dict[str, Decimal]:
    """`payment_methods.fees_for` for an amount in any of the method's currencies: the fixed fees
    (in the method's own currency) are converted at the latest rate first."""
    own = payment_methods.currency_of(method)
    if currency == own:
        return payment_methods.fees_for(method, amount)
    if not method["broker_fee_fixed"] and not method["provider_fee_fixed"]:
        return payment_methods.fees_for({**method, "currencies": currency}, amount)
    rate = await fx.latest_rate(own, currency)
    if rate is None:
        raise fx.NoRate(f"There is no exchange rate from {own} to {currency} yet: choose {own}.")
    local = {
        **method,
        "currencies": currency,
        "broker_fee_fixed": fx.apply(method["broker_fee_fixed"], rate, currency),
        "provider_fee_fixed": fx.apply(method["provider_fee_fixed"], rate, currency),
    }
    return payment_methods.fees_for(local, amount)


async def deposited_total(client_id: int, currency: str) -> Decimal:
    """The client's completed deposits, in `currency` (each currency at its latest rate)."""
    total = Decimal(0)
    for r in await _completed_by_currency(client_id):
        converted, _ = await fx.convert(r["total"], r["currency"], currency)
        total += converted
    return total


async def check_limits(client_id: int, method: dict[str, Any], amount: Decimal, currency: str) -> None:
    own = payment_methods.currency_of(method)
    in_own = amount if currency == own else (await fx.convert(amount, currency, own))[0]
    if in_own < method["min_amount"]:
        raise LedgerError(
            f"The minimum deposit by {method['name']} is {format_amount(method['min_amount'], own)}."
        )
    if in_own > method["max_amount"]:
        raise LedgerError(
            f"The maximum deposit by {method['name']} is {format_amount(method['max_amount'], own)}."
        )
    rights = await levels.rights_for(client_id)
    if rights.deposit_limit is None:
        return
    limit_currency = currency_code(rights.currency or "USD")
    done = await deposited_total(client_id, limit_currency)
    this, _ = await fx.convert(amount, currency, limit_currency)
    if done + this > rights.deposit_limit:
        left = max(rights.deposit_limit - done, Decimal(0))
        raise LedgerError(
            f"Your verification level ({rights.level_name}) allows deposits of up to "
            f"{format_amount(rights.deposit_limit, limit_currency)} in total; you have deposited "
            f"{format_amount(done, limit_currency)}, so at most {format_amount(left, limit_currency)} more. "
            "Complete your verification to raise the limit."
        )


async def deposit_volume_usd(client_id: int) -> Decimal:
    """The client's completed deposits in USD (what they paid, before fees) for the risk score, each
    currency at its latest recorded rate. A currency without a rate to USD is left out and logged,
    never counted at a guessed rate."""
    total = Decimal(0)
    for row in await _completed_by_currency(client_id):
        rate = await fx.latest_rate(row["currency"], "USD")
        if rate is None:
            log.warning(
                "client %s: no %s/USD rate, those deposits are left out of the risk",
                client_id,
                row["currency"],
            )
            continue
        total += Decimal(row["total"]) * rate
    return total


async def _completed_by_currency(client_id: int) -> list[dict[str, Any]]:
    """What the client paid in completed deposits (before fees), per currency."""
    return await db.fetch(
        "SELECT currency, sum(amount) AS total FROM funding_deposits WHERE client_id = {} "
        "AND status = 'completed' GROUP BY currency",
        client_id,
    )
