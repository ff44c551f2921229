"""MT5 records (field names as MT5 spells them, numbers as JSON strings) to and from the CRM's
platform dataclasses.

Deals are the hot path — an initial sync reads millions — so `deal_from` does no per-field helper
calls when the server sends strings as the protocol says; a record with real JSON numbers (a
lenient server) is first turned into strings so no float ever reaches a `Decimal`.
`DEAL_COLUMNS`/`deal_row` give the same deals as plain string tuples for a bulk `COPY`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from app.trading import platform as p

_D = Decimal
_ZERO = Decimal(0)


def text(value: Any) -> str:
    """A protocol value as the string MT5 would have sent (numbers without float noise)."""
    if value is None:
        return ""
    if value.__class__ is str:
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    return str(value)


def _int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return int(Decimal(text(value)))


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return _ZERO
    try:
        return Decimal(text(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def _strings(record: dict[str, Any]) -> dict[str, Any]:
    return {k: text(v) for k, v in record.items()}


# ---------------------------------------------------------------------------- users and accounts


def user_from(r: dict[str, Any]) -> p.PlatformUser:
    return p.PlatformUser(
        login=_int(r.get("Login")),
        group=text(r.get("Group", "")),
        name=text(r.get("Name", "")),
        email=text(r.get("Email", "")),
        leverage=_int(r.get("Leverage")),
        rights=_int(r.get("Rights")),
        balance=_dec(r.get("Balance")),
        credit=_dec(r.get("Credit")),
        registration=_int(r.get("Registration")),
        comment=text(r.get("Comment", "")),
        client_ref=text(r.get("ID", "")),
        raw=r,
    )


def account_from(r: dict[str, Any]) -> p.AccountState:
    return p.AccountState(
        login=_int(r.get("Login")),
        balance=_dec(r.get("Balance")),
        credit=_dec(r.get("Credit")),
        equity=_dec(r.get("Equity")),
        margin=_dec(r.get("Margin")),
        margin_free=_dec(r.get("MarginFree")),
        margin_level=_dec(r.get("MarginLevel")),
        profit=_dec(r.get("Profit")),
        storage=_dec(r.get("Storage")),
        commission=_dec(r.get("Commission")),
        leverage=_int(r.get("MarginLeverage")),
        currency_digits=_int(r.get("CurrencyDigits"), 2),
    )


def user_add_request(new: p.NewAccount) -> tuple[dict[str, str | int], dict[str, str]]:
    """Query parameters and JSON body of `user/add`; the passwords travel in the body only, so they
    stay out of URLs (and out of the logs of anything that records URLs)."""
    params: dict[str, str | int] = {"login": new.login, "group": new.group, "name": new.name}
    optional: dict[str, str | int | None] = {
        "leverage": new.leverage,
        "email": new.email,
        "first_name": new.first_name,
        "last_name": new.last_name,
        "country": new.country,
        "city": new.city,
        "address": new.address,
        "zipcode": new.zipcode,
        "phone": new.phone,
        "language": new.language,
        "comment": new.comment,
        "id": new.client_ref,
        "agent": new.agent,
        "rights": new.rights,
    }
    for key, value in optional.items():
        if value is not None and value != "" and value != 0:
            params[key] = value
    body = {"PassMain": new.password_main, "PassInvestor": new.password_investor}
    return params, body


_UPDATE_FIELDS = (
    ("group", "Group"),
    ("name", "Name"),
    ("email", "Email"),
    ("leverage", "Leverage"),
    ("rights", "Rights"),
    ("comment", "Comment"),
    ("client_ref", "ID"),
    ("agent", "Agent"),
)


def user_update_body(change: p.AccountUpdate) -> dict[str, str]:
    """The JSON body of `user/update`: the changed fields only, as MT5 names and spells them."""
    return {
        field: text(getattr(change, attr))
        for attr, field in _UPDATE_FIELDS
        if getattr(change, attr) is not None
    }


# ---------------------------------------------------------------------------- deals and positions


def deal_from(r: dict[str, Any]) -> p.Deal:
    if r["Deal"].__class__ is not str:
        r = _strings(r)
    g = r.get
    return p.Deal(
        int(r["Deal"]),
        int(r["Login"]),
        int(r["Action"]),
        int(g("Entry") or 0),
        int(g("Reason") or 0),
        int(r["Time"]),
        int(g("TimeMsc") or 0),
        g("Symbol") or "",
        _D(g("Price") or 0),
        int(g("Volume") or 0),
        _D(g("Profit") or 0),
        _D(g("Storage") or 0),
        _D(g("Commission") or 0),
        _D(g("Fee") or 0),
        int(g("PositionID") or 0),
        int(g("Order") or 0),
        g("Comment") or "",
        _D(g("ContractSize") or 0),
        int(g("Digits") or 5),
        int(g("Dealer") or 0),
    )


DEAL_COLUMNS = p.DEAL_ROW_COLUMNS


def deal_row(r: dict[str, Any]) -> tuple[str, ...]:
    """A deal as strings in `DEAL_COLUMNS` order, unparsed: numbers exactly as the server sent them
    (what PostgreSQL's COPY wants). Missing fields get the protocol's zero; the key fields must exist."""
    if r["Deal"].__class__ is not str:
        r = _strings(r)
    g = r.get
    return (
        r["Deal"],
        r["Login"],
        r["Action"],
        g("Entry") or "0",
        g("Reason") or "0",
        r["Time"],
        g("TimeMsc") or "0",
        g("Symbol") or "",
        g("Price") or "0",
        g("Volume") or "0",
        g("Profit") or "0",
        g("Storage") or "0",
        g("Commission") or "0",
        g("Fee") or "0",
        g("PositionID") or "0",
        g("Order") or "0",
        g("Comment") or "",
        g("ContractSize") or "0",
        g("Digits") or "5",
        g("Dealer") or "0",
    )


def position_from(r: dict[str, Any]) -> p.Position:
    if r["Position"].__class__ is not str:
        r = _strings(r)
    g = r.get
    return p.Position(
        int(r["Position"]),
        int(r["Login"]),
        g("Symbol") or "",
        int(g("Action") or 0),
        int(g("Volume") or 0),
        _D(g("PriceOpen") or 0),
        _D(g("PriceCurrent") or 0),
        _D(g("PriceSL") or 0),
        _D(g("PriceTP") or 0),
        _D(g("Profit") or 0),
        _D(g("Storage") or 0),
        int(g("TimeCreate") or 0),
        int(g("TimeUpdate") or 0),
        int(g("Digits") or 5),
        _D(g("ContractSize") or 0),
        g("Comment") or "",
    )


# ---------------------------------------------------------------------------- groups and time


def group_from(r: dict[str, Any]) -> p.Group:
    """MT5 groups carry no single leverage or commission field in every build; take what is there."""
    commission = r.get("Commission")
    if commission is None:
        commission = _first_commission(r.get("Commissions"))
    return p.Group(
        name=text(r.get("Group", "")),
        currency=text(r.get("Currency", "")),
        leverage=_int(r.get("Leverage", r.get("DemoLeverage"))),
        currency_digits=_int(r.get("CurrencyDigits"), 2),
        margin_call=_dec(r.get("MarginCall", 100)),
        stop_out=_dec(r.get("MarginStopOut", r.get("StopOut", 50))),
        commission_per_lot=_dec(commission),
    )


def _first_commission(commissions: Any) -> Any:
    """MT5 nests commissions as a list of rules, each with tiers holding a `Value`."""
    if not isinstance(commissions, list) or not commissions:
        return 0
    rule = commissions[0]
    if not isinstance(rule, dict):
        return 0
    tiers = rule.get("Tiers") or rule.get("TierS") or []
    if isinstance(tiers, list) and tiers and isinstance(tiers[0], dict):
        return tiers[0].get("Value", 0)
    return rule.get("Value", 0)


def server_time_from(answer: Any) -> int:
    """`{"Time": "1572518788 2019.10.31 10:46:28"}` → 1572518788."""
    value = answer.get("Time") if isinstance(answer, dict) else answer
    head = text(value).strip().split(" ", 1)[0]
    if not head:
        raise ValueError("time/server answered no Time")
    return int(head)


def as_list(answer: Any) -> list[dict[str, Any]]:
    """Batch answers are lists; a single record or nothing is accepted too."""
    if answer is None or answer == "":
        return []
    if isinstance(answer, list):
        return answer
    if isinstance(answer, dict):
        return [answer]
    raise ValueError(f"expected a list of records, got {type(answer).__name__}")
