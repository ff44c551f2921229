"""The few numbers compliance tunes in the console: the questionnaire's cooldown and the risk
model's points and thresholds.

A row in `kyc_parameters` exists only once someone changed the default, so a new installation
needs no seed and a default can improve in code; `SPECS` is the one place that says what each
key means, its type, its default and its bounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors


@dataclass(frozen=True)
class Spec:
    label: str
    default: int | Decimal
    low: int | Decimal
    high: int | Decimal
    hint: str = ""

    def parse(self, raw: str) -> int | Decimal:
        text = (raw or "").strip().replace(",", "").replace(" ", "")
        value: int | Decimal
        if isinstance(self.default, Decimal):
            try:
                amount = Decimal(text)
            except InvalidOperation:
                raise ValueError("Enter an amount, e.g. 50000.") from None
            if not amount.is_finite() or not self.low <= amount <= self.high:
                raise ValueError(f"Enter an amount from {self.low} to {self.high:f}.")
            if amount != amount.quantize(Decimal("0.01")):
                raise ValueError("Enter an amount with at most two decimals.")
            value = amount
        else:
            if not text.lstrip("-").isdigit() or len(text) > 9:
                raise ValueError("Enter a whole number.")
            value = int(text)
        if not self.low <= value <= self.high:
            raise ValueError(f"Enter a value from {self.low} to {self.high}.")
        return value


SPECS: dict[str, Spec] = {
    "appropriateness.cooldown_days": Spec(
        "Days before the questionnaire may be taken again", 30, 0, 365, "0: at any time."
    ),
    "risk.points_medium": Spec("Points for a medium-risk factor", 25, 0, 1000),
    "risk.points_high": Spec("Points for a high-risk factor", 60, 0, 1000),
    "risk.medium_from": Spec("Medium risk from a score of", 25, 1, 10000),
    "risk.high_from": Spec("High risk from a score of", 60, 1, 10000),
    "risk.deposits_medium": Spec(
        "Deposits (USD) that make a medium-risk factor", Decimal("50000"), Decimal(0), Decimal("1e12")
    ),
    "risk.deposits_high": Spec(
        "Deposits (USD) that make a high-risk factor", Decimal("250000"), Decimal(0), Decimal("1e12")
    ),
    "risk.edd_due_days": Spec("Days to complete an enhanced-due-diligence task", 5, 1, 90),
}
RISK_KEYS = tuple(k for k in SPECS if k.startswith("risk."))


async def values() -> dict[str, Any]:
    """Every parameter, as stored or by default."""
    out: dict[str, Any] = {k: s.default for k, s in SPECS.items()}
    for row in await db.fetch("SELECT key, value FROM kyc_parameters"):
        spec = SPECS.get(row["key"])
        if spec is None:
            continue
        try:
            out[row["key"]] = spec.parse(row["value"])
        except ValueError:  # a value the bounds no longer allow: the default, rather than a crash
            continue
    return out


async def value(key: str) -> Any:
    return (await values())[key]


def _cross_checks(merged: Mapping[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if merged["risk.medium_from"] >= merged["risk.high_from"]:
        errors["risk.high_from"] = "High risk must start above the medium threshold."
    if merged["risk.deposits_medium"] >= merged["risk.deposits_high"]:
        errors["risk.deposits_high"] = "The high deposit amount must be above the medium one."
    return errors


async def save(viewer: Principal, raw: Mapping[str, str], actor: Actor, *, keys: tuple[str, ...]) -> bool:
    """Store the `keys` given in `raw` (all or nothing, audited); False when nothing changed."""
    errors: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    for key in keys:
        try:
            parsed[key] = SPECS[key].parse(raw.get(key, ""))
        except ValueError as exc:
            errors[key] = str(exc)
    if errors:
        raise FormErrors(errors)
    async with transaction():
        current = await values()
        merged = {**current, **parsed}
        if errors := _cross_checks(merged):
            raise FormErrors(errors)
        changed = {k: v for k, v in parsed.items() if v != current[k]}
        if not changed:
            return False
        for key, new in changed.items():
            await db.fetch(
                "INSERT INTO kyc_parameters (key, value, updated_at, updated_by) VALUES ({}, {}, now(), {}) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), "
                "updated_by = EXCLUDED.updated_by",
                key,
                str(new),
                viewer.id,
            )
        await audit.record(
            actor,
            "kyc.parameters_changed",
            "kyc_parameters",
            None,
            before={k: str(current[k]) for k in changed},
            after={k: str(v) for k, v in changed.items()},
        )
    return True
