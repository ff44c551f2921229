"""The MT5 Web API's wire rules shared by our client and our simulator: the password hash,
the retcodes and the envelope. Both sides implement the published protocol; this module holds
only what the protocol itself fixes (see ../shared/reference/mt5-webapi.md)."""

from __future__ import annotations

import hashlib

from app.trading import platform as p

WEBAPI_SUFFIX = b"WebAPI"
MIN_VERSION = 484

RETCODES: dict[int, str] = {
    0: "Done",
    1: "OK, nothing done",
    2: "Common error",
    3: "Invalid parameters",
    4: "Invalid data",
    7: "Network error",
    8: "Not enough permissions",
    9: "Timeout",
    10: "No connection",
    12: "Too frequent requests",
    13: "Not found",
    17: "Duplicate",
    1001: "Invalid account",
    1002: "Account disabled",
    1008: "Server authentication failed",
    3002: "Login range exhausted",
    3003: "Login prohibited",
    3004: "Account already exists",
    3006: "Invalid account password",
    3008: "Account has trades",
    4005: "Trade: amount over the maximum",
    10019: "Not enough money",
}


def password_hash(password: str) -> bytes:
    """PH = MD5(MD5(password as UTF-16LE) + b"WebAPI"), binary. MD5 because the protocol fixes it;
    the connection's TLS, not this hash, is what protects the session."""
    p1 = hashlib.md5(password.encode("utf-16-le"), usedforsecurity=False).digest()
    return hashlib.md5(p1 + WEBAPI_SUFFIX, usedforsecurity=False).digest()


def rand_answer(ph: bytes, rand_hex: str) -> str:
    """hex(MD5(PH + unhex(rand))): the answer to a server's or a client's random challenge."""
    return hashlib.md5(ph + bytes.fromhex(rand_hex), usedforsecurity=False).hexdigest()


def retcode_text(code: int) -> str:
    return f"{code} {RETCODES.get(code, 'Error')}"


def parse_retcode(value: object) -> int:
    """The leading integer of "<int> <text>"; raises ValueError when there is none."""
    if not isinstance(value, str):
        raise ValueError("retcode is not a string")
    head = value.strip().split(" ", 1)[0]
    return int(head)


_ERRORS: dict[int, type[p.PlatformError]] = {
    3: p.InvalidRequest,
    4: p.InvalidRequest,
    4005: p.InvalidRequest,
    7: p.Unreachable,
    9: p.OutcomeUnknown,
    10: p.Unreachable,
    8: p.PermissionDenied,
    12: p.Busy,
    13: p.NotFound,
    1001: p.NotFound,
    17: p.Duplicate,
    3004: p.Duplicate,
    1002: p.AccountDisabled,
    1008: p.AuthFailed,
    3006: p.WeakPassword,
    10019: p.NotEnoughMoney,
}

_MESSAGES: dict[int, str] = {
    8: "The trading server refused: not permitted (for a new account this usually means the group does not exist).",
    13: "The trading server does not know this account or record.",
    1001: "The trading server does not know this account.",
    1002: "This trading account is disabled on the trading server.",
    1008: "The trading server rejected the manager credentials.",
    3002: "The trading server has no free logins left in this group's range.",
    3003: "The trading server does not allow this login.",
    3004: "An account with this login already exists on the trading server.",
    3006: "The password is too weak for the trading server: use 8–16 characters with upper and lower case letters and digits.",
    3008: "The account has trades and cannot be deleted.",
    4005: "The amount is over the trading server's maximum.",
    10019: "Not enough money on the trading account (balance or free margin).",
    12: "The trading server is busy (too many requests); try again in a moment.",
}


def error_for(code: int, command: str, text: str = "") -> p.PlatformError:
    """The typed error for a non-zero retcode, with a message fit for a person."""
    cls = _ERRORS.get(code, p.PlatformError)
    message = (
        _MESSAGES.get(code) or f"The trading server answered {code} {text or RETCODES.get(code, 'Error')}."
    )
    return cls(message, code=code, command=command)
