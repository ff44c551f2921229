"""The platform object for a configured trading server, one per server per process.

Authenticated sessions are worth keeping (authentication costs two round trips, and MT5 limits
how often a manager may log in), so `platform_for` caches the platform built from a server row and
rebuilds it only when the row changes (`updated_at`): a new address or password in the console
takes effect on the next call, and the replaced sessions are closed. Callers ask `platform_for`
each time rather than holding on to a platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.core import db
from app.trading import credentials
from app.trading import platform as p
from app.trading.mt5.platform import MT5Platform

_SERVER_SQL = """
    SELECT id, name, platform, address, use_tls, verify_tls, manager_login, password_enc,
           timeout_seconds, pool_size, updated_at
    FROM trading_servers WHERE id = $1
"""


@dataclass
class _Entry:
    stamp: Any
    loop: asyncio.AbstractEventLoop
    platform: p.TradingPlatform


_cache: dict[int, _Entry] = {}
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
_closing: set[asyncio.Task[None]] = set()


async def platform_for(server_id: int) -> p.TradingPlatform:
    """The (cached) platform of trading server `server_id`.

    Raises `NotFound` for an unknown server, `PlatformError` for a platform this CRM does not speak,
    `AuthFailed` when the stored password cannot be decrypted.
    """
    row = await _server_row(server_id)
    loop = asyncio.get_running_loop()
    entry = _cache.get(server_id)
    if entry is not None and entry.stamp == row["updated_at"] and entry.loop is loop:
        return entry.platform
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    async with lock:
        entry = _cache.get(server_id)
        if entry is not None and entry.stamp == row["updated_at"] and entry.loop is loop:
            return entry.platform
        platform = build_platform(row)
        _cache[server_id] = _Entry(row["updated_at"], loop, platform)
    if entry is not None:
        _close_later(entry)
    return platform


async def close_all() -> None:
    """Close every cached platform (process shutdown, end of a test)."""
    entries = list(_cache.values())
    _cache.clear()
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(e.platform.close() for e in entries if e.loop is loop), return_exceptions=True)
    pending = [t for t in _closing if t.get_loop() is loop]
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


async def test_connection(
    server: int | str,
    login: int | None = None,
    password: str | None = None,
    tls: bool = True,
    verify_tls: bool = True,
    timeout_seconds: float = 10.0,
) -> str:
    """Log in afresh and read the server's clock: what the console's "test connection" button shows.

    `server` is a server id (the saved row is tested) or an address "host:port" with the other
    arguments (a form not saved yet). Raises `PlatformError` with a message for the operator.
    """
    if isinstance(server, int):
        row = await _server_row(server)
        platform = build_platform(row, pool_size=1)
        address, login = row["address"], row["manager_login"]
    else:
        if login is None or password is None:
            raise p.InvalidRequest("Give the manager login and password to test.")
        address = server.strip()
        platform = MT5Platform(
            address,
            int(login),
            password,
            tls=tls,
            verify_tls=verify_tls,
            timeout=timeout_seconds,
            pool_size=1,
        )
    try:
        server_time = await platform.server_time()
        version = getattr(platform, "version_access", "")
    finally:
        await platform.close()
    shown = datetime.fromtimestamp(server_time, UTC).strftime("%Y-%m-%d %H:%M:%S")
    offset = round((server_time - datetime.now(UTC).timestamp()) / 60) * 60
    clock = "same as UTC" if offset == 0 else f"UTC{offset / 3600:+g} h"
    build = f", access version {version}" if version else ""
    return f"Connected to {address} as manager {login}: server time {shown} ({clock}){build}."


def build_platform(row: dict[str, Any], *, pool_size: int | None = None) -> p.TradingPlatform:
    """A platform object for a `trading_servers` row (its manager password decrypted)."""
    kind = (row.get("platform") or "").lower()
    if kind != "mt5":
        raise p.PlatformError(
            f"Trading server {row['name']} is configured for platform {kind or '(none)'!r}, which this CRM "
            "does not speak yet (supported: mt5)."
        )
    try:
        password = credentials.decrypt(row["password_enc"], row["name"])
    except credentials.CredentialError as exc:
        raise p.AuthFailed(
            f"The manager password of trading server {row['name']} cannot be read: {exc}. Enter it again "
            "in the console."
        ) from None
    return MT5Platform(
        row["address"],
        int(row["manager_login"]),
        password,
        tls=bool(row["use_tls"]),
        verify_tls=bool(row["verify_tls"]),
        timeout=float(row.get("timeout_seconds") or 10),
        pool_size=pool_size or int(row.get("pool_size") or 2),
    )


async def _server_row(server_id: int) -> dict[str, Any]:
    row = await db.fetchrow(_SERVER_SQL, server_id)
    if row is None:
        raise p.NotFound(f"Trading server {server_id} does not exist.")
    return row


def _close_later(entry: _Entry) -> None:
    """Close a replaced platform without making the caller wait for its in-flight commands."""
    if entry.loop is not asyncio.get_running_loop():
        return  # its loop is gone (or elsewhere): nothing can be awaited from here

    async def close() -> None:
        with contextlib.suppress(Exception):
            await entry.platform.close()

    task = asyncio.create_task(close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)
