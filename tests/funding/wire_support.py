"""What the wire, statement and crypto tests share: the payment methods, a client with the right
to deposit, a wire deposit waiting for its money, and files to upload."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

from PIL import Image

from app.core import db
from app.core.audit import Actor
from app.funding import wire
from tests.funding.deposit_support import card_method, set_level
from tests.personas import Persona, principal_of

CLIENT = Actor(kind="client", id="1", label="client")
FINANCE = Actor(kind="staff", id="9", label="finance@staff.test")


async def wire_method(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Bank wire",
        "kind": "wire",
        "provider": "wire",
        "currencies": "EUR,USD",
        "min_amount": Decimal("10"),
        "max_amount": Decimal("100000"),
        "broker_fee_percent": Decimal("0"),
        "provider_fee_percent": Decimal("0"),
        "provider_fee_fixed": Decimal("0"),
        "withdrawals_allowed": True,
        "kyc_level": 1,
    }
    values.update(overrides)
    return await card_method(**values)


async def crypto_method(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Crypto",
        "kind": "crypto",
        "provider": "simchain",
        "currencies": "BTC,USDT",
        "min_amount": Decimal("0.0001"),
        "max_amount": Decimal("10"),
        "broker_fee_percent": Decimal("0"),
        "provider_fee_percent": Decimal("0"),
        "provider_fee_fixed": Decimal("0"),
        "withdrawals_allowed": False,
        "kyc_level": 1,
    }
    values.update(overrides)
    return await card_method(**values)


async def may_deposit(*people: Persona) -> None:
    for p in people:
        await set_level(p.id, 2)


async def pending_wire(
    person: Persona, method: dict[str, Any], amount: str = "1500.00", currency: str = "EUR"
) -> dict[str, Any]:
    return await wire.start_wire(
        CLIENT, principal_of(person), {"method_id": str(method["id"]), "amount": amount, "currency": currency}
    )


async def deposit(deposit_id: int) -> dict[str, Any]:
    row = await db.fetchrow("SELECT * FROM funding_deposits WHERE id = $1", deposit_id)
    assert row is not None
    return row


async def audit_actions(prefix: str = "funding.") -> list[str]:
    rows = await db.fetch("SELECT action FROM audit_events WHERE action LIKE {} ORDER BY seq", prefix + "%")
    return [r["action"] for r in rows]


def png_bytes(size: int = 400) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 220, 240)).save(out, "PNG")
    return out.getvalue()


def pdf_bytes() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


EXE = (
    b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"
    + b"\x00" * 200
    + b"This program cannot be run in DOS mode."
)
