"""Idempotent requests for the money-moving JSON API: a replay returns the first response, the
same key with another body is refused, and however often a request arrives money moves once.

Keyed by (scope, Idempotency-Key); scope is "apikey:<id>", so two integrators never see each
other's keys. The request's fingerprint is SHA-256 over its method, path and canonical JSON body.

    claim      INSERT … ON CONFLICT DO NOTHING (committed at once, so a concurrent twin sees it)
    run        the handler calls ONE service, which owns its transaction and takes the idempotency
               key `service_key(scope, key)`: a repeat returns the first business object
    store      the response (status + exact body bytes) on the claimed row

Why the response is not stored in the service's own transaction: services commit before they do
their after-commit work (provider calls, MT5 operations), and a request must not hold a database
transaction open across those. The gap is safe instead of closed:

- a crash between the service's commit and `store` leaves the claim in progress; once its lease
  (`LEASE`) has run out, the next replay takes the claim over and runs the handler again with the
  same key, so the service returns the SAME deposit/withdrawal/transfer, and the response is
  rebuilt from it (its status may have moved on: it reflects the object when first stored);
- two owners (a slow first request and a takeover) can only store once: `store` updates a row
  still in progress, and the loser returns what the winner stored;
- 4xx answers (validation, refusals) are stored, so a replay gets the same answer; 5xx answers
  and exceptions release the claim, so the client may retry with the same key.

Bodies that do not decode to the endpoint's schema are refused before a claim (nothing stored, the
key stays free), as are requests without a valid key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from app.core import db

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY = 200
LEASE = timedelta(seconds=30)  # an unfinished claim older than this was abandoned (a crash)
RETRY_AFTER = 1  # seconds a client should wait when its twin is still in progress


class IdempotencyError(Exception):
    """A request refused because of its key; `code` is the API's machine-readable error."""

    def __init__(self, code: str, status: int, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True)
class Reply:
    """A response as stored: its status, its exact JSON bytes and the headers worth replaying."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False


def check_key(raw: str | None) -> str:
    """The key from the header, or an IdempotencyError saying what is wrong with it."""
    if raw is None or raw == "":
        raise IdempotencyError(
            "idempotency_key_missing",
            400,
            f"Send a unique {HEADER} header (e.g. a UUID) with every request that moves money.",
        )
    if len(raw) > MAX_KEY or not raw.isprintable() or not raw.isascii():
        raise IdempotencyError(
            "idempotency_key_invalid", 400, f"The {HEADER} must be 1 to {MAX_KEY} printable ASCII characters."
        )
    return raw


def canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint(method: str, path: str, body: Any) -> str:
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical(body)}".encode()).hexdigest()


def service_key(scope: str, key: str) -> str:
    """The key handed to the service: short (services keep 200 characters, unique across all
    callers) and distinct per scope, so two API keys using the same Idempotency-Key never meet."""
    digest = hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()[:40]
    return f"api:{digest}"


async def run(
    scope: str, key: str, method: str, path: str, body: Any, handler: Callable[[], Awaitable[Reply]]
) -> Reply:
    """The first response to this (scope, key), running `handler` only if there is none yet."""
    fp = fingerprint(method, path, body)
    method_path = f"{method.upper()} {path}"[:300]
    for _ in range(3):  # a claim released by a failed twin between our two statements: try again
        claimed = await db.fetchrow(
            "INSERT INTO funding_idempotent_requests (scope, key, fingerprint, method_path, status_code, "
            "response, created_at) VALUES ($1, $2, $3, $4, NULL, '{}'::jsonb, now()) "
            "ON CONFLICT (scope, key) DO NOTHING RETURNING id",
            scope,
            key,
            fp,
            method_path,
        )
        if claimed is not None:
            return await _own(claimed["id"], handler)
        row = await db.fetchrow(
            "SELECT id, fingerprint, status_code, response, created_at < now() - $3::interval AS stale "
            "FROM funding_idempotent_requests WHERE scope = $1 AND key = $2",
            scope,
            key,
            LEASE,
        )
        if row is None:
            continue
        if row["fingerprint"] != fp:
            raise IdempotencyError(
                "idempotency_key_reused",
                422,
                f"This {HEADER} was already used for a different request; use a new key for a new request.",
            )
        if row["status_code"] is not None:
            return _stored(row)
        if row["stale"]:
            taken = await db.fetchrow(
                "UPDATE funding_idempotent_requests SET created_at = now() WHERE id = $1 "
                "AND status_code IS NULL AND created_at < now() - $2::interval RETURNING id",
                row["id"],
                LEASE,
            )
            if taken is not None:
                return await _own(row["id"], handler)
            continue  # someone else took it over or finished it: look again
        raise IdempotencyError(
            "request_in_progress",
            409,
            f"A request with this {HEADER} is still being processed; retry shortly to get its response.",
            retry_after=RETRY_AFTER,
        )
    raise IdempotencyError(
        "request_in_progress",
        409,
        f"A request with this {HEADER} is being retried; retry shortly to get its response.",
        retry_after=RETRY_AFTER,
    )


async def _own(claim_id: int, handler: Callable[[], Awaitable[Reply]]) -> Reply:
    try:
        reply = await handler()
    except BaseException:
        await _release(claim_id)
        raise
    if reply.status >= 500:
        await _release(claim_id)
        return reply
    stored = await db.fetchrow(
        "UPDATE funding_idempotent_requests SET status_code = $2, response = $3::jsonb "
        "WHERE id = $1 AND status_code IS NULL RETURNING id",
        claim_id,
        reply.status,
        json.dumps({"body": reply.body.decode(), "headers": reply.headers}),
    )
    if stored is not None:
        return reply
    first = await db.fetchrow(  # a takeover stored first: everyone gets that one
        "SELECT status_code, response FROM funding_idempotent_requests WHERE id = $1", claim_id
    )
    if first is None or first["status_code"] is None:
        return reply
    return _stored(first)


async def _release(claim_id: int) -> None:
    await db.fetchrow(
        "DELETE FROM funding_idempotent_requests WHERE id = $1 AND status_code IS NULL", claim_id
    )


def _stored(row: dict[str, Any]) -> Reply:
    response = row["response"]
    if isinstance(response, str):
        response = json.loads(response)
    return Reply(
        status=int(row["status_code"]),
        body=str(response.get("body", "")).encode(),
        headers={str(k): str(v) for k, v in dict(response.get("headers") or {}).items()},
        replayed=True,
    )
