"""Single-use, expiring tokens for password reset and e-mail verification (stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from app.core.tables import OneTimeToken


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue(purpose: str, user_kind: str, user_id: int, ttl: timedelta) -> str:
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    await OneTimeToken.insert(
        OneTimeToken(
            purpose=purpose,
            user_kind=user_kind,
            user_id=user_id,
            token_hash=_hash(token),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return token


async def peek(purpose: str, token: str) -> dict | None:
    """The token's row if it is valid now, without using it (to render the form)."""
    if not token or len(token) > 100:
        return None
    return (
        await OneTimeToken.select()
        .where(
            (OneTimeToken.token_hash == _hash(token))
            & (OneTimeToken.purpose == purpose)
            & OneTimeToken.used_at.is_null()
            & (OneTimeToken.expires_at > datetime.now(UTC))
        )
        .first()
    )


async def consume(purpose: str, token: str) -> dict | None:
    """Use the token once: a conditional UPDATE, so two concurrent uses cannot both succeed."""
    if not token or len(token) > 100:
        return None
    rows = (
        await OneTimeToken.update({OneTimeToken.used_at: datetime.now(UTC)})
        .where(
            (OneTimeToken.token_hash == _hash(token))
            & (OneTimeToken.purpose == purpose)
            & OneTimeToken.used_at.is_null()
            & (OneTimeToken.expires_at > datetime.now(UTC))
        )
        .returning(OneTimeToken.user_kind, OneTimeToken.user_id)
    )
    return rows[0] if rows else None
