"""Benchmark state: N accounts and M historical deals generated straight into a fresh state
file (the CRM's initial-sync benchmark needs 10,000 accounts and 1,000,000 deals). Deterministic
from the seed apart from the time base (history ends "now", server time)."""

from __future__ import annotations

import json
import random
import sys
import time

from app.trading.mt5 import protocol
from app.trading.mt5.sim import symbols
from app.trading.mt5.sim.engine import Clock
from app.trading.mt5.sim.records import DEFAULT_RIGHTS, NO_COLOR, deal_json
from app.trading.mt5.sim.store import FIRST_LOGIN, INDEXES, Store

BENCH_PASSWORD = "Bench#2026"  # noqa: S105 (simulated accounts)
HISTORY_DAYS = 365
CHUNK = 50_000
GROUP_WEIGHTS = (("real\\standard-usd", 7), ("demo\\forex-usd", 2), ("real\\pro-eur", 1))
BENCH_LOTS = (0.01, 0.01, 0.02, 0.05, 0.1, 0.1, 0.2, 0.5, 1.0)


def generate(store: Store, clock: Clock, accounts: int, history_deals: int, seed: int) -> None:
    if store.users:
        print("mt5-sim: the state already has accounts; benchmark generation skipped", file=sys.stderr)
        return
    accounts = max(accounts, 1)
    started = time.monotonic()
    rng = random.Random(f"bench:{seed}")
    ph = protocol.password_hash(BENCH_PASSWORD).hex()
    names = [g for g, _ in GROUP_WEIGHTS if g in store.groups]
    weights = [w for g, w in GROUP_WEIGHTS if g in store.groups]
    prices = {name: spec.start for name, spec in symbols.SYMBOLS.items()}
    now_msc = clock.now_msc()
    start_msc = now_msc - HISTORY_DAYS * 86_400_000
    total = max(history_deals, accounts)
    step = (now_msc - start_msc - 60_000) / total

    logins = list(range(FIRST_LOGIN, FIRST_LOGIN + accounts))
    group_of = {login: rng.choices(names, weights)[0] for login in logins}
    balance = dict.fromkeys(logins, 0.0)
    open_pos: dict[
        int, tuple[int, str, int, float, float, int]
    ] = {}  # login -> order, sym, side, lots, price, msc
    db = store.db
    db.executescript("DROP INDEX IF EXISTS deals_login_time; DROP INDEX IF EXISTS deals_time;")
    db.execute("BEGIN")
    rows: list[tuple[int, int, int, str, int, str, str]] = []
    order = 1
    for i in range(total):
        ticket = i + 1
        msc = start_msc + int(i * step)
        if i < accounts:
            login = logins[i]
            group = store.groups[group_of[login]]
            amount = float(rng.choice((500, 1000, 2500, 5000, 10000, 25000, 50000)))
            balance[login] = amount
            comment = f"deposit #{ticket}"
            text = deal_json(deal=ticket, login=login, time_msc=msc, action=2, currency_digits=group.currency_digits,
                             profit=amount, comment=comment)  # fmt: skip
            rows.append((ticket, login, msc // 1000, "", 2, comment, text))
        else:
            login = logins[rng.randrange(accounts)]
            group = store.groups[group_of[login]]
            cd = group.currency_digits
            held = open_pos.pop(login, None)
            if held is None:
                name = rng.choice(symbols.NAMES)
                side = rng.randrange(2)
                lots = rng.choice(BENCH_LOTS)
                spec = symbols.SYMBOLS[name]
                leverage = min(group.leverage, 100, spec.max_leverage)
                notional = (
                    spec.contract * prices[name] * symbols.rate(spec.profit_ccy, group.currency, prices)
                )
                while lots > 0.01 and notional * lots / leverage > balance[login] * 0.2:
                    lots = max(0.01, round(lots / 2, 2))
                if notional * lots / leverage > balance[login] * 0.2:
                    name, lots = "EURUSD", 0.01
                price_open = round(prices[name] * (1 + rng.gauss(0, 0.001)), symbols.SYMBOLS[name].digits)
                open_pos[login] = (order, name, side, lots, price_open, msc)
                entry, price, profit, position_id = 0, price_open, 0.0, order
            else:
                position_id, name, side, lots, price_open, _ = held
                spec = symbols.SYMBOLS[name]
                price = round(price_open * (1 + rng.gauss(0, 0.004)), spec.digits)
                diff = (price - price_open) if side == 0 else (price_open - price)
                rate = symbols.rate(spec.profit_ccy, group.currency, prices)
                profit = round(diff * spec.contract * lots * rate, cd)
                if balance[login] + profit < 0:
                    profit = -profit
                entry, side = 1, 1 - side
            spec = symbols.SYMBOLS[name]
            commission = -round(group.commission / 2 * lots, cd)
            balance[login] = round(balance[login] + profit + commission, cd)
            rate_profit = symbols.rate(spec.profit_ccy, group.currency, prices)
            text = deal_json(
                deal=ticket, login=login, time_msc=msc, action=side, entry=entry, reason=rng.choice((0, 16, 17)),
                currency_digits=cd, order=order, symbol=name, digits=spec.digits, contract=spec.contract,
                price=price, volume=round(lots * 10000), profit=profit, commission=commission,
                rate_profit=rate_profit, rate_margin=rate_profit, position_id=position_id,
                tick_value=spec.contract * spec.point * rate_profit, price_position=price_open,
                volume_closed=round(lots * 10000) if entry else 0,
            )  # fmt: skip
            order += 1
            rows.append((ticket, login, msc // 1000, name, side, "", text))
        if len(rows) >= CHUNK:
            db.executemany("INSERT INTO deals VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            rows.clear()
    if rows:
        db.executemany("INSERT INTO deals VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    now = now_msc // 1000
    user_rows = []
    for login in logins:
        group = store.groups[group_of[login]]
        data = {"Rights": DEFAULT_RIGHTS, "Color": NO_COLOR, "Registration": start_msc // 1000, "LastAccess": now,
                "Leverage": min(group.leverage, 100), "Name": f"Bench Trader {login}",
                "Email": f"trader{login}@bench.example", "ID": f"bench-{login}"}  # fmt: skip
        user_rows.append((login, group.name, balance[login], 0.0, ph, ph, "", json.dumps(data), "{}"))
    db.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", user_rows)
    db.executemany(
        "INSERT INTO positions VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 1, '', 0)",
        [(o, login, name, side, round(lots * 10000), price, msc, msc)
         for login, (o, name, side, lots, price, msc) in sorted(open_pos.items())],
    )  # fmt: skip
    for key, value in (
        ("next_deal", total + 1),
        ("next_order", order),
        ("next_login", FIRST_LOGIN + accounts),
    ):
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))
    db.execute("COMMIT")
    db.executescript(INDEXES)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.reload()
    print(
        f"mt5-sim: generated {accounts} accounts and {total} deals in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
        flush=True,
    )
