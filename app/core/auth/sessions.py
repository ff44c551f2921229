"""Server-side sessions in PostgreSQL.

Litestar ships no PostgreSQL session store, and its generic session middleware keeps the
session id from the cookie (no rotation) and cannot revoke "every session of this user", so the
store is ours: the cookie carries a random key, the table its SHA-256 with the user it belongs
to, an idle deadline that slides with use and an absolute one that does not.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core import db, live
from app.core.db import DB
from app.core.tables import WebSession

COOKIE = "fxsid"
_TOUCH_EVERY = timedelta(seconds=60)

# A few seconds of in-process memory of recent lookups: most requests then cost no database
# round trip for the session. Every change that could matter (logout, revocation, role, 2FA,
# deactivation, partner status) forgets the entry here at once and in the other processes through
# the live channel; if a notification were lost, nothing stays stale longer than this.
CACHE_SECONDS = 5.0
_CACHE_MAX = 20_000
_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_inflight: dict[str, asyncio.Future[dict[str, Any] | None]] = {}
_generation = 0
SYSTEM_TOPIC = "auth:sessions"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create(
    user_kind: str,
    user_id: int,
    *,
    idle: timedelta,
    absolute: timedelta,
    mfa_passed: bool,
    ip: str | None,
    user_agent: str | None,
) -> tuple[str, int]:
    """A brand-new session (a login always gets a new key: rotation). Returns (cookie key, id)."""
    key = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    row = WebSession(
        key_hash=_hash(key),
        user_kind=user_kind,
        user_id=user_id,
        created_at=now,
        last_seen_at=now,
        idle_expires_at=now + idle,
        absolute_expires_at=now + absolute,
        mfa_passed=mfa_passed,
        ip=ip,
        user_agent=(user_agent or "")[:400],
    )
    await row.save()
    return key, int(row.id)


_LOOKUP = """
SELECT s.id, s.user_kind, s.user_id, s.mfa_passed, s.last_seen_at, s.idle_expires_at, s.absolute_expires_at,
       st.email AS st_email, st.name AS st_name, st.roles AS st_roles, st.is_active AS st_active,
       st.totp_enabled AS st_totp,
       c.email AS c_email, c.first_name, c.last_name, c.is_active AS c_active, c.totp_enabled AS c_totp,
       c.email_verified_at, p.id AS partner_id, p.status AS partner_status
FROM web_sessions s
LEFT JOIN staff_users st ON s.user_kind = 'staff' AND st.id = s.user_id
LEFT JOIN clients c ON s.user_kind = 'client' AND c.id = s.user_id
LEFT JOIN partners p ON p.client = c.id
WHERE s.key_hash = $1 AND s.idle_expires_at > now() AND s.absolute_expires_at > now()
"""


async def lookup(key: str, idle: timedelta) -> dict[str, Any] | None:
    """The live session for a cookie key, with its user; slides the idle deadline (at most once a minute)."""
    if not key or len(key) > 100 or DB.pool is None:
        return None
    key_hash = _hash(key)
    hit = _cache.get(key_hash)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        cached = hit[1]
        now = datetime.now(UTC)
        if now < cached["idle_expires_at"] and now < cached["absolute_expires_at"]:
            return cached
        _cache.pop(key_hash, None)
        return None
    pending = _inflight.get(key_hash)
    if pending is not None:  # the same session already being looked up: share that answer
        return await asyncio.shield(pending)
    future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
    _inflight[key_hash] = future
    try:
        row = await _fetch(key_hash, idle)
    except asyncio.CancelledError:
        future.cancel()
        raise
    except Exception as exc:
        future.set_exception(exc)
        future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
        raise
    else:
        future.set_result(row)
    finally:
        _inflight.pop(key_hash, None)
    return row


async def _fetch(key_hash: str, idle: timedelta) -> dict[str, Any] | None:
    assert DB.pool is not None
    generation = _generation
    async with DB.pool.acquire() as conn:
        record = await conn.fetchrow(_LOOKUP, key_hash)
        if record is None:
            _cache.pop(key_hash, None)
            return None
        row = dict(record)
        now = datetime.now(UTC)
        if now - row["last_seen_at"] > _TOUCH_EVERY:
            row["last_seen_at"] = now
            row["idle_expires_at"] = min(now + idle, row["absolute_expires_at"])
            await conn.execute(
                "UPDATE web_sessions SET last_seen_at = $2, idle_expires_at = $3 WHERE id = $1",
                row["id"],
                now,
                row["idle_expires_at"],
            )
    if generation != _generation:
        return row  # something was forgotten while we read: answer this request, remember nothing
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[key_hash] = (time.monotonic(), row)
    return row


def forget(
    *, session_ids: Iterable[int] = (), user_kind: str | None = None, user_id: int | None = None
) -> None:
    """Drop cached lookups for these sessions and/or every session of this user (this process)."""
    global _generation
    _generation += 1
    ids = set(session_ids)
    for key_hash, (_, row) in list(_cache.items()):
        if row["id"] in ids or (
            user_kind is not None and row["user_kind"] == user_kind and row["user_id"] == user_id
        ):
            _cache.pop(key_hash, None)


def forget_all() -> None:
    global _generation
    _generation += 1
    _cache.clear()


async def changed(
    *, session_ids: Iterable[int] = (), user_kind: str | None = None, user_id: int | None = None
) -> None:
    """Inside the transaction making the change: every process forgets what it cached about it."""
    ids = sorted(set(session_ids))
    forget(session_ids=ids, user_kind=user_kind, user_id=user_id)

    async def again() -> None:  # a request between the change and its commit may have re-cached the old state
        forget(session_ids=ids, user_kind=user_kind, user_id=user_id)

    db.after_commit(again)
    await live.publish(
        SYSTEM_TOPIC, "sessions.changed", session_ids=ids, user_kind=user_kind, user_id=user_id
    )


def _on_system_event(event: live.Event) -> None:
    ids = event.ids
    forget(
        session_ids=ids.get("session_ids") or (), user_kind=ids.get("user_kind"), user_id=ids.get("user_id")
    )


live.hub.on_system_topic(SYSTEM_TOPIC, _on_system_event)


async def is_alive(session_id: int) -> bool:
    rows = await WebSession.select(WebSession.id).where(
        (WebSession.id == session_id)
        & (WebSession.idle_expires_at > datetime.now(UTC))
        & (WebSession.absolute_expires_at > datetime.now(UTC))
    )
    return bool(rows)


async def mark_mfa_passed(session_id: int) -> None:
    await WebSession.update({WebSession.mfa_passed: True}).where(WebSession.id == session_id)
    await changed(session_ids=[session_id])


async def revoke(session_id: int) -> None:
    await WebSession.delete().where(WebSession.id == session_id)
    await changed(session_ids=[session_id])


async def revoke_all(user_kind: str, user_id: int, except_session: int | None = None) -> list[int]:
    """End every session of a user (password change, deactivation); returns the ended ids."""
    where = (WebSession.user_kind == user_kind) & (WebSession.user_id == user_id)
    if except_session is not None:
        where = where & (WebSession.id != except_session)
    rows = await WebSession.select(WebSession.id).where(where)
    await WebSession.delete().where(where)
    await changed(
        session_ids=[r["id"] for r in rows],
        user_kind=None if except_session else user_kind,
        user_id=None if except_session else user_id,
    )
    return [r["id"] for r in rows]


async def purge_expired() -> int:
    now = datetime.now(UTC)
    rows = (
        await WebSession.delete()
        .where((WebSession.idle_expires_at < now) | (WebSession.absolute_expires_at < now))
        .returning(WebSession.id)
    )
    return len(rows)
