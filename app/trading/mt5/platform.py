"""`TradingPlatform` on MT5, through the Web API (`client.SessionPool`).

Batch reads (accounts, deals, positions) are cut into chunks of logins and sent concurrently over
the pool's sessions. Commands that change money or create users are sent once: when their outcome
is unknown the caller hears `OutcomeUnknown` and decides (balance operations look for their own
deal with `find_balance_operation` before sending again).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from typing import Any, TypeVar

from app.trading import platform as p
from app.trading.mt5 import records
from app.trading.mt5.client import PING_INTERVAL, Params, SessionPool, WebApiSession

T = TypeVar("T")

BATCH_LOGINS = 100  # logins per get_batch request: a URL of ~1 kB, answers of a few MB at most
PAGE_SIZE = 100  # deal/get_page returns at most 100 records
COMMENT_MAX = 32
PASSWORD_KINDS = ("main", "investor", "api")
BALANCE_TYPES = frozenset(int(t) for t in p.BalanceType)
DAY = 86400


class MT5Platform:
    """One MT5 server seen through a small pool of authenticated Web API sessions."""

    platform = "mt5"

    def __init__(
        self,
        address: str,
        login: int,
        password: str,
        *,
        tls: bool = True,
        verify_tls: bool = True,
        timeout: float = 10.0,
        pool_size: int = 2,
        ping_interval: float = PING_INTERVAL,
        batch_logins: int = BATCH_LOGINS,
    ) -> None:
        self.address = address
        self.login = login
        self.batch_logins = max(1, batch_logins)
        self.pool = SessionPool(
            [
                WebApiSession(
                    address,
                    login,
                    password,
                    tls=tls,
                    verify_tls=verify_tls,
                    timeout=timeout,
                    ping_interval=ping_interval,
                )
                for _ in range(max(1, pool_size))
            ]
        )

    async def _call(
        self, command: str, params: Params | None = None, body: Any = None, *, idempotent: bool = True
    ) -> dict[str, Any]:
        return await self.pool.call(command, params, body, idempotent=idempotent)

    # ------------------------------------------------------------------ users

    async def create_account(self, new: p.NewAccount) -> p.PlatformUser:
        params, body = records.user_add_request(new)
        data = await self._call("user/add", params, body, idempotent=False)
        answer = data.get("answer")
        if isinstance(answer, dict) and answer.get("Login"):
            return _parsed("user/add", records.user_from, answer)
        login = _parsed("user/add", int, data.get("login") or 0)
        if not login:
            raise p.OutcomeUnknown(
                "The trading server created the account but did not say its login.", command="user/add"
            )
        return await self.get_user(login)

    async def get_user(self, login: int) -> p.PlatformUser:
        data = await self._call("user/get", {"login": login})
        return _parsed("user/get", records.user_from, data.get("answer"))

    async def find_user(self, group: str, comment: str) -> p.PlatformUser | None:
        """`user/logins` of the group, then `user/get_batch` in chunks, matched on the comment."""
        data = await self._call("user/logins", {"group": group})
        answer = data.get("answer")
        if not isinstance(answer, list):
            raise p.BadResponse(
                "The trading server answered user/logins without a list.", command="user/logins"
            )
        logins = _parsed("user/logins", lambda rows: [int(x) for x in rows], answer)
        users = await self._batched("user/get_batch", logins, {}, records.user_from)
        return next((u for u in users if u.comment == comment), None)

    async def update_account(self, login: int, change: p.AccountUpdate) -> p.PlatformUser:
        body = records.user_update_body(change)
        if not body:
            return await self.get_user(login)
        # Setting fields to given values is idempotent: a resend after a lost answer changes nothing more.
        data = await self._call("user/update", {"login": login}, body)
        answer = data.get("answer")
        if isinstance(answer, dict) and answer.get("Login"):
            return _parsed("user/update", records.user_from, answer)
        return await self.get_user(login)

    async def change_leverage(self, login: int, leverage: int) -> None:
        if leverage < 1:
            raise p.InvalidRequest("Leverage must be at least 1.", command="user/update")
        await self.update_account(login, p.AccountUpdate(leverage=leverage))

    async def change_password(self, login: int, password: str, kind: str = p.PasswordKind.MAIN) -> None:
        """Setting a password twice to the same value is harmless, so this one is resent after a
        lost connection like a read."""
        await self._call("user/change_password", _password_params(login, password, kind))

    async def check_password(self, login: int, password: str, kind: str = p.PasswordKind.MAIN) -> bool:
        try:
            await self._call("user/check_password", _password_params(login, password, kind))
        except p.WeakPassword:  # 3006 here means "invalid account password"
            return False
        return True

    # ------------------------------------------------------------------ money

    async def balance_operation(self, login: int, type: p.BalanceType, amount: Decimal, comment: str) -> int:
        if int(type) not in BALANCE_TYPES:
            raise p.InvalidRequest(f"Unknown balance operation type {type}.", command="trade/balance")
        if not isinstance(amount, Decimal) or not amount.is_finite() or amount == 0:
            raise p.InvalidRequest("The amount must be a non-zero Decimal.", command="trade/balance")
        if len(comment) > COMMENT_MAX:
            raise p.InvalidRequest(
                f"MT5 comments hold at most {COMMENT_MAX} characters.", command="trade/balance"
            )
        params: Params = {
            "login": login,
            "type": int(type),
            "balance": format(amount, "f"),
            "comment": comment,
            "check_margin": 1 if amount < 0 else 0,
        }
        data = await self._call("trade/balance", params, idempotent=False)
        answer = data.get("answer")
        ticket = answer.get("Ticket") if isinstance(answer, dict) else None
        try:
            return int(ticket)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise p.OutcomeUnknown(
                "The trading server accepted the balance operation but sent no deal ticket.",
                command="trade/balance",
            ) from None

    async def find_balance_operation(self, login: int, comment: str, since: int) -> p.Deal | None:
        until = await self.server_time() + DAY
        window: Params = {"login": login, "from": since, "to": until}
        data = await self._call("deal/get_total", window)
        total = _total(data)
        for offset in range(0, total, PAGE_SIZE):
            page = await self._call("deal/get_page", {**window, "offset": offset, "total": PAGE_SIZE})
            for deal in _parsed("deal/get_page", _deals, data_list(page)):
                if 2 <= deal.action <= 6 and deal.comment == comment and deal.login == login:
                    return deal
        return None

    # ------------------------------------------------------------------ batches

    async def fetch_accounts(self, logins: list[int]) -> list[p.AccountState]:
        return await self._batched("user/account/get_batch", logins, {}, records.account_from)

    async def fetch_deals(self, logins: list[int], since: int, until: int) -> list[p.Deal]:
        return await self._batched("deal/get_batch", logins, {"from": since, "to": until}, records.deal_from)

    async def fetch_deal_rows(self, logins: list[int], since: int, until: int) -> list[tuple[str, ...]]:
        """Like `fetch_deals`, as string tuples in `DEAL_ROW_COLUMNS` order (numbers exactly as the
        server sent them), for a bulk COPY without building a `Decimal` per field."""
        return await self._batched("deal/get_batch", logins, {"from": since, "to": until}, records.deal_row)

    async def fetch_positions(self, logins: list[int]) -> list[p.Position]:
        return await self._batched("position/get_batch", logins, {}, records.position_from)

    async def _batched(
        self, command: str, logins: Iterable[int], extra: Params, parse: Callable[[dict[str, Any]], T]
    ) -> list[T]:
        """Every record for `logins`, in chunks sent concurrently over the pool. Each chunk is parsed
        as soon as it arrives, so the raw JSON of only a few chunks is alive at a time."""
        unique = list(dict.fromkeys(int(x) for x in logins))
        chunks = [unique[i : i + self.batch_logins] for i in range(0, len(unique), self.batch_logins)]

        async def one(chunk: list[int]) -> list[T]:
            try:
                data = await self._call(command, {"login": ",".join(map(str, chunk)), **extra})
            except p.NotFound:  # none of these logins has a record (or exists)
                return []
            return _parsed(command, lambda rows: list(map(parse, rows)), data_list(data))

        parts = await _gather_limited([functools.partial(one, c) for c in chunks], len(self.pool.sessions))
        out: list[T] = []
        for part in parts:
            out.extend(part)
        return out

    # ------------------------------------------------------------------ server

    async def list_groups(self) -> list[p.Group]:
        """`group/get?mask=*`; a server that does not take a mask is walked with group/total + group/next."""
        try:
            rows = data_list(await self._call("group/get", {"mask": "*"}))
        except p.InvalidRequest:
            total = _total(await self._call("group/total"), "group/total")
            rows = []
            for index in range(total):
                rows.extend(data_list(await self._call("group/next", {"index": index})))
        return _parsed("group/get", lambda rs: [records.group_from(r) for r in rs], rows)

    async def server_time(self) -> int:
        data = await self._call("time/server")
        return _parsed("time/server", records.server_time_from, data.get("answer"))

    async def close(self) -> None:
        await self.pool.close()

    @property
    def version_access(self) -> str:
        return next((s.version_access for s in self.pool.sessions if s.version_access), "")


def data_list(data: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        rows = records.as_list(data.get("answer"))
    except ValueError as exc:
        raise p.BadResponse(f"The trading server sent an unexpected answer: {exc}.") from None
    return rows


def _deals(rows: list[dict[str, Any]]) -> list[p.Deal]:
    return list(map(records.deal_from, rows))


def _total(data: dict[str, Any], command: str = "deal/get_total") -> int:
    answer = data.get("answer")
    value = answer.get("Total") if isinstance(answer, dict) else data.get("total", answer)
    return _parsed(command, int, value)


def _password_params(login: int, password: str, kind: str) -> Params:
    if kind not in PASSWORD_KINDS:
        raise p.InvalidRequest(f"Unknown password kind {kind!r}.", command="user/change_password")
    return {"login": login, "type": kind, "password": password}


def _parsed(command: str, parse: Callable[..., T], value: Any) -> T:
    """`parse(value)`, a parse failure becoming `BadResponse` (the server broke the record format)."""
    try:
        return parse(value)
    except (KeyError, ValueError, TypeError, AttributeError, ArithmeticError) as exc:
        raise p.BadResponse(
            f"The trading server's answer to {command} is not in MT5's record format ({type(exc).__name__}: {exc}).",
            command=command,
        ) from None


async def _gather_limited(factories: list[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the coroutines `limit` at a time, results in order; the first error cancels the rest."""
    if len(factories) <= 1:
        return [await f() for f in factories]
    results: list[Any] = [None] * len(factories)
    queue = iter(enumerate(factories))

    async def worker() -> None:
        for i, factory in queue:
            results[i] = await factory()

    tasks = [asyncio.create_task(worker()) for _ in range(min(limit, len(factories)))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return results
