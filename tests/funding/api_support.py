"""What the funding API tests share: API keys by scope, a client allowed to deposit and withdraw,
a payment method, and a caller that sends JSON with the key and an Idempotency-Key."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from app.core import db
from app.core.audit import Actor
from app.funding import payment_methods
from app.integrations import services as keys
from app.kyc import levels
from tests.personas import Persona, principal_of

SYSTEM = Actor.system("pytest")


async def api_key(*scopes: str, name: str = "Back office") -> str:
    return (await keys.create_api_key(name, list(scopes), SYSTEM, by_staff_id=None))[1]


async def at_level(client_id: int, level: int = 2) -> int:
    await levels.profile_of(client_id)
    await db.fetch("UPDATE kyc_profiles SET level = {} WHERE client = {}", level, client_id)
    return client_id


async def method(finance: Persona, **overrides: str) -> int:
    form = {
        "name": "Bank wire",
        "kind": "wire",
        "provider": "wire",
        "currencies": "usd, eur",
        "min_amount": "10",
        "max_amount": "50000.00",
        "broker_fee_percent": "0",
        "broker_fee_fixed": "0",
        "provider_fee_percent": "0",
        "provider_fee_fixed": "0",
        "withdrawals_allowed": "on",
        "countries": "",
        "kyc_level": "1",
        "active": "on",
        "sort_order": "10",
        **overrides,
    }
    p = principal_of(finance)
    return await payment_methods.create(p, form, p.actor("127.0.0.1", "pytest"))


async def call(
    client: httpx.AsyncClient,
    path: str,
    body: Any = None,
    *,
    key: str | None,
    idem: str | None = "",
    method: str = "POST",
) -> httpx.Response:
    """`idem=""` sends a fresh Idempotency-Key, `None` none at all."""
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["X-API-Key"] = key
    if idem is not None and method == "POST":
        headers["Idempotency-Key"] = idem or uuid.uuid4().hex
    content = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    return await client.request(method, "/api/v1/funding" + path, content=content, headers=headers)


async def count(table: str) -> int:
    row = await db.fetchrow(f"SELECT count(*) AS n FROM {table}")  # noqa: S608 (test helper, fixed names)
    assert row is not None
    return int(row["n"])
