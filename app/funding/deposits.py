"""Deposits, from the client's request to the credit of their wallet: every method's one path.

`create_deposit` checks the request (the client's `deposits` right, the method offered to them, its
currency and limits, the KYC level's cumulative deposit limit) and stores it `created` with the
fees it will cost. Card and e-wallet deposits then go to the provider's hosted page; wire and
crypto deposits wait for a statement line or the chain. `complete_deposit` credits the wallet once,
whoever calls it and however often (webhook, sweep, finance matching a wire, the chain feed).

How a completed deposit is booked, fees and conversion included: `app.funding.deposit_booking`.
"""

from __future__ import annotations

import base64
import logging
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.clients.lifecycle import change_stage
from app.core import audit, db, live, mail
from app.core.audit import Actor
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.errors import NotFound
from app.funding import deposit_booking, deposit_checks, ledger, payment_methods
from app.funding.amounts import IdempotencyConflict, LedgerError, check_amount, currency_code, format_amount
from app.funding.deposit_checks import deposited_total, fees_in, parse_amount
from app.kyc import levels

log = logging.getLogger(__name__)

__all__ = [
    "announce", "attach_payment", "cancel_deposit", "complete_deposit", "create_deposit", "deposited_total", "deposits_for_client",
    "fail_deposit", "fees_in", "find_deposit", "get_deposit", "get_deposit_for", "mark_pending",
    "parse_amount", "retry_awaiting",
]  # fmt: skip

STATUSES = ("created", "pending", "completed", "failed", "cancelled")
OPEN = ("created", "pending")


def _reference() -> str:
    """`D` + 8 base32 characters (40 random bits): short enough to type on a wire form."""
    return "D" + base64.b32encode(secrets.token_bytes(5)).decode()


async def create_deposit(
    actor: Actor,
    client_id: int,
    method_id: int,
    amount: Decimal,
    currency: str,
    *,
    credit_currency: str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """A checked, stored deposit (`created`); a repeat with the same `idempotency_key` returns the
    first one. Raises `levels.RightDenied` (the client may not deposit) or `LedgerError` (with the
    field and a message for the client); nothing is stored then."""
    key = (idempotency_key or "").strip() or None
    if key is not None:
        first = await _by_key(key)
        if first is not None:
            return _same_request(first, client_id, method_id, amount, currency)
    if await db.fetchrow("SELECT 1 FROM clients WHERE id = $1", client_id) is None:
        raise NotFound("client")
    await levels.require_right(client_id, "deposits")
    currency = currency_code(currency)
    credit = currency_code(credit_currency or currency)
    offered = {m["id"]: m for m in await payment_methods.methods_for_client(client_id)}
    method = offered.get(method_id)
    if method is None:
        raise LedgerError("This payment method is not available to you.", field="method")
    if currency not in method["currencies"].split(","):
        raise LedgerError(
            f"{method['name']} takes {method['currencies'].replace(',', ', ')}, not {currency}.",
            field="currency",
        )
    amount = check_amount(amount, currency)
    await deposit_checks.check_limits(client_id, method, amount, currency)
    fees = await fees_in(method, amount, currency)
    if fees["net_credit"] <= 0:
        raise LedgerError(
            f"The fees ({format_amount(fees['total_fee'], currency)}) would take the whole deposit."
        )
    now = datetime.now(UTC)
    async with db.transaction():
        for _ in range(5):
            row = await db.fetchrow(
                "INSERT INTO funding_deposits (client_id, method_id, provider, kind, reference, amount, currency, "
                "fee_broker, fee_provider, credit_currency, status, idempotency_key, created_by, created_at, "
                "updated_at, provider_payment_id, instrument, instrument_key, failure_reason, receipt_path, "
                "crypto_address, tx_hash, confirmations) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                "'created', $11, $12, $13, $13, '', '', '', '', '', '', '', 0) ON CONFLICT DO NOTHING RETURNING *",
                client_id,
                method_id,
                method["provider"],
                method["kind"],
                _reference(),
                amount,
                currency,
                fees["broker_fee"],
                fees["provider_fee"],
                credit,
                key,
                (actor.label or actor.kind)[:320],
                now,
            )
            if row is not None:
                break
            if key is not None and (first := await _by_key(key)) is not None:  # a concurrent twin won
                return _same_request(first, client_id, method_id, amount, currency)
        else:  # pragma: no cover - five reference collisions in 2^40
            raise RuntimeError("could not pick a unique deposit reference")
        await audit.record(actor, "funding.deposit.created", "funding_deposit", row["id"], after=_view(row))
        await announce(row)
    return row


def _same_request(
    first: dict[str, Any], client_id: int, method_id: int, amount: Any, currency: str
) -> dict[str, Any]:
    same = (
        first["client_id"] == client_id
        and first["method_id"] == method_id
        and str(first["currency"]) == str(currency).strip().upper()
        and isinstance(amount, Decimal | int)
        and Decimal(first["requested_amount"] or first["amount"]) == Decimal(amount)
    )
    if not same:
        raise IdempotencyConflict("This form was already submitted with other values: reload the page.")
    return first


async def _by_key(key: str) -> dict[str, Any] | None:
    return await db.fetchrow("SELECT * FROM funding_deposits WHERE idempotency_key = $1", key)


async def get_deposit(deposit_id: int) -> dict[str, Any]:
    row = await db.fetchrow("SELECT * FROM funding_deposits WHERE id = $1", deposit_id)
    if row is None:
        raise NotFound("deposit")
    return row


async def get_deposit_for(p: Principal, deposit_id: int) -> dict[str, Any]:
    """The deposit if `p` may see it (its client, or finance); NotFound for anyone else."""
    row = await get_deposit(deposit_id)
    if p.is_client and row["client_id"] == p.id:
        return row
    if p.is_staff and allowed(p, "finance"):
        return row
    raise NotFound("deposit")


async def deposits_for_client(
    client_id: int, limit: int = 50, *, kind: str | None = None
) -> list[dict[str, Any]]:
    """The client's latest deposits (of one `kind`, when given), newest first, with the method's name."""
    return await db.fetch(
        "SELECT d.*, m.name AS method_name FROM funding_deposits d LEFT JOIN funding_payment_methods m "
        "ON m.id = d.method_id WHERE d.client_id = {} AND ({}::text IS NULL OR d.kind = {}) "
        "ORDER BY d.created_at DESC, d.id DESC LIMIT {}",
        client_id,
        kind,
        kind,
        limit,
    )


async def find_deposit(
    provider: str, *, provider_payment_id: str = "", reference: str = ""
) -> dict[str, Any] | None:
    """The deposit a provider's event is about: by its payment id, else by our reference."""
    if provider_payment_id:
        row = await db.fetchrow(
            "SELECT * FROM funding_deposits WHERE provider = $1 AND provider_payment_id = $2",
            provider,
            provider_payment_id,
        )
        if row is not None:
            return row
    if reference:
        return await db.fetchrow(
            "SELECT * FROM funding_deposits WHERE provider = $1 AND reference = $2", provider, reference
        )
    return None


async def attach_payment(actor: Actor, deposit_id: int, provider_payment_id: str) -> dict[str, Any]:
    """Remember the provider's id of the payment started for this deposit (once)."""
    async with db.transaction():
        row = await _locked(deposit_id)
        if row["provider_payment_id"] == provider_payment_id:
            return row
        if row["provider_payment_id"]:
            raise LedgerError("This deposit is already linked to another payment.", field="deposit")
        row = await _update(row, provider_payment_id=provider_payment_id)
        await audit.record(
            actor,
            "funding.deposit.payment_started",
            "funding_deposit",
            deposit_id,
            after={"provider_payment_id": provider_payment_id},
        )
    return row


async def mark_pending(
    actor: Actor, deposit_id: int, *, provider_payment_id: str = "", note: str = ""
) -> dict[str, Any]:
    """`created` → `pending` (the provider is processing, the client says they paid). Any later
    status is left alone, so a late `processing` event never moves a deposit backwards."""
    async with db.transaction():
        row = await _locked(deposit_id)
        if row["status"] != "created":
            return row
        changes: dict[str, Any] = {"status": "pending"}
        if provider_payment_id and not row["provider_payment_id"]:
            changes["provider_payment_id"] = provider_payment_id
        if note:
            changes["failure_reason"] = note
        new = await _update(row, **changes)
        await audit.record(
            actor,
            "funding.deposit.pending",
            "funding_deposit",
            deposit_id,
            before=_view(row),
            after=_view(new),
        )
        await announce(new)
    return new


async def fail_deposit(actor: Actor, deposit_id: int, reason: str) -> dict[str, Any]:
    """`created`/`pending` → `failed` with the reason the client is shown, and an e-mail. A completed
    or already failed deposit is returned unchanged."""
    reason = (reason or "").strip() or "The payment was not completed."
    async with db.transaction():
        row = await _locked(deposit_id)
        if row["status"] not in OPEN:
            return row
        new = await _update(row, status="failed", failure_reason=reason[:2000])
        await audit.record(
            actor,
            "funding.deposit.failed",
            "funding_deposit",
            deposit_id,
            before=_view(row),
            after=_view(new),
        )
        await _mail(new, "deposit_failed")
        await announce(new)
    return new


async def cancel_deposit(actor: Actor, deposit_id: int, reason: str) -> dict[str, Any]:
    """`created` → `cancelled` (the client never paid); anything further along is left alone."""
    async with db.transaction():
        row = await _locked(deposit_id)
        if row["status"] != "created":
            return row
        new = await _update(row, status="cancelled", failure_reason=(reason or "Cancelled.").strip()[:2000])
        await audit.record(
            actor,
            "funding.deposit.cancelled",
            "funding_deposit",
            deposit_id,
            before=_view(row),
            after=_view(new),
        )
        await announce(new)
    return new


async def complete_deposit(
    actor: Actor,
    deposit_id: int,
    *,
    amount: Decimal | None = None,
    currency: str | None = None,
    provider_payment_id: str = "",
    instrument: str = "",
    instrument_key: str = "",
    tx_hash: str = "",
    confirmations: int | None = None,
) -> dict[str, Any]:
    """Credit the client for what was actually paid (`amount`/`currency`, default: what was asked),
    once. A completed deposit comes back as it is. A failed or cancelled one is still completed when
    the money did arrive: money received is never left uncredited. Without an exchange rate (or when
    the paid amount does not cover the fees) the deposit stays `pending` with a note, paid."""
    async with db.transaction():
        row = await _locked(deposit_id)
        if row["status"] == "completed":
            return row
        paid_currency = currency_code(currency or row["currency"])
        paid = check_amount(row["amount"] if amount is None else amount, paid_currency)
        facts: dict[str, Any] = {"amount": paid, "currency": paid_currency}
        if paid != row["amount"] or paid_currency != row["currency"]:
            facts["requested_amount"] = row["requested_amount"] or row["amount"]
        for column, value in (
            ("provider_payment_id", provider_payment_id),
            ("instrument", instrument),
            ("instrument_key", instrument_key),
            ("tx_hash", tx_hash),
        ):
            if value and not row[column]:
                facts[column] = value[:200]
        if confirmations is not None:
            facts["confirmations"] = confirmations
        facts["paid_at"] = row["paid_at"] or datetime.now(UTC)
        try:
            booking = await deposit_booking.postings(row, paid, paid_currency)
        except LedgerError as exc:
            note = exc.message
            new = await _update(
                row, status="pending", failure_reason=f"Paid; not credited yet: {note}", **facts
            )
            if row["status"] != "pending" or row["failure_reason"] != new["failure_reason"]:
                await audit.record(
                    actor,
                    "funding.deposit.awaiting",
                    "funding_deposit",
                    deposit_id,
                    before=_view(row),
                    after=_view(new),
                )
                await announce(new)
            return new
        posted = await ledger.post(
            actor,
            "deposit",
            booking["postings"],
            idempotency_key=f"deposit:{deposit_id}",
            reference=row["reference"],
            memo=f"Deposit {row['reference']} ({row['kind']}, {row['provider']})",
            audit=False,
        )
        new = await _update(
            row,
            status="completed",
            fee_broker=booking["broker_fee"],
            fee_provider=booking["provider_fee"],
            credited_amount=booking["credited"],
            fx_rate=booking["rate"],
            transaction_id=posted.id,
            completed_at=datetime.now(UTC),
            failure_reason="",
            **facts,
        )
        await audit.record(
            actor,
            "funding.deposit.completed",
            "funding_deposit",
            deposit_id,
            before=_view(row),
            after=_view(new),
        )
        await _after_first_deposit(actor, new)
        await _mail(new, "deposit_received")
        await announce(new, wallet=True)
    return new


async def _after_first_deposit(actor: Actor, row: dict[str, Any]) -> None:
    """The first completed deposit funds the client (from `kyc_approved` only); risk is reassessed
    with the new deposit volume on every deposit."""
    from app.kyc import risk

    client = await db.fetchrow("SELECT stage FROM clients WHERE id = $1", row["client_id"])
    if client is not None and client["stage"] == "kyc_approved":
        await change_stage(row["client_id"], "funded", actor, reason=f"First deposit {row['reference']}")
    await risk.reassess(row["client_id"], actor, f"deposit {row['reference']} received")


async def retry_awaiting(actor: Actor, limit: int = 100) -> int:
    """Complete paid deposits that waited for an exchange rate (or a review) where that is now
    possible; how many were completed."""
    rows = await db.fetch(
        "SELECT id FROM funding_deposits WHERE status = 'pending' AND paid_at IS NOT NULL ORDER BY paid_at LIMIT {}",
        limit,
    )
    done = 0
    for r in rows:
        if (await complete_deposit(actor, r["id"]))["status"] == "completed":
            done += 1
    return done


# --- helpers --------------------------------------------------------------------------------------


async def _locked(deposit_id: int) -> dict[str, Any]:
    row = await db.fetchrow("SELECT * FROM funding_deposits WHERE id = $1 FOR UPDATE", deposit_id)
    if row is None:
        raise NotFound("deposit")
    return row


async def _update(row: dict[str, Any], **changes: Any) -> dict[str, Any]:
    columns = list(changes)
    sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(columns))
    new = await db.fetchrow(
        f"UPDATE funding_deposits SET {sets}, updated_at = now() WHERE id = $1 RETURNING *",
        row["id"],
        *(changes[c] for c in columns),
    )
    assert new is not None
    return new


_VIEWED = (
    "reference", "status", "amount", "currency", "requested_amount", "fee_broker", "fee_provider",
    "credit_currency", "credited_amount", "fx_rate", "provider_payment_id", "instrument", "tx_hash",
    "failure_reason", "transaction_id",
)  # fmt: skip


def _view(row: dict[str, Any]) -> dict[str, Any]:
    """What the audit trail keeps of a deposit."""
    return {
        k: (str(row[k]) if isinstance(row[k], Decimal) else row[k])
        for k in _VIEWED
        if k in row and row[k] not in (None, "")
    } | {"client_id": row["client_id"], "method_id": row["method_id"], "provider": row["provider"]}


async def announce(row: dict[str, Any], *, wallet: bool = False) -> None:
    """Tell the client's pages and finance's that this deposit changed (delivered at commit)."""
    ids = {"deposit_id": row["id"], "client_id": row["client_id"]}
    await live.publish(f"client:{row['client_id']}", "funding.deposit", **ids)
    await live.publish("staff:finance", "funding.deposit", **ids)
    if wallet:
        await live.publish(f"client:{row['client_id']}", "funding.wallet", client_id=row["client_id"])


async def _mail(row: dict[str, Any], template: str) -> None:
    client = await db.fetchrow(
        "SELECT email, first_name, language FROM clients WHERE id = $1", row["client_id"]
    )
    if client is None or not client["email"]:
        return
    method = None
    if row["method_id"] is not None:
        method = await db.fetchrow("SELECT name FROM funding_payment_methods WHERE id = $1", row["method_id"])
    credited = row["credited_amount"]
    await mail.queue_email(
        client["email"],
        template,
        {
            "first_name": client["first_name"],
            "reference": row["reference"],
            "method": method["name"] if method else row["kind"],
            "amount": format_amount(row["amount"], row["currency"]),
            "credited": format_amount(credited, row["credit_currency"]) if credited is not None else "",
            "fees": format_amount(row["fee_broker"] + row["fee_provider"], row["currency"]),
            "fx_rate": str(row["fx_rate"]) if row["fx_rate"] is not None else "",
            "reason": row["failure_reason"],
            "deposit_id": row["id"],
        },
        client_id=row["client_id"],
        language=client["language"],
    )
