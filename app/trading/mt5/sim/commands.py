"""The MT5 Web API commands. Each takes the query parameters and the JSON body and returns a
`Reply` (retcode, answer as JSON text, extra top-level fields) or raises `MT5Error(retcode)`."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.trading.mt5 import protocol
from app.trading.mt5.sim.engine import Clock, Engine
from app.trading.mt5.sim.knobs import Knobs
from app.trading.mt5.sim.records import (
    DEFAULT_RIGHTS,
    NO_COLOR,
    USER_INT_FIELDS,
    USER_TEXT_FIELDS,
    User,
    dumps,
    money,
)  # fmt: skip
from app.trading.mt5.sim.store import Store

VERSION_ACCESS = "4000"
VERSION_TRADE = "4000"
AUTH_ANSWER_SECONDS = 10.0


class MT5Error(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Reply:
    code: int = 0
    answer: str | None = None  # JSON text
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Session:
    """MT5 binds the session to the connection: one of these per TCP/TLS connection."""

    manager: int | None = None
    pending: tuple[int, str, float] | None = None  # (login, srv_rand, monotonic start)
    close_after: bool = False


@dataclass
class Sim:
    store: Store
    engine: Engine
    knobs: Knobs
    clock: Clock
    managers: dict[int, bytes]  # manager login -> password hash (PH)


Handler = Callable[[Sim, Session, dict[str, str], Any], Reply]
COMMANDS: dict[str, Handler] = {}
PUBLIC = {"auth/start", "auth/answer"}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = fn
        return fn

    return register


# ---- parameter parsing ----------------------------------------------------------------------------
def _int(params: dict[str, str], key: str, default: int | None = None) -> int:
    raw = params.get(key)
    if raw is None or raw == "":
        if default is None:
            raise MT5Error(3)
        return default
    try:
        return int(raw)
    except ValueError:
        raise MT5Error(3) from None


def _logins(params: dict[str, str]) -> list[int]:
    raw = params.get("login", "")
    try:
        return [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise MT5Error(3) from None


def mask_matcher(mask: str) -> Callable[[str], bool]:
    """MT5 group masks: comma-separated, `*` wildcard, `!` excludes; case-insensitive."""
    include: list[re.Pattern[str]] = []
    exclude: list[re.Pattern[str]] = []
    for part in mask.split(","):
        part = part.strip()
        if not part:
            continue
        target = exclude if part.startswith("!") else include
        pattern = re.escape(part.lstrip("!")).replace(r"\*", ".*")
        target.append(re.compile(pattern + r"\Z", re.IGNORECASE))
    return lambda name: any(p.match(name) for p in include) and not any(p.match(name) for p in exclude)


def _selected_logins(sim: Sim, params: dict[str, str], required: bool = True) -> list[int] | None:
    """Logins from `login=a,b` and/or `group=mask`; None means every account."""
    logins = _logins(params)
    mask = params.get("group", "")
    if mask:
        match = mask_matcher(mask)
        names = {g for g in sim.store.groups if match(g)}
        in_groups = [u.login for u in sim.store.users.values() if u.group in names]
        if mask.strip() == "*" and not logins:
            return None
        logins = sorted(set(logins) | set(in_groups))
        return logins
    if not logins:
        if required:
            raise MT5Error(3)
        return None
    return logins


def _time_window(params: dict[str, str]) -> tuple[int | None, int | None]:
    since = _int(params, "from", -1)
    until = _int(params, "to", -1)
    return (since if since >= 0 else None, until if until >= 0 else None)


def _user(sim: Sim, params: dict[str, str]) -> User:
    login = _int(params, "login")
    user = sim.store.users.get(login)
    if user is None:
        raise MT5Error(13)
    return user


def strong_password(password: str) -> bool:
    if not 8 <= len(password) <= 16:
        return False
    classes = [
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    ]
    return sum(classes) >= 3


def _ph(password: str) -> str:
    return protocol.password_hash(password).hex()


# ---- session --------------------------------------------------------------------------------------
@command("auth/start")
def auth_start(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    session.manager = None
    session.pending = None
    version = _int(params, "version")
    agent = params.get("agent", "")
    login = _int(params, "login")
    if version < protocol.MIN_VERSION or not agent or " " in agent or params.get("type") != "manager":
        raise MT5Error(3)
    srv_rand = os.urandom(16).hex()
    session.pending = (login, srv_rand, time.monotonic())
    return Reply(extra={"version_access": VERSION_ACCESS, "srv_rand": srv_rand})


@command("auth/answer")
def auth_answer(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    pending, session.pending = session.pending, None
    answer = params.get("srv_rand_answer", "").lower()
    cli_rand = params.get("cli_rand", "")
    if pending is None or not re.fullmatch(r"[0-9a-fA-F]{32}", cli_rand):
        raise MT5Error(3)
    login, srv_rand, started = pending
    ph = sim.managers.get(login)
    late = time.monotonic() - started > AUTH_ANSWER_SECONDS
    if ph is None or late or answer != protocol.rand_answer(ph, srv_rand):
        raise MT5Error(1008)
    session.manager = login
    return Reply(
        extra={
            "version_access": VERSION_ACCESS,
            "version_trade": VERSION_TRADE,
            "cli_rand_answer": protocol.rand_answer(ph, cli_rand),
        }
    )


@command("test/access")
def test_access(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    return Reply()


@command("quit")
def quit_(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    session.manager = None
    session.close_after = True
    return Reply()


@command("time/server")
def time_server(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    now = sim.clock.now()
    text = datetime.fromtimestamp(now, UTC).strftime("%Y.%m.%d %H:%M:%S")
    return Reply(answer=dumps({"Time": f"{now} {text}"}))


# ---- users ----------------------------------------------------------------------------------------
_QUERY_NAMES = {name.lower(): name for name in USER_TEXT_FIELDS + USER_INT_FIELDS + ("Group", "Login")}
_QUERY_NAMES |= {"passmain": "PassMain", "passinvestor": "PassInvestor", "right": "Rights"}


def _user_fields(params: dict[str, str], body: Any) -> dict[str, Any]:
    """Fields from query parameters (any case, `_` ignored) overlaid by the JSON body (MT5 names)."""
    fields: dict[str, Any] = {}
    for key, value in params.items():
        name = _QUERY_NAMES.get(key.lower().replace("_", ""))
        if name:
            fields[name] = value
    if body is not None:
        if not isinstance(body, dict):
            raise MT5Error(3)
        for key, value in body.items():
            if (
                key in USER_TEXT_FIELDS
                or key in USER_INT_FIELDS
                or key in ("Group", "Login", "PassMain", "PassInvestor")
            ):
                if not isinstance(value, str | int | float) or isinstance(value, bool):
                    raise MT5Error(3)
                fields[key] = value
    return fields


def _apply_fields(sim: Sim, user: User, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if name in USER_TEXT_FIELDS:
            text = str(value)
            if len(text) > 128:
                raise MT5Error(3)
            user.data[name] = text
        elif name in USER_INT_FIELDS:
            try:
                number = int(float(value))
            except ValueError:
                raise MT5Error(3) from None
            if name == "Leverage" and not 1 <= number <= 10_000 or number < 0:
                raise MT5Error(3)
            user.data[name] = number
        elif name == "Group":
            if str(value) not in sim.store.groups:
                raise MT5Error(8)
            user.group = str(value)


def _user_reply(sim: Sim, user: User, **extra: str) -> Reply:
    return Reply(answer=dumps(user.record(sim.store.currency_digits(user))), extra=extra)


@command("user/add")
def user_add(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    fields = _user_fields(params, body)
    group = str(fields.pop("Group", ""))
    if not group:
        raise MT5Error(3)
    if group not in sim.store.groups:
        raise MT5Error(8)
    try:
        login = int(fields.pop("Login", 0) or 0)
    except ValueError:
        raise MT5Error(3) from None
    if login < 0:
        raise MT5Error(3)
    if login and login in sim.store.users:
        raise MT5Error(3004)
    main = str(fields.pop("PassMain", ""))
    investor = str(fields.pop("PassInvestor", ""))
    if not strong_password(main) or not strong_password(investor):
        raise MT5Error(3006)
    now = sim.clock.now()
    data: dict[str, Any] = {"Rights": DEFAULT_RIGHTS, "Color": NO_COLOR, "Registration": now, "LastAccess": now,
                            "Leverage": sim.store.groups[group].leverage}  # fmt: skip
    user = User(login or 0, group, data, pass_main=_ph(main), pass_investor=_ph(investor))
    _apply_fields(sim, user, fields)
    with sim.store.tx():
        user.login = login or sim.store.next_login()
        sim.store.save_user(user)
    return _user_reply(sim, user, login=str(user.login))


@command("user/update")
def user_update(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    user = _user(sim, params)
    fields = _user_fields({k: v for k, v in params.items() if k != "login"}, body)
    fields.pop("Login", None)
    fields.pop("PassMain", None)
    fields.pop("PassInvestor", None)
    backup = (user.group, dict(user.data))
    try:
        _apply_fields(sim, user, fields)
    except MT5Error:
        user.group, user.data = backup
        raise
    with sim.store.tx():
        sim.store.save_user(user)
    return _user_reply(sim, user)


@command("user/get")
def user_get(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    return _user_reply(sim, _user(sim, params))


@command("user/get_batch")
def user_get_batch(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    logins = _selected_logins(sim, params)
    users = sim.store.users
    chosen = [users[n] for n in (logins if logins is not None else sorted(users)) if n in users]
    return Reply(answer="[" + ",".join(dumps(u.record(sim.store.currency_digits(u))) for u in chosen) + "]")


@command("user/logins")
def user_logins(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    match = mask_matcher(params.get("group", "") or "*")
    logins = sorted(u.login for u in sim.store.users.values() if match(u.group))
    return Reply(answer=dumps([str(n) for n in logins]))


@command("user/delete")
def user_delete(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    user = _user(sim, params)
    if sim.store.by_login.get(user.login) or sim.store.has_deals(user.login):
        raise MT5Error(3008)
    with sim.store.tx():
        sim.store.delete_user(user.login)
    return Reply()


def _password_kind(params: dict[str, str]) -> str:
    kind = (params.get("type") or "main").lower()
    if kind not in ("main", "investor", "api"):
        raise MT5Error(3)
    return kind


def _password_param(params: dict[str, str], body: Any) -> str:
    password = params.get("password")
    if password is None and isinstance(body, dict):
        password = body.get("Password", body.get("password"))
    if not isinstance(password, str):
        raise MT5Error(3)
    return password


@command("user/check_password")
def user_check_password(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    user = _user(sim, params)
    kind = _password_kind(params)
    stored = {"main": user.pass_main, "investor": user.pass_investor, "api": user.pass_api}[kind]
    if not stored or _ph(_password_param(params, body)) != stored:
        raise MT5Error(3006)
    return Reply()


@command("user/change_password")
def user_change_password(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    user = _user(sim, params)
    kind = _password_kind(params)
    password = _password_param(params, body)
    if not strong_password(password):
        raise MT5Error(3006)
    setattr(user, f"pass_{kind}", _ph(password))
    with sim.store.tx():
        sim.store.save_user(user)
    return Reply()


# ---- accounts -------------------------------------------------------------------------------------
def account_record(sim: Sim, user: User) -> dict[str, str]:
    cd = sim.store.currency_digits(user)
    calc = sim.engine.account(user)
    group = sim.store.groups.get(user.group)
    activation = 0
    if calc.margin > 0 and group is not None:
        if calc.level <= group.margin_stopout:
            activation = 2
        elif calc.level <= group.margin_call:
            activation = 1
    so = user.so
    return {
        "Login": str(user.login),
        "CurrencyDigits": str(cd),
        "Balance": money(calc.balance, cd),
        "Credit": money(calc.credit, cd),
        "Margin": money(calc.margin, cd),
        "MarginFree": money(calc.free, cd),
        "MarginLevel": money(calc.level, 2),
        "MarginLeverage": str(user.leverage),
        "Profit": money(calc.profit, cd),
        "Storage": money(calc.storage, cd),
        "Commission": money(0.0, cd),
        "Floating": money(calc.profit + calc.storage, cd),
        "Equity": money(calc.equity, cd),
        "SOActivation": str(activation),
        "SOTime": str(int(so.get("SOTime", 0))),
        "SOLevel": money(float(so.get("SOLevel", 0.0)), 2),
        "SOEquity": money(float(so.get("SOEquity", 0.0)), cd),
        "SOMargin": money(float(so.get("SOMargin", 0.0)), cd),
        "Assets": money(0.0, cd),
        "Liabilities": money(0.0, cd),
        "BlockedCommission": money(0.0, cd),
        "BlockedProfit": money(0.0, cd),
        "MarginInitial": money(0.0, cd),
        "MarginMaintenance": money(0.0, cd),
    }


@command("user/account/get")
def account_get(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    return Reply(answer=dumps(account_record(sim, _user(sim, params))))


@command("user/account/get_batch")
def account_get_batch(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    logins = _selected_logins(sim, params)
    users = sim.store.users
    chosen = [users[n] for n in (logins if logins is not None else sorted(users)) if n in users]
    return Reply(answer="[" + ",".join(dumps(account_record(sim, u)) for u in chosen) + "]")
