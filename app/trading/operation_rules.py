"""The rules of a balance operation that need no database: its id, its MT5 comment, and what a
valid request is (the amount in the account currency's decimals, within MT5's limit). Shared by
the service (`app.trading.operations`), the staff form and funding (issue 6)."""

from __future__ import annotations

import base64
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any

from app.core.errors import FormErrors
from app.trading.platform import BalanceType

MAX_AMOUNT = Decimal(1_000_000_000)  # MT5 answers 4005 beyond it
COMMENT_MAX = 32  # MT5's limit

TYPE_LABELS = {
    BalanceType.BALANCE: "Balance (deposit / withdrawal)",
    BalanceType.CREDIT: "Credit",
    BalanceType.CHARGE: "Charge",
    BalanceType.CORRECTION: "Correction",
    BalanceType.BONUS: "Bonus",
}


def new_op_id() -> str:
    """16 characters of base32 (80 random bits): short enough for the 32-character comment."""
    return base64.b32encode(secrets.token_bytes(10)).decode().lower()


def mt5_comment(op_id: str, text: str = "") -> str:
    """`fx:<op_id>`, then as much of the caller's short text as fits in 32 characters."""
    base = "fx:" + op_id
    extra = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if not extra:
        return base
    return (base + " " + extra)[:COMMENT_MAX].rstrip()


def validate(
    account: dict[str, Any],
    type: Any,
    amount: Any,
    reference: str,
    allowed_types: frozenset[BalanceType] | None = None,
) -> dict[str, str]:
    """Every problem at once, keyed by field, in words a person acts on."""
    errors: dict[str, str] = {}
    if not isinstance(type, BalanceType) or (allowed_types is not None and type not in allowed_types):
        allowed = sorted(allowed_types or TYPE_LABELS)
        errors["type"] = "Choose one of: " + ", ".join(TYPE_LABELS[t].lower() for t in allowed) + "."
    digits = int(account.get("currency_digits") or 2)
    currency = account.get("currency") or ""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        errors["amount"] = "The amount must be a number."
    elif amount == 0:
        errors["amount"] = "The amount must not be zero."
    elif abs(amount) > MAX_AMOUNT:
        errors["amount"] = f"The amount must be at most {MAX_AMOUNT:,} {currency} either way."
    elif amount != amount.quantize(Decimal(1).scaleb(-digits)):
        errors["amount"] = f"{currency} amounts have at most {digits} decimal places."
    if account.get("status") != "active" or account.get("login") is None:
        errors["account"] = (
            f"This trading account is not active on the trading server (status: {account.get('status')})."
        )
    if not reference.strip():
        errors["reference"] = "Say what this operation is for."
    elif len(reference) > 64:
        errors["reference"] = "The reference must be at most 64 characters."
    return errors


def parse_amount(text: str) -> Decimal:
    """An amount typed by a person ("1,250.50", "-20"); FormErrors when it is not a number."""
    cleaned = (text or "").strip().replace(",", "").replace(" ", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise FormErrors({"amount": "Enter an amount such as 100 or -25.50."})
    return value
