"""Bank wire deposits from the client's side: ask for one, get our bank details and the reference
to quote, send the transfer receipt from the phone.

The deposit itself is the core one (`app.funding.deposits`): created, then `pending` while the
money travels; finance completes it by matching the bank statement line (`app.funding.statements`).
The receipt is only evidence for finance (the statement decides): it is judged by content and
stored encrypted exactly like KYC documents (`app.kyc.files`, `app.kyc.storage`), never under
static/, and only its client and finance can open it.
"""

from __future__ import annotations

from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.funding import deposits, payment_methods
from app.funding.amounts import LedgerError, format_amount
from app.funding.providers import ProviderError
from app.funding.providers.wire import PROVIDER, bank_details
from app.kyc.documents import store
from app.kyc.files import RejectedUpload, clean_upload, sniff
from app.settings import get_settings

OPEN = ("created", "pending")


async def methods_for(client_id: int) -> list[dict[str, Any]]:
    """The bank wire methods this client is offered, with their limits as people read them."""
    return [
        {**m, "limits": payment_methods.limits_text(m)}
        for m in await payment_methods.methods_for_client(client_id)
        if m["kind"] == "wire"
    ]


async def start_wire(actor: Actor, p: Principal, form: dict[str, str]) -> dict[str, Any]:
    """A pending wire deposit with its reference; a double-clicked form (same `idempotency_key`)
    returns the first one. FormErrors say what to fix; `levels.RightDenied` passes through."""
    if not p.is_client:
        raise NotFound("deposit")
    try:
        method_id = int(str(form.get("method_id", "")).strip())
    except ValueError:
        raise FormErrors({"method_id": "Choose how you will pay."}) from None
    method = next((m for m in await methods_for(p.id) if m["id"] == method_id), None)
    if method is None:
        raise FormErrors({"method_id": "This payment method is not available to you."})
    amount = deposits.parse_amount(form.get("amount"))
    currency = str(form.get("currency") or payment_methods.currency_of(method)).strip().upper()
    details = await bank_details()
    if not details["iban"] or not details["beneficiary"]:
        raise FormErrors({"__all__": "Bank wire is not available right now: please use another method."})
    try:
        row = await deposits.create_deposit(
            actor,
            p.id,
            method_id,
            amount,
            currency,
            idempotency_key=str(form.get("idempotency_key") or "").strip()[:200] or None,
        )
        if row["status"] == "created":
            start = await PROVIDER.start_payment(
                reference=row["reference"],
                amount=row["amount"],
                currency=row["currency"],
                return_url="",
                customer={},
            )
            row = await deposits.mark_pending(actor, row["id"], provider_payment_id=start.provider_payment_id)
    except LedgerError as exc:
        shown = {"method": "method_id", "amount": "amount", "currency": "currency", "method_id": "method_id"}
        errors = {shown.get(k, "__all__"): v for k, v in exc.errors.items()}
        raise FormErrors(errors) from None
    except ProviderError as exc:
        raise FormErrors({"__all__": exc.message}) from None
    return row


async def get_wire_for(p: Principal, deposit_id: int) -> dict[str, Any]:
    """A wire deposit its client or finance may see; NotFound for anyone else (and for other kinds)."""
    row = await deposits.get_deposit_for(p, deposit_id)
    if row["kind"] != "wire":
        raise NotFound("deposit")
    return row


async def wire_deposits_of(client_id: int, limit: int = 20) -> list[dict[str, Any]]:
    return await deposits.deposits_for_client(client_id, limit, kind="wire")


async def instructions(row: dict[str, Any]) -> dict[str, str]:
    """What the client types into their bank's transfer form."""
    return {
        **await bank_details(),
        "reference": row["reference"],
        "amount": format_amount(row["amount"], row["currency"]),
        "currency": row["currency"],
    }


async def upload_receipt(actor: Actor, p: Principal, deposit_id: int, data: bytes) -> dict[str, Any]:
    """Keep the client's transfer receipt (a photo or PDF, judged by content) with the deposit; a
    new one replaces the earlier. Only while the deposit is open."""
    row = await get_wire_for(p, deposit_id)
    if not p.is_client:
        raise NotFound("deposit")
    if row["status"] not in OPEN:
        raise FormErrors({"file": "This deposit is already settled: there is nothing to send for it."})
    try:
        clean = clean_upload(data, max_bytes=get_settings().kyc.max_upload_bytes)
    except RejectedUpload as exc:
        raise FormErrors({"file": exc.message}) from None
    files = store()
    name = files.write(clean.content)
    old = ""
    try:
        async with transaction():
            locked = await db.fetchrow(
                "SELECT status, receipt_path FROM funding_deposits WHERE id = $1 FOR UPDATE", deposit_id
            )
            assert locked is not None
            if locked["status"] not in OPEN:
                raise FormErrors(
                    {"file": "This deposit is already settled: there is nothing to send for it."}
                )
            old = locked["receipt_path"]
            updated = await db.fetchrow(
                "UPDATE funding_deposits SET receipt_path = $2, updated_at = now() WHERE id = $1 RETURNING *",
                deposit_id,
                name,
            )
            assert updated is not None
            row = updated
            await audit.record(
                actor,
                "funding.deposit.receipt_uploaded",
                "funding_deposit",
                deposit_id,
                before={"receipt": bool(old)},
                after={
                    "kind": clean.kind,
                    "size": len(clean.content),
                    "received_sha256": clean.received_sha256,
                    "stored_sha256": clean.stored_sha256,
                },
            )
            await deposits.announce(row)
    except BaseException:
        files.delete(name)
        raise
    if old:
        files.delete(old)
    return row


async def receipt_for(p: Principal, deposit_id: int, actor: Actor) -> tuple[bytes, str]:
    """The decrypted receipt and its type, for its client or finance (each staff view audited)."""
    row = await get_wire_for(p, deposit_id)  # its client or finance only
    if not row["receipt_path"]:
        raise NotFound("receipt")
    content = store().read(row["receipt_path"])
    kind = sniff(content) or "pdf"
    if p.is_staff:
        async with transaction():
            await audit.record(
                actor,
                "funding.deposit.receipt_viewed",
                "funding_deposit",
                deposit_id,
                after={"client_id": row["client_id"]},
            )
    mime = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "pdf": "application/pdf"}[kind]
    return content, mime
