"""The market engine: a random-walk price feed and simulated traders opening and closing
positions on the accounts, with commission, swap, P/L, margin and stop-out.

Every choice comes from one `random.Random` seeded from `--seed`, so two simulators with the same
seed and the same state that are stepped the same way (`POST /sim/control {"step": N}` while
paused) produce the same deals. Wall-clock time only decides *when* steps happen when running
freely, and the deals' Time fields.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from dataclasses import dataclass

from app.trading.mt5.sim import symbols
from app.trading.mt5.sim.knobs import Knobs
from app.trading.mt5.sim.records import Position, User, deal_json
from app.trading.mt5.sim.store import Store

log = logging.getLogger("mt5sim.engine")

TICK_SECONDS = 0.1
LOTS = (0.01, 0.01, 0.02, 0.03, 0.05, 0.05, 0.1, 0.1, 0.1, 0.2, 0.3, 0.5, 0.5, 1.0, 1.0, 2.0, 3.0, 5.0)
REASONS = (0, 0, 0, 1, 16, 16, 17)  # client, expert, mobile, web
MAX_POSITIONS = 8
REASON_SO = 5
STOP_OUT_EVERY = 5  # ticks between margin checks of every account when running freely (0.5 s)


@dataclass
class AccountCalc:
    balance: float
    credit: float
    profit: float
    storage: float
    margin: float

    @property
    def equity(self) -> float:
        return self.balance + self.credit + self.profit + self.storage

    @property
    def free(self) -> float:
        return self.equity - self.margin

    @property
    def level(self) -> float:
        return self.equity / self.margin * 100 if self.margin > 0 else 0.0


class Clock:
    """Server time: UTC plus the clock_offset_seconds knob."""

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs

    def now_msc(self) -> int:
        return int((time.time() + self.knobs.clock_offset_seconds) * 1000)

    def now(self) -> int:
        return self.now_msc() // 1000


class Engine:
    def __init__(self, store: Store, knobs: Knobs, clock: Clock, seed: int) -> None:
        self.store = store
        self.knobs = knobs
        self.clock = clock
        saved = store.get_meta("prices")
        self.prices: dict[str, float] = json.loads(saved) if saved else {}
        for name, spec in symbols.SYMBOLS.items():
            self.prices.setdefault(name, spec.start)
        # a restart continues with a different but still seed-determined sequence
        self.rng = random.Random(f"{seed}:{store.last_deal}:{store.get_meta('next_order', '1')}")
        self.budget = 0.0
        self.ticks = 0
        if not store.get_meta("rollover_day"):
            with store.tx():
                store.set_meta("rollover_day", str(clock.now() // 86400))

    # ---- prices and conversion ----------------------------------------------------------------
    def bid(self, name: str) -> float:
        spec = symbols.SYMBOLS[name]
        return round(self.prices[name] - spec.spread_points * spec.point / 2, spec.digits)

    def ask(self, name: str) -> float:
        spec = symbols.SYMBOLS[name]
        return round(self.prices[name] + spec.spread_points * spec.point / 2, spec.digits)

    def rate(self, src: str, dst: str) -> float:
        return symbols.rate(src, dst, self.prices)

    def margin_rate(self, name: str, currency: str) -> float:
        """Account currency per unit of the symbol's margin currency (metals and crypto via price)."""
        spec = symbols.SYMBOLS[name]
        if spec.margin_ccy in symbols.ACCOUNT_CURRENCIES:
            return self.rate(spec.margin_ccy, currency)
        return self.prices[name] * self.rate(spec.profit_ccy, currency)

    def currency(self, user: User) -> str:
        group = self.store.groups.get(user.group)
        return group.currency if group else "USD"

    def move_prices(self) -> None:
        for name in symbols.NAMES:
            spec = symbols.SYMBOLS[name]
            price = self.prices[name]
            pull = -0.0005 * math.log(price / spec.start)  # weak mean reversion keeps prices sane
            price *= math.exp(spec.sigma * self.rng.gauss(0.0, 1.0) + pull)
            self.prices[name] = round(price, spec.digits + 1)

    def shock(self, moves: dict[str, float]) -> None:
        """Move symbols by a percentage at once (tests: force a stop-out)."""
        for name, pct in moves.items():
            if name not in self.prices:
                raise ValueError(f"unknown symbol {name!r}")
            self.prices[name] = self.prices[name] * (1 + float(pct) / 100)

    # ---- positions and accounts ---------------------------------------------------------------
    def position_profit(self, pos: Position, currency: str) -> tuple[float, float]:
        """(current price, floating P/L in the account currency)."""
        spec = symbols.SYMBOLS[pos.symbol]
        if pos.action == 0:
            current = self.bid(pos.symbol)
            diff = current - pos.price_open
        else:
            current = self.ask(pos.symbol)
            diff = pos.price_open - current
        return current, diff * spec.contract * pos.lots * self.rate(spec.profit_ccy, currency)

    def margin_for(self, user: User, name: str, lots: float, currency: str) -> float:
        spec = symbols.SYMBOLS[name]
        leverage = max(1, min(user.leverage, spec.max_leverage))
        notional = lots * spec.contract * self.prices[name] * self.rate(spec.profit_ccy, currency)
        return notional / leverage

    def account(self, user: User) -> AccountCalc:
        currency = self.currency(user)
        profit = storage = margin = 0.0
        for pos in self.store.by_login.get(user.login, ()):
            profit += self.position_profit(pos, currency)[1]
            storage += pos.storage
            margin += self.margin_for(user, pos.symbol, pos.lots, currency)
        return AccountCalc(user.balance, user.credit, profit, storage, margin)

    # ---- trading ------------------------------------------------------------------------------
    def _commission(self, user: User, lots: float) -> float:
        group = self.store.groups.get(user.group)
        if not group or not group.commission:
            return 0.0
        return -round(group.commission / 2 * lots, group.currency_digits)

    def _deal(self, user: User, pos: Position, *, action: int, entry: int, reason: int, order: int,
              price: float, profit: float, storage: float, commission: float, comment: str,
              now_msc: int) -> int:  # fmt: skip
        spec = symbols.SYMBOLS[pos.symbol]
        currency = self.currency(user)
        cd = self.store.currency_digits(user)
        ticket = self.store.next_deal()
        rate_profit = self.rate(spec.profit_ccy, currency)
        text = deal_json(
            deal=ticket, login=user.login, time_msc=now_msc, action=action, entry=entry, reason=reason,
            currency_digits=cd, order=order, symbol=pos.symbol, digits=spec.digits, contract=spec.contract,
            price=price, volume=pos.volume, profit=profit, storage=storage, commission=commission,
            rate_profit=rate_profit, rate_margin=self.margin_rate(pos.symbol, currency), position_id=pos.position,
            comment=comment, tick_value=spec.contract * spec.point * rate_profit,
            price_position=pos.price_open, volume_closed=pos.volume if entry == 1 else 0,
        )  # fmt: skip
        self.store.add_deal(ticket, user.login, now_msc // 1000, pos.symbol, action, comment, text)
        return ticket

    def open(
        self, user: User, name: str, side: int, lots: float, reason: int = 0, comment: str = ""
    ) -> Position:
        now_msc = self.clock.now_msc()
        price = self.ask(name) if side == 0 else self.bid(name)
        order = self.store.next_order()
        pos = Position(order, user.login, name, side, round(lots * 10000), price, now_msc, now_msc,
                       0.0, self.margin_rate(name, self.currency(user)), comment, reason)  # fmt: skip
        commission = self._commission(user, lots)
        self._deal(user, pos, action=side, entry=0, reason=reason, order=order, price=price, profit=0.0,
                   storage=0.0, commission=commission, comment=comment, now_msc=now_msc)  # fmt: skip
        user.balance = round(user.balance + commission, self.store.currency_digits(user))
        self.store.save_user(user)
        self.store.save_position(pos)
        return pos

    def close(self, pos: Position, reason: int = 0, comment: str = "") -> int:
        user = self.store.users[pos.login]
        cd = self.store.currency_digits(user)
        price, profit = self.position_profit(pos, self.currency(user))
        profit = round(profit, cd)
        storage = round(pos.storage, cd)
        commission = self._commission(user, pos.lots)
        ticket = self._deal(user, pos, action=1 - pos.action, entry=1, reason=reason,
                            order=self.store.next_order(), price=price, profit=profit, storage=storage,
                            commission=commission, comment=comment, now_msc=self.clock.now_msc())  # fmt: skip
        user.balance = round(user.balance + profit + storage + commission, cd)
        self.store.delete_position(pos)
        self.store.save_user(user)
        return ticket

    def trade_once(self) -> None:
        """One simulated trader decision: usually one deal (an open or a close)."""
        eligible = self.store.eligible()
        if not eligible:
            return
        user = self.store.users[self.rng.choice(eligible)]
        mine = self.store.by_login.get(user.login, [])
        reason = self.rng.choice(REASONS)
        if mine and (len(mine) >= MAX_POSITIONS or self.rng.random() < 0.3 + 0.08 * len(mine)):
            self.close(self.rng.choice(mine), reason)
            return
        name = self.rng.choice(symbols.NAMES)
        side = self.rng.randrange(2)
        lots = self.rng.choice(LOTS)
        currency = self.currency(user)
        budget = self.account(user).free * 0.5
        while lots > 0.01 and self.margin_for(user, name, lots, currency) > budget:
            lots = max(0.01, math.floor(lots * 50) / 100)
        if self.margin_for(user, name, lots, currency) > budget:
            if mine:
                self.close(self.rng.choice(mine), reason)
            return
        self.open(user, name, side, lots, reason)

    def stop_out(self, login: int) -> int:
        """Close the largest losing positions while the margin level is at or below the group's
        stop-out level (reason 5 SO). Returns how many positions were closed."""
        user = self.store.users.get(login)
        group = self.store.groups.get(user.group) if user else None
        if user is None or group is None:
            return 0
        closed = 0
        currency = group.currency
        while self.store.by_login.get(login):
            calc = self.account(user)
            if calc.margin <= 0 or calc.level > group.margin_stopout:
                break
            worst = min(
                self.store.by_login[login], key=lambda p: (self.position_profit(p, currency)[1], p.position)
            )
            comment = f"[so {calc.level:.2f}%/{calc.equity:.2f}/{calc.margin:.2f}]"
            if closed == 0:
                user.so = {"SOTime": self.clock.now(), "SOLevel": calc.level, "SOEquity": calc.equity,
                           "SOMargin": calc.margin}  # fmt: skip
            self.close(worst, REASON_SO, comment[:32])
            closed += 1
        return closed

    def check_stop_outs(self) -> int:
        return sum(self.stop_out(login) for login in sorted(self.store.by_login))

    def rollover(self) -> None:
        """Charge (or pay) a day's swap on every open position, as a rollover does on MT5."""
        for pos in self.store.positions.values():
            user = self.store.users.get(pos.login)
            if user is None:
                continue
            spec = symbols.SYMBOLS[pos.symbol]
            per_lot = spec.swap_long if pos.action == 0 else spec.swap_short
            swap = per_lot * pos.lots * self.rate(spec.profit_ccy, self.currency(user))
            pos.storage = round(pos.storage + swap, self.store.currency_digits(user))
            pos.time_update_msc = self.clock.now_msc()
            self.store.save_position(pos)
        for user in self.store.users.values():  # the day's closing figures, as MT5 keeps them
            calc = self.account(user) if user.login in self.store.by_login else None
            equity = calc.equity if calc else user.balance + user.credit
            if user.data.get("BalancePrevDay") != user.balance or user.data.get("EquityPrevDay") != equity:
                user.data["BalancePrevDay"] = user.balance
                user.data["EquityPrevDay"] = round(equity, self.store.currency_digits(user))
                self.store.save_user(user)
        self.store.set_meta("rollover_day", str(self.clock.now() // 86400))

    def rollover_if_due(self) -> None:
        if self.clock.now() // 86400 > int(self.store.get_meta("rollover_day", "0")):
            self.rollover()

    def save_prices(self) -> None:
        self.store.set_meta("prices", json.dumps(self.prices))

    # ---- driving ------------------------------------------------------------------------------
    def step(self, count: int) -> None:
        """`count` engine steps at once: prices move, one trader decision, stop-outs checked."""
        with self.store.tx():
            for _ in range(count):
                self.move_prices()
                self.trade_once()
                self.check_stop_outs()
            self.save_prices()

    def tick(self, elapsed: float) -> None:
        rate = self.knobs.trade_rate
        if rate <= 0 and not self.store.positions:
            self.budget = 0.0
            return  # nothing would show the prices: keep the seeded sequence untouched
        with self.store.tx():
            self.move_prices()
            self.budget = min(self.budget + rate * elapsed, max(rate, 1.0) * 2)
            while self.budget >= 1:
                self.budget -= 1
                self.trade_once()
            self.ticks += 1
            if self.ticks % STOP_OUT_EVERY == 0:
                self.check_stop_outs()
            self.rollover_if_due()
            self.save_prices()

    async def run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            elapsed, last = min(now - last, 1.0), now
            if self.knobs.paused:
                continue
            try:
                self.tick(elapsed)
            except Exception:
                log.exception("engine tick failed")
