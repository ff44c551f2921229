"""Server-side sessions in PostgreSQL.

Litestar ships no PostgreSQL session store, and its generic session middleware keeps the
session id from the cookie (no rotation) and cannot revoke "every session of this user", so the
store is ours: the cookie carries a random key, the table its SHA-256 with the user it belongs
to, an idle deadline that slides with use and an absolute one that does not.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core.db import DB
from app.core.tables import WebSession

COOKIE = "fxsid"
_TOUCH_EVERY = timedelta(seconds=60)


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
SELECT s.id, s.user_kind, s.user_id, s.mfa_passed, s.last_seen_at, s.idle_expires_at,
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
    async with DB.pool.acquire() as conn:
        row = await conn.fetchrow(_LOOKUP, _hash(key))
        if row is None:
            return None
        now = datetime.now(UTC)
        if now - row["last_seen_at"] > _TOUCH_EVERY:
            await conn.execute(
                "UPDATE web_sessions SET last_seen_at = $2, idle_expires_at = LEAST($3, absolute_expires_at) WHERE id = $1",
                row["id"],
                now,
                now + idle,
            )
    return dict(row)


async def is_alive(session_id: int) -> bool:
    rows = await WebSession.select(WebSession.id).where(
        (WebSession.id == session_id)
        & (WebSession.idle_expires_at > datetime.now(UTC))
        & (WebSession.absolute_expires_at > datetime.now(UTC))
    )
    return bool(rows)


async def mark_mfa_passed(session_id: int) -> None:
    await WebSession.update({WebSession.mfa_passed: True}).where(WebSession.id == session_id)


async def revoke(session_id: int) -> None:
    await WebSession.delete().where(WebSession.id == session_id)


async def revoke_all(user_kind: str, user_id: int, except_session: int | None = None) -> list[int]:
    """End every session of a user (password change, deactivation); returns the ended ids."""
    where = (WebSession.user_kind == user_kind) & (WebSession.user_id == user_id)
    if except_session is not None:
        where = where & (WebSession.id != except_session)
    rows = await WebSession.select(WebSession.id).where(where)
    await WebSession.delete().where(where)
    return [r["id"] for r in rows]


async def purge_expired() -> int:
    now = datetime.now(UTC)
    rows = await WebSession.delete().where(
        (WebSession.idle_expires_at < now) | (WebSession.absolute_expires_at < now)
    ).returning(WebSession.id)
    return len(rows)
