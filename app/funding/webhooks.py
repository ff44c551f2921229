"""Payment-provider webhooks: Standard Webhooks signatures, and an inbox that processes every
event exactly once by its id, however often and in whatever order it arrives.

Signatures (https://www.standardwebhooks.com): the sender puts `webhook-id`, `webhook-timestamp`
(Unix seconds) and `webhook-signature` on the request; the signature is
`v1,` + base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}")), several space-separated entries
when a secret is being rotated (any one matching is enough). The secret is `whsec_` + base64 of
its bytes. A timestamp more than five minutes from now either way is refused, so a captured
request cannot be replayed later; within those minutes a replay is caught by the inbox (same id).
Verify the body exactly as received: re-serialised JSON does not carry the same signature.

The inbox (`funding_webhook_events`): `record_event` stores a verified delivery once per
(provider, event id); `process` claims an unprocessed event with `FOR UPDATE SKIP LOCKED`, runs the
handler in the same transaction and marks the event processed in it, so the handler's effects and
the mark commit together or not at all. A concurrent duplicate finds the row locked and leaves it
to the worker holding it; a handler error rolls the handler back and leaves the event for a retry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from app.core import db

log = logging.getLogger(__name__)

TOLERANCE_SECONDS = 5 * 60
SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
MAX_ID_LENGTH = 200  # the inbox's event_id column
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

Reason = Literal[
    "missing_header", "bad_id", "bad_timestamp", "too_old", "too_new", "no_matching_signature", "bad_secret"
]


class WebhookRejected(Exception):
    """A delivery that must not be trusted; `reason` says which check refused it (for logs and
    tests; the sender gets no more than a 400 or 401)."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Verified:
    msg_id: str
    timestamp: int


def new_secret() -> str:
    """A fresh signing secret in the scheme's format (32 random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookRejected("bad_secret", f"a signing secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRejected("bad_secret", "the signing secret is not base64") from None
    if not 24 <= len(key) <= 64:
        raise WebhookRejected("bad_secret", "a signing secret holds 24 to 64 bytes")
    return key


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def _signature(key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The `webhook-signature` header value for one message (what a provider sends)."""
    return "v1," + _signature(_key(secret), msg_id, timestamp, _as_bytes(body))


def headers_for(secret: str, msg_id: str, body: bytes | str, timestamp: int | None = None) -> dict[str, str]:
    """All three headers of a signed delivery (for the simulator provider and tests)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes | str, now: float | None = None) -> Verified:
    """Check one delivery against `secret`; raise `WebhookRejected` unless it is authentic and fresh.

    `headers` may be any mapping (names are matched without regard to case); `body` is the raw
    request body."""
    key = _key(secret)
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (
        lowered.get(name, "").strip() for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    for name, value in (
        ("webhook-id", msg_id),
        ("webhook-timestamp", stamp),
        ("webhook-signature", signatures),
    ):
        if not value:
            raise WebhookRejected("missing_header", name)
    if len(msg_id) > MAX_ID_LENGTH or not msg_id.isprintable():
        raise WebhookRejected("bad_id", f"webhook-id must be at most {MAX_ID_LENGTH} printable characters")
    if not _TIMESTAMP.fullmatch(stamp):
        raise WebhookRejected("bad_timestamp", "webhook-timestamp is not a number of seconds")
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if current - timestamp > TOLERANCE_SECONDS:
        raise WebhookRejected("too_old", f"signed {int(current - timestamp)} s ago")
    if timestamp - current > TOLERANCE_SECONDS:
        raise WebhookRejected("too_new", f"signed {int(timestamp - current)} s in the future")
    expected = _signature(key, msg_id, stamp, _as_bytes(body)).encode()
    matched = False
    for entry in signatures.split(" "):
        version, _, value = entry.partition(",")
        if version == "v1":  # other versions (v1a: asymmetric) are not ours to check
            # every entry is compared, a match does not stop the loop: the time taken says nothing
            matched |= hmac.compare_digest(expected, value.encode("utf-8", "replace"))
    if not matched:
        raise WebhookRejected("no_matching_signature")
    return Verified(msg_id=msg_id, timestamp=timestamp)


# --- the inbox -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboxEvent:
    id: int
    provider: str
    event_id: str
    event_type: str
    payload: Any
    received_at: datetime
    attempts: int  # handler runs before this one


Outcome = Literal["processed", "already_processed", "busy", "failed", "unknown", "unverified"]
Handler = Callable[[InboxEvent], Awaitable[None]]

_COLUMNS = "id, provider, event_id, event_type, payload::text AS payload, received_at, attempts"


async def record_event(
    provider: str, event_id: str, event_type: str, payload: Any, *, signature_ok: bool = True
) -> bool:
    """Store one delivery; True if the inbox did not hold this (provider, event id) yet.

    A duplicate changes nothing. The one exception: a row kept for an unverified delivery
    (`signature_ok=False`, kept for the record, never processed) is taken over by the first verified
    delivery with its id, so a forger who guesses an id cannot stop the real event."""
    text = json.dumps(payload)
    row = await db.fetchrow(
        "INSERT INTO funding_webhook_events (provider, event_id, event_type, payload, received_at, signature_ok) "
        "VALUES ($1, $2, $3, $4::jsonb, now(), $5) ON CONFLICT (provider, event_id) DO NOTHING RETURNING id",
        provider,
        event_id,
        event_type,
        text,
        signature_ok,
    )
    if row is not None:
        return True
    if not signature_ok:
        return False
    row = await db.fetchrow(
        "UPDATE funding_webhook_events SET event_type = $3, payload = $4::jsonb, received_at = now(), "
        "signature_ok = true WHERE provider = $1 AND event_id = $2 AND NOT signature_ok RETURNING id",
        provider,
        event_id,
        event_type,
        text,
    )
    return row is not None


async def process(provider: str, event_id: str, handler: Handler) -> Outcome:
    """Run `handler` for one recorded event unless it has been processed already.

    The handler runs inside this function's transaction (`app.core.db.transaction()`, which the
    ledger and other services join): its writes and the processed mark commit together. If it
    raises, all of it rolls back and the event keeps `processed_at` empty with `attempts` + 1 and
    `last_error`, for the provider's retry or a sweep. `busy`: another worker holds the event now.
    Called outside any transaction: the failure is recorded after the rollback."""
    if db.DB.current_transaction.get() is not None:
        raise RuntimeError("webhooks.process() runs its own transaction; call it outside one")
    try:
        async with db.transaction():
            row = await db.fetchrow(
                f"SELECT {_COLUMNS} FROM funding_webhook_events WHERE provider = $1 AND event_id = $2 "
                "AND processed_at IS NULL AND signature_ok FOR UPDATE SKIP LOCKED",
                provider,
                event_id,
            )
            if row is None:
                return await _why_not_claimed(provider, event_id)
            event = InboxEvent(**{**row, "payload": json.loads(row["payload"])})
            await handler(event)
            await db.fetchrow(
                "UPDATE funding_webhook_events SET processed_at = now(), attempts = attempts + 1, "
                "last_error = '' WHERE id = $1",
                event.id,
            )
    except Exception as exc:
        log.warning("webhook %s/%s: handler failed", provider, event_id, exc_info=True)
        await db.fetchrow(
            "UPDATE funding_webhook_events SET attempts = attempts + 1, last_error = $3 "
            "WHERE provider = $1 AND event_id = $2 AND processed_at IS NULL",
            provider,
            event_id,
            f"{type(exc).__name__}: {exc}"[:2000],
        )
        return "failed"
    return "processed"


async def _why_not_claimed(provider: str, event_id: str) -> Outcome:
    row = await db.fetchrow(
        "SELECT processed_at IS NOT NULL AS done, signature_ok FROM funding_webhook_events "
        "WHERE provider = $1 AND event_id = $2",
        provider,
        event_id,
    )
    if row is None:
        return "unknown"
    if row["done"]:
        return "already_processed"
    return "busy" if row["signature_ok"] else "unverified"


async def pending(provider: str | None = None, limit: int = 100) -> list[tuple[str, str]]:
    """(provider, event id) of verified events still to process, oldest first: what a retry sweep
    hands to `process`."""
    rows = await db.fetch(
        "SELECT provider, event_id FROM funding_webhook_events WHERE processed_at IS NULL AND signature_ok "
        "AND ({}::text IS NULL OR provider = {}) ORDER BY received_at, id LIMIT {}",
        provider,
        provider,
        limit,
    )
    return [(r["provider"], r["event_id"]) for r in rows]
