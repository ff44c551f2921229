"""Currencies the ledger accepts, amount validation, and the errors the ledger raises.

Amounts are `Decimal` only: a float has already lost cents before it reaches us, so it is refused
rather than rounded. An amount may carry no more decimals than its currency's minor unit (a wire
of 10.005 USD does not exist); an unknown currency is refused, so a typo cannot open a wallet.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from app.core.errors import FormErrors

# ISO 4217 minor units, and the usual precision of the crypto assets brokers accept. Codes of
# four or five letters exist (USDT), which is why currency columns are wider than three.
MINOR_UNITS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "AUD": 2,
    "CAD": 2,
    "NZD": 2,
    "SGD": 2,
    "HKD": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "CZK": 2,
    "HUF": 2,
    "ZAR": 2,
    "AED": 2,
    "TRY": 2,
    "MXN": 2,
    "BRL": 2,
    "CNY": 2,
    "JPY": 0,
    "BTC": 8,
    "ETH": 8,
    "USDT": 6,
    "USDC": 6,
}


class LedgerError(FormErrors):
    """A refusal worded for the person who asked (shown beside `field` on a form). Nothing was
    written: the ledger checks everything before its first write."""

    field = "amount"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.message = message
        super().__init__({field or self.field: message})


class InsufficientFunds(LedgerError):
    """The wallet's available funds (its balance; held funds are already moved out) are too low."""


class IdempotencyConflict(LedgerError):
    """The idempotency key was used before for a different request."""

    field = "idempotency_key"


class AlreadySettled(LedgerError):
    """A transaction already reversed, a hold already released or captured."""

    field = "transaction"


def currency_code(code: Any) -> str:
    """The normalised code of a currency the ledger knows, or a LedgerError."""
    text = str(code or "").strip().upper()
    if text not in MINOR_UNITS:
        raise LedgerError(f"Unknown currency {code!r}.", field="currency")
    return text


def minor_units(currency: str) -> int:
    return MINOR_UNITS[currency_code(currency)]


# Digits with an optional point; thousands may be grouped by commas or spaces, but only in threes
# ("1,250.50", "12 000"): "1,5" is a decimal comma, which would silently read as 15 if commas were
# merely dropped, so it is refused with a word about the point instead.
_TYPED = re.compile(r"^[+-]?([0-9]{1,3}([, ][0-9]{3})+|[0-9]+)(\.[0-9]+)?$")


def parse_typed(text: Any, field: str = "amount") -> Decimal:
    """An amount as a person typed it in a form, as an exact Decimal, or a LedgerError that says
    how to write it ("1e3", "NaN", "1,5" and "" are refused). Every funding form reads it here."""
    raw = str(text if text is not None else "").strip()
    if not raw:
        raise LedgerError("Enter an amount.", field=field)
    if not _TYPED.match(raw):
        if "," in raw:
            raise LedgerError(
                f"Write the amount as a number with a point for decimals, e.g. 100.50 (not {raw[:20]!r}).",
                field=field,
            )
        raise LedgerError(f"Write the amount as a number, e.g. 100.50 (not {raw[:20]!r}).", field=field)
    try:
        return Decimal(raw.replace(",", "").replace(" ", ""))
    except InvalidOperation:
        raise LedgerError("Write the amount as a number, e.g. 100.50.", field=field) from None


def format_amount(amount: Decimal, currency: str) -> str:
    """`1,234.50 USD`: in messages for people."""
    digits = MINOR_UNITS.get(currency, 2)
    return f"{amount:,.{digits}f} {currency}"


def check_amount(amount: Any, currency: str, *, positive: bool = True, field: str = "amount") -> Decimal:
    """`amount` as an exact Decimal in `currency`'s minor units, or a LedgerError saying why not.

    `positive`: zero and negative amounts are refused (what a client or finance types); the ledger's
    own signed posting lines pass `positive=False` and only refuse zero."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise LedgerError(
            f"Amounts must be exact decimals, not {type(amount).__name__} ({amount!r}).", field=field
        )
    value = Decimal(amount)
    if not value.is_finite():
        raise LedgerError("The amount must be a number.", field=field)
    digits = minor_units(currency)
    exact = value.quantize(Decimal(1).scaleb(-digits))
    if exact != value:
        unit = "whole units" if digits == 0 else f"at most {digits} decimals"
        raise LedgerError(f"{currency} amounts have {unit}: {value} has more.", field=field)
    if value == 0:
        raise LedgerError("The amount must not be zero.", field=field)
    if positive and value < 0:
        raise LedgerError("The amount must be positive.", field=field)
    return exact
