"""Finance's funding policy (one row, `funding_policy` id 1): the dual-approval threshold and its
currency, crypto confirmations, and the bank details wire deposits show. Changed in the console
by finance, audited with before and after."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.errors import FormErrors
from app.funding import fx
from app.funding.amounts import MINOR_UNITS

FIELDS = (
    "policy_currency",
    "dual_approval_over",
    "crypto_confirmations",
    "bank_name",
    "bank_beneficiary",
    "bank_iban",
    "bank_swift",
)
_LIMITS = {"bank_name": 200, "bank_beneficiary": 200, "bank_iban": 64, "bank_swift": 16}


async def get_policy() -> dict[str, Any]:
    row = await db.fetchrow("SELECT * FROM funding_policy WHERE id = 1")
    if row is None:  # the migration inserts it; a wiped table falls back to the defaults
        return {
            "id": 1,
            "policy_currency": "USD",
            "dual_approval_over": Decimal(10000),
            "crypto_confirmations": 3,
            "bank_name": "",
            "bank_beneficiary": "",
            "bank_iban": "",
            "bank_swift": "",
            "updated_by": "",
            "updated_at": None,
        }
    return row


async def approvals_required(amount: Decimal, currency: str) -> tuple[int, str]:
    """(1 or 2, why): two distinct approvers when the amount, converted to the policy currency at
    the latest recorded rate, is over the threshold. Without a rate the safe answer is two."""
    policy = await get_policy()
    target = policy["policy_currency"]
    threshold = Decimal(policy["dual_approval_over"])
    rate = await fx.latest_rate(currency, target)
    if rate is None:
        return 2, f"no {currency}→{target} rate recorded: two approvals by default"
    converted = fx.apply(amount, rate, target)
    if converted > threshold:
        return 2, f"{converted} {target} is over the dual-approval threshold of {threshold} {target}"
    return 1, f"{converted} {target} is within the dual-approval threshold of {threshold} {target}"


def form_values(policy: dict[str, Any]) -> dict[str, str]:
    return {k: format(v, "f") if isinstance(v, Decimal) else str(v) for k, v in policy.items() if k in FIELDS}


def parse(form: dict[str, str]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    currency = form.get("policy_currency", "").strip().upper()
    if currency not in MINOR_UNITS:
        errors["policy_currency"] = "Choose a currency the ledger knows (USD, EUR …)."
    values["policy_currency"] = currency
    try:
        over = Decimal(form.get("dual_approval_over", "").strip().replace(",", ""))
        if not over.is_finite() or over < 0:
            raise InvalidOperation
        values["dual_approval_over"] = over
    except InvalidOperation:
        errors["dual_approval_over"] = "Enter an amount of zero or more."
    text = form.get("crypto_confirmations", "").strip()
    if not text.isdigit() or not 1 <= int(text) <= 100:
        errors["crypto_confirmations"] = "Enter a whole number from 1 to 100."
    else:
        values["crypto_confirmations"] = int(text)
    for name, limit in _LIMITS.items():
        value = form.get(name, "").strip()
        if len(value) > limit:
            errors[name] = f"At most {limit} characters."
        values[name] = value
    if errors:
        raise FormErrors(errors)
    return values


async def update_policy(p: Principal, form: dict[str, str], actor: Actor) -> bool:
    """True when something changed."""
    if not allowed(p, "finance"):
        raise PermissionError("Only finance changes the funding policy.")
    values = parse(form)
    async with db.transaction():
        old = await db.fetchrow("SELECT * FROM funding_policy WHERE id = 1 FOR UPDATE")
        if old is None:
            raise FormErrors({"__all__": "The funding policy row is missing; run the migrations."})
        changes = {k: v for k, v in values.items() if old[k] != v}
        if not changes:
            return False
        sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(changes, start=2))
        await db.fetchrow(
            f"UPDATE funding_policy SET {sets}, updated_by = ${len(changes) + 2}, updated_at = now() WHERE id = $1",  # noqa: S608 (column names are ours)
            1,
            *changes.values(),
            actor.label[:320],
        )
        await audit.record(
            actor,
            "funding.policy.updated",
            "funding_policy",
            1,
            before={k: str(old[k]) for k in changes},
            after={k: str(v) for k, v in changes.items()},
        )
    return True
