"""Currency conversion at the rates finance recorded (`funding_fx_rates`).

Only the latest row for the exact pair is used: 1 `base` = `rate` `quote`. A missing pair is a
refusal (`NoRate`), never an inverted or chained guess, because whatever rate a conversion uses is
recorded beside it and must be one somebody actually set.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from app.core import db
from app.funding.amounts import LedgerError, currency_code, minor_units


class NoRate(LedgerError):
    """No rate is recorded for the pair."""

    field = "currency"


async def latest_rate(base: str, quote: str) -> Decimal | None:
    """The latest recorded rate (1 base = rate quote); 1 for the same currency; None if unknown."""
    base, quote = currency_code(base), currency_code(quote)
    if base == quote:
        return Decimal(1)
    row = await db.fetchrow(
        "SELECT rate FROM funding_fx_rates WHERE base = $1 AND quote = $2 ORDER BY as_of DESC, id DESC LIMIT 1",
        base,
        quote,
    )
    return None if row is None else Decimal(row["rate"])


def apply(amount: Decimal, rate: Decimal, quote: str) -> Decimal:
    """`amount` × `rate`, rounded half up to `quote`'s minor units."""
    unit = Decimal(1).scaleb(-minor_units(quote))
    return (Decimal(amount) * rate).quantize(unit, ROUND_HALF_UP)


async def convert(amount: Decimal, base: str, quote: str) -> tuple[Decimal, Decimal]:
    """(`amount` in `quote`, the rate used); raises NoRate when the pair has no rate."""
    rate = await latest_rate(base, quote)
    if rate is None:
        raise NoRate(f"There is no exchange rate from {base} to {quote} yet: finance must record one.")
    return apply(amount, rate, quote), rate
