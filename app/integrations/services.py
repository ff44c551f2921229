"""API keys: created by admins (the key is shown once, only its hash is kept), scoped, revocable,
and rate-limited per minute with one upsert per request."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.core import audit
from app.core.audit import Actor
from app.core.db import fetch, transaction
from app.core.errors import FormErrors, NotFound
from app.integrations.tables import SCOPES, ApiKey
from app.settings import get_settings

KEY_PREFIX = "fx_"


class ApiKeyError(Exception):
    """Why a request's key was refused; `code` is the machine-readable error of the API."""

    def __init__(self, code: str, status: int, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True)
class AuthenticatedKey:
    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]

    def actor(self, ip: str | None = None, user_agent: str | None = None) -> Actor:
        return Actor(
            kind="api_key",
            id=str(self.id),
            label=f"API key {self.prefix}… ({self.name})"[:255],
            ip=ip,
            user_agent=user_agent,
        )


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def list_api_keys() -> list[dict[str, Any]]:
    return await ApiKey.select(
        ApiKey.id,
        ApiKey.name,
        ApiKey.prefix,
        ApiKey.scopes,
        ApiKey.created_at,
        ApiKey.revoked_at,
        ApiKey.last_used_at,
        ApiKey.created_by.name.as_alias("created_by_name"),
    ).order_by(ApiKey.id, ascending=False)


async def create_api_key(
    name: str, scopes: list[str], actor: Actor, *, by_staff_id: int | None
) -> tuple[int, str]:
    """Returns (id, the full key). The key is never stored or audited: this is its only appearance."""
    name = name.strip()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Give the key a name (e.g. the website that will use it)."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    wanted = sorted(set(scopes))
    if not wanted:
        errors["scopes"] = "Choose at least one permission."
    elif any(s not in SCOPES for s in wanted):
        errors["scopes"] = "Unknown permission."
    if errors:
        raise FormErrors(errors)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with transaction():
        row = ApiKey(
            name=name,
            prefix=key[:8],
            key_hash=hash_key(key),
            scopes=wanted,
            created_by=by_staff_id,
            created_at=datetime.now(UTC),
        )
        await row.save()
        await audit.record(
            actor,
            "api_key.created",
            "api_key",
            row.id,
            after={"name": name, "prefix": key[:8], "scopes": wanted},
        )
    return int(row.id), key


async def revoke_api_key(key_id: int, actor: Actor) -> None:
    async with transaction():
        row = (
            await ApiKey.select(ApiKey.id, ApiKey.prefix, ApiKey.revoked_at)
            .where(ApiKey.id == key_id)
            .first()
        )
        if row is None:
            raise NotFound("API key")
        if row["revoked_at"] is not None:
            return
        now = datetime.now(UTC)
        await ApiKey.update({ApiKey.revoked_at: now}).where(ApiKey.id == key_id)
        await audit.record(actor, "api_key.revoked", "api_key", key_id, after={"prefix": row["prefix"]})


async def authenticate(key: str | None, scope: str) -> AuthenticatedKey:
    """The key's row if it may be used for `scope` now, else an ApiKeyError saying why.

    Each accepted call counts against the key's per-minute limit (a refused one does not).
    """
    if not key:
        raise ApiKeyError("missing_api_key", 401, "Send your API key in the X-API-Key header.")
    row = (
        await ApiKey.select(ApiKey.id, ApiKey.name, ApiKey.prefix, ApiKey.scopes, ApiKey.revoked_at)
        .where(ApiKey.key_hash == hash_key(key))
        .first()
    )
    if row is None:
        raise ApiKeyError("invalid_api_key", 401, "This API key is not valid.")
    if row["revoked_at"] is not None:
        raise ApiKeyError("revoked_api_key", 401, "This API key has been revoked.")
    if scope not in row["scopes"]:
        raise ApiKeyError("insufficient_scope", 403, f"This API key may not be used for {scope}.")
    limit = get_settings().api_rate_limit_per_minute
    counted = await fetch(
        "INSERT INTO api_key_windows (key, window_start, hits) VALUES ({}, date_trunc('minute', now()), 1) "
        "ON CONFLICT (key, window_start) DO UPDATE SET hits = api_key_windows.hits + 1 "
        "RETURNING hits, ceil(extract(epoch FROM window_start + interval '1 minute' - clock_timestamp()))::int "
        "AS retry_after",
        row["id"],
    )
    hits, retry_after = counted[0]["hits"], counted[0]["retry_after"]
    if hits == 1:  # a new minute: forget the old ones
        await fetch(
            "DELETE FROM api_key_windows WHERE key = {} AND window_start < date_trunc('minute', now())",
            row["id"],
        )
    if hits > limit:
        raise ApiKeyError(
            "rate_limited",
            429,
            f"More than {limit} requests in a minute with this key; try again shortly.",
            retry_after=max(1, retry_after),
        )
    await ApiKey.update({ApiKey.last_used_at: datetime.now(UTC)}).where(ApiKey.id == row["id"])
    return AuthenticatedKey(id=row["id"], name=row["name"], prefix=row["prefix"], scopes=tuple(row["scopes"]))
