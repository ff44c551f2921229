"""The simulator's state in one SQLite file (WAL): groups, users with their money, open
positions, the deal history and the ticket counters. Users, groups and positions are also kept in
memory (the engine reads them on every tick); deals are only on disk, each stored with its MT5
JSON text so a history answer is a join of stored strings."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.trading.mt5.sim.records import Group, Position, User

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (name TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    login INTEGER PRIMARY KEY, grp TEXT NOT NULL, balance REAL NOT NULL, credit REAL NOT NULL,
    pass_main TEXT NOT NULL, pass_investor TEXT NOT NULL, pass_api TEXT NOT NULL,
    data TEXT NOT NULL, so TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    position INTEGER PRIMARY KEY, login INTEGER NOT NULL, symbol TEXT NOT NULL, action INTEGER NOT NULL,
    volume INTEGER NOT NULL, price_open REAL NOT NULL, time_create_msc INTEGER NOT NULL,
    time_update_msc INTEGER NOT NULL, storage REAL NOT NULL, rate_margin REAL NOT NULL,
    comment TEXT NOT NULL, reason INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deals (
    deal INTEGER PRIMARY KEY, login INTEGER NOT NULL, time INTEGER NOT NULL, symbol TEXT NOT NULL,
    action INTEGER NOT NULL, comment TEXT NOT NULL, json TEXT NOT NULL
);
"""
INDEXES = """
CREATE INDEX IF NOT EXISTS deals_login_time ON deals (login, time);
CREATE INDEX IF NOT EXISTS deals_time ON deals (time);
"""

DEFAULT_GROUPS = [
    Group("demo\\forex-usd", "USD", 2, 500, 100.0, 50.0, 0.0),
    Group("real\\standard-usd", "USD", 2, 500, 100.0, 50.0, 7.0),
    Group("real\\pro-eur", "EUR", 2, 200, 100.0, 50.0, 5.0),
]
FIRST_LOGIN = 100001


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process
        self.db.executescript(SCHEMA + INDEXES)
        self._depth = 0
        self.groups: dict[str, Group] = {}
        self.users: dict[int, User] = {}
        self.positions: dict[int, Position] = {}
        self.by_login: dict[int, list[Position]] = {}
        self._eligible: set[int] = set()
        self._eligible_sorted: list[int] | None = None
        self.meta: dict[str, str] = {}
        self.deal_total = 0
        self.last_deal = 0
        self._load()
        if not self.groups:
            with self.tx():
                for group in DEFAULT_GROUPS:
                    self.save_group(group)

    # ---- transactions -------------------------------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[None]:
        """One SQLite transaction; nested uses join the outer one. Committed on exit."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            self._load()  # memory follows the file
            raise
        self._depth = 0
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    # ---- loading ------------------------------------------------------------------------------
    def reload(self) -> None:
        self._load()

    def _load(self) -> None:
        self.meta = dict(self.db.execute("SELECT key, value FROM meta"))
        count, last = self.db.execute("SELECT count(*), coalesce(max(deal), 0) FROM deals").fetchone()
        self.deal_total, self.last_deal = int(count), int(last)
        self.groups = {}
        for name, data in self.db.execute("SELECT name, data FROM groups"):
            self.groups[name] = Group(**json.loads(data))
        self.users = {}
        self._eligible = set()
        self._eligible_sorted = None
        rows = self.db.execute(
            "SELECT login, grp, balance, credit, pass_main, pass_investor, pass_api, data, so FROM users"
        )
        for login, grp, balance, credit, pm, pi, pa, data, so in rows:
            user = User(login, grp, json.loads(data), balance, credit, pm, pi, pa, json.loads(so))
            self.users[login] = user
            if user.can_trade():
                self._eligible.add(login)
        self.positions = {}
        self.by_login = {}
        for row in self.db.execute("SELECT * FROM positions ORDER BY position"):
            self._remember(Position(*row))

    def _remember(self, pos: Position) -> None:
        if pos.position not in self.positions:
            self.by_login.setdefault(pos.login, []).append(pos)
        self.positions[pos.position] = pos

    # ---- meta and counters --------------------------------------------------------------------
    def get_meta(self, key: str, default: str = "") -> str:
        return self.meta.get(key, default)

    def set_meta(self, key: str, value: str) -> None:
        self.meta[key] = value
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _counter(self, key: str, first: int) -> int:
        value = int(self.meta.get(key, first))
        self.set_meta(key, str(value + 1))
        return value

    def next_deal(self) -> int:
        return self._counter("next_deal", 1)

    def next_order(self) -> int:
        return self._counter("next_order", 1)

    def next_login(self) -> int:
        login = int(self.meta.get("next_login", FIRST_LOGIN))
        while login in self.users:
            login += 1
        self.set_meta("next_login", str(login + 1))
        return login

    # ---- groups and users ---------------------------------------------------------------------
    def save_group(self, group: Group) -> None:
        self.groups[group.name] = group
        self.db.execute(
            "INSERT OR REPLACE INTO groups (name, data) VALUES (?, ?)",
            (group.name, json.dumps(group.__dict__)),
        )

    def save_user(self, user: User) -> None:
        self.users[user.login] = user
        self.db.execute(
            "INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                user.login, user.group, user.balance, user.credit, user.pass_main, user.pass_investor,
                user.pass_api, json.dumps(user.data), json.dumps(user.so),
            ),
        )  # fmt: skip
        if user.can_trade() != (user.login in self._eligible):
            (self._eligible.add if user.can_trade() else self._eligible.discard)(user.login)
            self._eligible_sorted = None

    def delete_user(self, login: int) -> None:
        self.users.pop(login, None)
        self.db.execute("DELETE FROM users WHERE login = ?", (login,))
        if login in self._eligible:
            self._eligible.discard(login)
            self._eligible_sorted = None

    def eligible(self) -> list[int]:
        """Logins the simulated traders may trade on, in login order."""
        if self._eligible_sorted is None:
            self._eligible_sorted = sorted(self._eligible)
        return self._eligible_sorted

    def currency_digits(self, user: User) -> int:
        group = self.groups.get(user.group)
        return group.currency_digits if group else 2

    # ---- positions ----------------------------------------------------------------------------
    def save_position(self, pos: Position) -> None:
        self._remember(pos)
        self.db.execute(
            "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                pos.position, pos.login, pos.symbol, pos.action, pos.volume, pos.price_open,
                pos.time_create_msc, pos.time_update_msc, pos.storage, pos.rate_margin, pos.comment,
                pos.reason,
            ),
        )  # fmt: skip

    def delete_position(self, pos: Position) -> None:
        self.positions.pop(pos.position, None)
        mine = self.by_login.get(pos.login, [])
        if pos in mine:
            mine.remove(pos)
        if not mine:
            self.by_login.pop(pos.login, None)
        self.db.execute("DELETE FROM positions WHERE position = ?", (pos.position,))

    # ---- deals --------------------------------------------------------------------------------
    def add_deal(
        self, ticket: int, login: int, time: int, symbol: str, action: int, comment: str, text: str
    ) -> None:
        self.db.execute(
            "INSERT INTO deals (deal, login, time, symbol, action, comment, json) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ticket, login, time, symbol, action, comment, text),
        )
        self.deal_total += 1
        self.last_deal = max(self.last_deal, ticket)

    def deal(self, ticket: int) -> str | None:
        row = self.db.execute("SELECT json FROM deals WHERE deal = ?", (ticket,)).fetchone()
        return row[0] if row else None

    def _deal_filter(
        self, logins: list[int] | None, since: int | None, until: int | None, symbol: str | None
    ) -> tuple[str, list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        if logins is not None:
            where.append("login IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(logins))
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        if until is not None:
            where.append("time <= ?")
            args.append(until)
        if symbol:
            where.append("symbol = ?")
            args.append(symbol)
        return (" WHERE " + " AND ".join(where)) if where else "", args

    def deal_count(
        self, logins: list[int] | None, since: int | None, until: int | None, symbol: str | None = None
    ) -> int:
        sql, args = self._deal_filter(logins, since, until, symbol)
        return int(self.db.execute("SELECT count(*) FROM deals" + sql, args).fetchone()[0])

    def deal_texts(
        self,
        logins: list[int] | None,
        since: int | None,
        until: int | None,
        symbol: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[str]:
        sql, args = self._deal_filter(logins, since, until, symbol)
        if limit is None:
            sql = "SELECT json FROM deals" + sql + " ORDER BY deal"
        else:  # page over tickets only (an index covers them), then fetch the page's texts
            sql = f"SELECT json FROM deals WHERE deal IN (SELECT deal FROM deals{sql} ORDER BY deal LIMIT ? OFFSET ?)"
            sql += " ORDER BY deal"
            args += [limit, offset]
        return [row[0] for row in self.db.execute(sql, args)]

    def has_deals(self, login: int) -> bool:
        return self.db.execute("SELECT 1 FROM deals WHERE login = ? LIMIT 1", (login,)).fetchone() is not None
