"""Payment methods: the ways to deposit that finance configures, and what a client is offered.

A method lists its currencies; the first one is the method's own currency, and its limits
(minimum and maximum per deposit) and both fixed fees are amounts in that currency, held to its
minor units. The broker's fee and the provider's fee are kept apart (each a percent plus a fixed
amount) because the client is shown both, and finance reconciles the provider's against its
statement. A method is offered to a client when it is active, their country is allowed (no
countries listed: every country) and their KYC level has reached the method's.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pycountry

from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.funding.amounts import MINOR_UNITS, format_amount
from app.funding.tables import PaymentMethod
from app.kyc.levels import rights_for

KINDS = {"card": "Card", "ewallet": "E-wallet", "wire": "Bank wire", "crypto": "Crypto"}
PERCENT_DECIMALS = 4
MAX_KYC_LEVEL = 20
FIELDS = (
    "name",
    "kind",
    "provider",
    "currencies",
    "min_amount",
    "max_amount",
    "broker_fee_percent",
    "broker_fee_fixed",
    "provider_fee_percent",
    "provider_fee_fixed",
    "withdrawals_allowed",
    "countries",
    "kyc_level",
    "active",
    "sort_order",
)
CHECKBOXES = ("withdrawals_allowed", "active")
_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_PROVIDER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_WHOLE = re.compile(r"^-?[0-9]{1,6}$")


def _split(text: str) -> list[str]:
    return [p.strip().upper() for p in text.split(",") if p.strip()]


def _decimal(text: str, what: str) -> Decimal:
    """Exact decimal or ValueError; "1e3", "1,5", "  " and "NaN" are refused, not guessed at."""
    if not _NUMBER.match(text):
        raise ValueError(f"Write {what} as a number, e.g. 12.50.")
    value = Decimal(text)
    if value < 0:
        raise ValueError(f"{what[0].upper()}{what[1:]} must not be negative.")
    return value


def _decimals(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _in_minor_units(value: Decimal, currency: str, what: str) -> None:
    digits = MINOR_UNITS[currency]
    if _decimals(value.normalize()) > digits:
        unit = "whole units" if digits == 0 else f"at most {digits} decimals"
        raise ValueError(f"{what[0].upper()}{what[1:]} is in {currency}, which has {unit}: {value} has more.")


def parse(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(values ready to store, {field: message}). Strict: nothing is rounded or guessed."""
    raw = {k: str(form.get(k, "")).strip() for k in FIELDS if k not in CHECKBOXES}
    errors: dict[str, str] = {}
    values: dict[str, Any] = {k: form.get(k) == "on" for k in CHECKBOXES}

    if not raw["name"] or len(raw["name"]) > 100:
        errors["name"] = "Give the method a name (up to 100 characters)."
    values["name"] = raw["name"]
    if raw["kind"] not in KINDS:
        errors["kind"] = "Choose the kind: card, e-wallet, bank wire or crypto."
    values["kind"] = raw["kind"]
    provider = raw["provider"].lower()
    if not _PROVIDER.match(provider):
        errors["provider"] = "The provider key: lower-case letters, digits, - or _, e.g. simcard."
    values["provider"] = provider

    currencies = _split(raw["currencies"])
    unknown = [c for c in currencies if c not in MINOR_UNITS]
    if not currencies:
        errors["currencies"] = "List at least one currency, e.g. USD,EUR."
    elif unknown:
        errors["currencies"] = (
            f"Unknown currency {', '.join(unknown)}: the ledger accepts {', '.join(sorted(MINOR_UNITS))}."
        )
    elif len(set(currencies)) != len(currencies):
        errors["currencies"] = "Each currency once, please."
    values["currencies"] = ",".join(currencies)
    currency = currencies[0] if currencies and "currencies" not in errors else None

    labels = {
        "min_amount": "the minimum",
        "max_amount": "the maximum",
        "broker_fee_fixed": "the broker's fixed fee",
        "provider_fee_fixed": "the provider's fixed fee",
        "broker_fee_percent": "the broker's percent",
        "provider_fee_percent": "the provider's percent",
    }
    for key, what in labels.items():
        text = raw[key] or ("0" if key.endswith(("_fixed", "_percent")) else "")
        try:
            value = _decimal(text, what)
            if key.endswith("_percent"):
                if value >= 100:
                    raise ValueError(f"{what[0].upper()}{what[1:]} must be below 100.")
                if _decimals(value.normalize()) > PERCENT_DECIMALS:
                    raise ValueError(f"At most {PERCENT_DECIMALS} decimals in a percent.")
            elif currency:
                _in_minor_units(value, currency, what)
            values[key] = value
        except ValueError as exc:
            errors[key] = str(exc)
    low, high = values.get("min_amount"), values.get("max_amount")
    if low is not None and "min_amount" not in errors and low == 0:
        errors["min_amount"] = "The minimum must be above zero."
    elif low is not None and high is not None and low > high:
        errors["max_amount"] = f"The maximum ({high}) is below the minimum ({low})."
    fixed = [f for f in (values.get("broker_fee_fixed"), values.get("provider_fee_fixed")) if f is not None]
    if low and "min_amount" not in errors and len(fixed) == 2:
        if sum(fixed, Decimal(0)) >= low:
            errors["min_amount"] = "A deposit of the minimum would be eaten by the fixed fees: raise it."

    countries = _split(raw["countries"])
    unknown = [c for c in countries if len(c) != 2 or pycountry.countries.get(alpha_2=c) is None]
    if unknown:
        errors["countries"] = (
            f"Unknown country code {', '.join(unknown)}: use ISO two-letter codes, e.g. DE,FR."
        )
    elif len(set(countries)) != len(countries):
        errors["countries"] = "Each country once, please."
    values["countries"] = ",".join(countries)

    if (
        not raw["kyc_level"].isdigit()
        or not raw["kyc_level"].isascii()
        or int(raw["kyc_level"]) > MAX_KYC_LEVEL
    ):
        errors["kyc_level"] = "Choose the KYC level a client needs (0: registered, no documents)."
    else:
        values["kyc_level"] = int(raw["kyc_level"])
    sort_text = raw["sort_order"] or "0"
    if not _WHOLE.match(sort_text):
        errors["sort_order"] = "The position in the list: a whole number (lower first)."
    else:
        values["sort_order"] = int(sort_text)
    return values, errors


def currency_of(method: dict[str, Any]) -> str:
    """The method's own currency: its limits and fixed fees are amounts in it."""
    return str(method["currencies"]).split(",")[0]


def limits_text(method: dict[str, Any]) -> str:
    """The method's limits per deposit as people read them: `10.00 USD – 5,000.00 USD`."""
    own = currency_of(method)
    return f"{format_amount(method['min_amount'], own)} – {format_amount(method['max_amount'], own)}"


def fees_for(method: dict[str, Any], amount: Decimal) -> dict[str, Decimal]:
    """What a deposit of `amount` (in the method's currency) costs, each fee rounded half up to the
    currency's minor unit, and what reaches the wallet."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError(f"amounts are exact decimals, not {type(amount).__name__}")
    unit = Decimal(1).scaleb(-MINOR_UNITS[currency_of(method)])

    def fee(percent: Decimal, fixed: Decimal) -> Decimal:
        return (Decimal(amount) * Decimal(percent) / 100 + Decimal(fixed)).quantize(unit, ROUND_HALF_UP)

    broker = fee(method["broker_fee_percent"], method["broker_fee_fixed"])
    provider = fee(method["provider_fee_percent"], method["provider_fee_fixed"])
    total = broker + provider
    return {
        "broker_fee": broker,
        "provider_fee": provider,
        "total_fee": total,
        "net_credit": (Decimal(amount) - total).quantize(unit, ROUND_HALF_UP),
    }


def _require_finance(p: Principal) -> None:
    if not allowed(p, "finance"):
        raise PermissionError("Only finance and administrators configure payment methods.")


async def level_names() -> dict[int, str]:
    """Rank → name on the individual ladder (what the form offers and the list shows)."""
    rows = await db.fetch("SELECT rank, name FROM kyc_levels WHERE entity_type = 'individual' ORDER BY rank")
    return {r["rank"]: r["name"] for r in rows}


async def _validate(form: dict[str, str]) -> dict[str, Any]:
    values, errors = parse(form)
    if "kyc_level" not in errors:
        ranks = await db.fetch("SELECT DISTINCT rank FROM kyc_levels")
        known = {0} | {r["rank"] for r in ranks}
        if values["kyc_level"] not in known:
            errors["kyc_level"] = f"There is no KYC level {values['kyc_level']}."
    if errors:
        raise FormErrors(errors)
    return values


def _audited(values: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()}


async def list_methods() -> list[dict[str, Any]]:
    rows = await PaymentMethod.select().order_by(PaymentMethod.sort_order).order_by(PaymentMethod.name)
    return [{**r, "currency": currency_of(r)} for r in rows]


async def get_method(method_id: int) -> dict[str, Any]:
    row = await PaymentMethod.select().where(PaymentMethod.id == method_id).first()
    if row is None:
        raise NotFound("payment method")
    return {**row, "currency": currency_of(row)}


async def create(p: Principal, form: dict[str, str], actor: Actor) -> int:
    _require_finance(p)
    values = await _validate(form)
    now = datetime.now(UTC)
    async with transaction():
        row = PaymentMethod(**values, created_at=now, updated_at=now)
        await row.save()
        await audit.record(
            actor, "funding.payment_method_created", "funding_payment_method", row.id, after=_audited(values)
        )
    return int(row.id)


async def update(p: Principal, method_id: int, form: dict[str, str], actor: Actor) -> bool:
    """True when something changed. Deposits already made keep the fees they were charged."""
    _require_finance(p)
    values = await _validate(form)
    old = await get_method(method_id)
    changes = {k: v for k, v in values.items() if old[k] != v}
    if not changes:
        return False
    async with transaction():
        await PaymentMethod.update(
            {
                **{getattr(PaymentMethod, k): v for k, v in changes.items()},
                PaymentMethod.updated_at: datetime.now(UTC),
            }
        ).where(PaymentMethod.id == method_id)
        await audit.record(
            actor,
            "funding.payment_method_updated",
            "funding_payment_method",
            method_id,
            before=_audited({k: old[k] for k in changes}),
            after=_audited(changes),
        )
    return True


async def methods_for_client(client_id: int, currency: str | None = None) -> list[dict[str, Any]]:
    """The active methods this client may use (in `currency`, when given), each with the fees of a
    deposit of its minimum as a preview."""
    client = await db.fetchrow("SELECT country FROM clients WHERE id = $1", client_id)
    if client is None:
        raise NotFound("client")
    country = str(client["country"] or "").upper()
    level = (await rights_for(client_id)).level
    wanted = (currency or "").strip().upper()
    offered = []
    for method in await list_methods():
        if not method["active"] or method["kyc_level"] > level:
            continue
        countries = _split(method["countries"])
        if countries and country not in countries:
            continue
        if wanted and wanted not in method["currencies"].split(","):
            continue
        offered.append({**method, "fees_at_min": fees_for(method, method["min_amount"])})
    return offered


def form_values(method: dict[str, Any]) -> dict[str, Any]:
    """A stored method as the form shows it."""
    out: dict[str, Any] = {k: method[k] for k in FIELDS}
    for k, v in out.items():
        if isinstance(v, Decimal):
            out[k] = format(v, "f")
        elif k in ("kyc_level", "sort_order"):
            out[k] = str(v)
    return out
