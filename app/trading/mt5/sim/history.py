"""MT5 commands over money and history: balance operations, deals, positions and groups."""

from __future__ import annotations

import math
from typing import Any

from app.trading.mt5.sim import symbols
from app.trading.mt5.sim.commands import (
    MT5Error,
    Reply,
    Session,
    Sim,
    _int,
    _selected_logins,
    _time_window,
    _user,
    command,
    mask_matcher,
)  # fmt: skip
from app.trading.mt5.sim.records import Position, deal_json, dumps, money

MAX_AMOUNT = 1e9
MAX_PAGE = 100
COMMENT_MAX = 32


# ---- balance operations ---------------------------------------------------------------------------
@command("trade/balance")
def trade_balance(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    user = _user(sim, params)
    kind = _int(params, "type")
    if kind not in (2, 3, 4, 5, 6):
        raise MT5Error(3)
    try:
        amount = float(params.get("balance", ""))
    except ValueError:
        raise MT5Error(3) from None
    comment = params.get("comment", "")
    if not math.isfinite(amount) or amount == 0 or len(comment) > COMMENT_MAX:
        raise MT5Error(3)
    if abs(amount) > MAX_AMOUNT:
        raise MT5Error(4005)
    check_margin = params.get("check_margin", "1") != "0"
    cd = sim.store.currency_digits(user)
    amount = round(amount, cd)
    if amount < 0:
        if -amount > (user.credit if kind == 3 else user.balance) + 1e-9:
            raise MT5Error(10019)
        if check_margin and -amount > sim.engine.account(user).free + 1e-9:
            raise MT5Error(10019)
    now_msc = sim.clock.now_msc()
    with sim.store.tx():
        ticket = sim.store.next_deal()
        if kind == 3:
            user.credit = round(user.credit + amount, cd)
        else:
            user.balance = round(user.balance + amount, cd)
        text = deal_json(deal=ticket, login=user.login, time_msc=now_msc, action=kind, currency_digits=cd,
                         dealer=session.manager or 0, profit=amount, comment=comment, reason=2)  # fmt: skip
        sim.store.add_deal(ticket, user.login, now_msc // 1000, "", kind, comment, text)
        sim.store.save_user(user)
        sim.engine.stop_out(user.login)
    return Reply(answer=dumps({"Ticket": str(ticket)}))


# ---- deals ----------------------------------------------------------------------------------------
def _page(params: dict[str, str]) -> tuple[int, int]:
    offset = _int(params, "offset", 0)
    total = _int(params, "total", MAX_PAGE)
    if offset < 0 or not 0 < total <= MAX_PAGE:
        raise MT5Error(3)
    return offset, total


@command("deal/get")
def deal_get(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    text = sim.store.deal(_int(params, "ticket"))
    if text is None:
        raise MT5Error(13)
    return Reply(answer=text)


@command("deal/get_total")
def deal_get_total(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    logins = _selected_logins(sim, params)
    since, until = _time_window(params)
    total = sim.store.deal_count(logins, since, until, params.get("symbol"))
    return Reply(answer=dumps({"Total": str(total)}))


@command("deal/get_page")
def deal_get_page(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    logins = _selected_logins(sim, params)
    since, until = _time_window(params)
    offset, total = _page(params)
    rows = sim.store.deal_texts(logins, since, until, params.get("symbol"), offset, total)
    return Reply(answer="[" + ",".join(rows) + "]")


@command("deal/get_batch")
def deal_get_batch(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    logins = _selected_logins(sim, params)
    since, until = _time_window(params)
    rows = sim.store.deal_texts(logins, since, until, params.get("symbol"))
    return Reply(answer="[" + ",".join(rows) + "]")


# ---- positions ------------------------------------------------------------------------------------
def position_record(sim: Sim, pos: Position) -> dict[str, str]:
    spec = symbols.SYMBOLS[pos.symbol]
    user = sim.store.users[pos.login]
    cd = sim.store.currency_digits(user)
    currency = sim.engine.currency(user)
    current, profit = sim.engine.position_profit(pos, currency)
    d = spec.digits
    return {
        "Position": str(pos.position),
        "ExternalID": "",
        "Login": str(pos.login),
        "Dealer": "0",
        "Symbol": pos.symbol,
        "Action": str(pos.action),
        "Digits": str(d),
        "DigitsCurrency": str(cd),
        "ContractSize": f"{spec.contract:.2f}",
        "TimeCreate": str(pos.time_create_msc // 1000),
        "TimeUpdate": str(pos.time_update_msc // 1000),
        "TimeCreateMsc": str(pos.time_create_msc),
        "TimeUpdateMsc": str(pos.time_update_msc),
        "PriceOpen": f"{pos.price_open:.{d}f}",
        "PriceCurrent": f"{current:.{d}f}",
        "PriceSL": f"{0.0:.{d}f}",
        "PriceTP": f"{0.0:.{d}f}",
        "Volume": str(pos.volume),
        "VolumeExt": str(pos.volume * 10000),
        "Profit": money(profit, cd),
        "Storage": money(pos.storage, cd),
        "RateProfit": f"{sim.engine.rate(spec.profit_ccy, currency):.8f}",
        "RateMargin": f"{pos.rate_margin:.8f}",
        "ExpertID": "0",
        "ExpertPositionID": "0",
        "Comment": pos.comment,
        "ActivationMode": "0",
        "ActivationTime": "0",
        "ActivationPrice": f"{0.0:.{d}f}",
        "ActivationFlags": "0",
        "Reason": str(pos.reason),
    }


def _positions(sim: Sim, logins: list[int] | None, symbol: str | None) -> list[Position]:
    if logins is None:
        chosen = sorted(sim.store.positions.values(), key=lambda p: p.position)
    else:
        chosen = sorted(
            (p for n in set(logins) for p in sim.store.by_login.get(n, ())), key=lambda p: p.position
        )
    return [p for p in chosen if not symbol or p.symbol == symbol]


def _position_list(sim: Sim, chosen: list[Position]) -> Reply:
    return Reply(answer="[" + ",".join(dumps(position_record(sim, p)) for p in chosen) + "]")


@command("position/get_total")
def position_get_total(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    chosen = _positions(sim, _selected_logins(sim, params), params.get("symbol"))
    return Reply(answer=dumps({"Total": str(len(chosen))}))


@command("position/get_page")
def position_get_page(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    chosen = _positions(sim, _selected_logins(sim, params), params.get("symbol"))
    offset, total = _page(params)
    return _position_list(sim, chosen[offset : offset + total])


@command("position/get_batch")
def position_get_batch(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    if params.get("ticket"):
        try:
            tickets = [int(t) for t in params["ticket"].split(",") if t.strip()]
        except ValueError:
            raise MT5Error(3) from None
        return _position_list(
            sim, [sim.store.positions[t] for t in sorted(set(tickets)) if t in sim.store.positions]
        )
    return _position_list(sim, _positions(sim, _selected_logins(sim, params), params.get("symbol")))


@command("position/get")
def position_get(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    user = _user(sim, params)
    symbol = params.get("symbol", "")
    for pos in sim.store.by_login.get(user.login, ()):
        if pos.symbol == symbol:
            return Reply(answer=dumps(position_record(sim, pos)))
    raise MT5Error(13)


# ---- groups ---------------------------------------------------------------------------------------
@command("group/get")
def group_get(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    if params.get("mask"):
        match = mask_matcher(params["mask"])
        chosen = [g for name, g in sorted(sim.store.groups.items()) if match(name)]
        return Reply(answer="[" + ",".join(dumps(g.record()) for g in chosen) + "]")
    name = params.get("group", "")
    if not name:
        raise MT5Error(3)
    group = sim.store.groups.get(name)
    if group is None:
        raise MT5Error(13)
    return Reply(answer=dumps(group.record()))


@command("group/total")
def group_total(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    return Reply(answer=dumps({"Total": str(len(sim.store.groups))}))


@command("group/next")
def group_next(sim: Sim, session: Session, params: dict[str, str], body: Any) -> Reply:
    index = _int(params, "index")
    names = sorted(sim.store.groups)
    if not 0 <= index < len(names):
        raise MT5Error(13)
    return Reply(answer=dumps(sim.store.groups[names[index]].record()))
