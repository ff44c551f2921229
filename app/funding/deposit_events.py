"""Card and e-wallet deposits with the provider: starting the hosted payment, the provider's
webhook events, and the sweeps that catch what a webhook missed.

Events map to deposits by the provider's payment id, else by our reference (the provider echoes
it). `payment.processing` → pending, `payment.succeeded` → completed (for the amount actually
paid), `payment.failed` → failed; the deposit service refuses to move a deposit backwards, so
events arriving out of order or twice change nothing. The inbox (`app.funding.webhooks`) runs each
event once, in one transaction with its effects.

An event for a payment we do not know is not the provider's problem: the endpoint answers 200 (so
it stops retrying) with `unknown_payment`, and the event stays in the inbox unprocessed, its
`last_error` saying so, for finance. The sweep retries it a few times (a webhook can overtake the
commit that stored the payment id) and then leaves it alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core import db
from app.core.audit import Actor
from app.funding import deposits, webhooks
from app.funding.providers import base, simcard
from app.funding.webhooks import InboxEvent

log = logging.getLogger(__name__)

MAX_SWEEP_ATTEMPTS = 5
ABANDONED_AFTER = timedelta(hours=24)  # a hosted page left unpaid this long: the deposit is cancelled
CARD_KINDS = ("card", "ewallet")


class UnknownPayment(Exception):
    """A provider event about a payment no deposit of ours carries."""


def webhook_secret(key: str) -> str | None:
    """The signing secret of a provider whose events we handle, or None (no such endpoint)."""
    if key not in HANDLERS:
        return None
    secret = getattr(base.get(key), "webhook_secret", None)
    return str(secret) if secret else None


async def start_card_payment(
    actor: Actor, deposit: Mapping[str, Any], return_url: str, customer: Mapping[str, Any]
) -> str:
    """Open the provider's hosted page for a created deposit; the URL to send the browser to.
    Safe to repeat: the provider dedups on the deposit's reference. Raises ProviderError."""
    provider = base.get(deposit["provider"])
    start = await provider.start_payment(
        reference=deposit["reference"],
        amount=deposit["amount"],
        currency=deposit["currency"],
        return_url=return_url,
        customer=customer,
    )
    await deposits.attach_payment(actor, int(deposit["id"]), start.provider_payment_id)
    return start.redirect_url


async def handle_card_event(event: InboxEvent) -> None:
    """The simcard provider's events (runs inside the inbox's transaction)."""
    kind = event.event_type
    if kind not in ("payment.processing", "payment.succeeded", "payment.failed"):
        return  # nothing of ours (payout events are looked up by the withdrawal's payout key)
    data = (event.payload or {}).get("data") or {}
    payment = simcard.payment_of(data)
    await apply_payment(
        Actor.system(f"{event.provider} webhook {event.event_id}"[:320]), event.provider, payment, kind
    )


async def apply_payment(
    actor: Actor, provider: str, payment: base.ProviderPayment, kind: str = ""
) -> dict[str, Any]:
    """Bring the deposit in line with what the provider says about its payment."""
    deposit = await deposits.find_deposit(
        provider, provider_payment_id=payment.provider_payment_id, reference=payment.reference
    )
    if deposit is None:
        raise UnknownPayment(
            f"unknown payment: no deposit for {provider} payment {payment.provider_payment_id} "
            f"(reference {payment.reference or 'none'})"
        )
    kind = kind or f"payment.{payment.status}"
    if kind == "payment.succeeded" or payment.status == "succeeded":
        return await deposits.complete_deposit(
            actor,
            deposit["id"],
            amount=payment.amount,
            currency=payment.currency,
            provider_payment_id=payment.provider_payment_id,
            instrument=payment.instrument,
            instrument_key=payment.instrument_key,
        )
    if kind == "payment.failed" or payment.status == "failed":
        return await deposits.fail_deposit(
            actor, deposit["id"], payment.failure_reason or "The payment failed."
        )
    return await deposits.mark_pending(actor, deposit["id"], provider_payment_id=payment.provider_payment_id)


HANDLERS: dict[str, Callable[[InboxEvent], Awaitable[None]]] = {simcard.KEY: handle_card_event}


async def process_event(provider: str, event_id: str) -> str:
    """Run one recorded event through its provider's handler: the inbox's outcome, or
    `unknown_payment` when it named a payment we do not have."""
    handler = HANDLERS.get(provider)
    if handler is None:
        return "no_handler"
    outcome = await webhooks.process(provider, event_id, handler)
    if outcome == "failed":
        row = await db.fetchrow(
            "SELECT last_error FROM funding_webhook_events WHERE provider = $1 AND event_id = $2",
            provider,
            event_id,
        )
        if row is not None and row["last_error"].startswith("UnknownPayment"):
            return "unknown_payment"
    return outcome


async def sweep_webhooks(limit: int = 100) -> int:
    """Retry recorded events not processed yet (a handler failed, the process died): how many now are."""
    done = 0
    for provider, event_id in await webhooks.pending(limit=limit):
        row = await db.fetchrow(
            "SELECT attempts FROM funding_webhook_events WHERE provider = $1 AND event_id = $2",
            provider,
            event_id,
        )
        if row is None or row["attempts"] >= MAX_SWEEP_ATTEMPTS:
            continue
        if await process_event(provider, event_id) == "processed":
            done += 1
    return done


async def check_stale(actor: Actor, minutes: int, limit: int = 100) -> int:
    """Ask the provider about card deposits still open `minutes` after they were started (a webhook
    lost on the way); how many changed. One never paid within a day is cancelled."""
    cutoff = datetime.now(UTC) - timedelta(minutes=minutes)
    rows = await db.fetch(
        "SELECT id, provider, provider_payment_id, status, created_at FROM funding_deposits WHERE status IN ('created', 'pending') "
        "AND kind IN ('card', 'ewallet') AND provider_payment_id <> '' AND paid_at IS NULL AND updated_at < {} "
        "ORDER BY updated_at LIMIT {}",
        cutoff,
        limit,
    )
    changed = 0
    for r in rows:
        try:
            payment = await base.get(r["provider"]).get_payment(r["provider_payment_id"])
        except base.ProviderError as exc:
            log.warning("deposit %s: cannot ask %s: %s", r["id"], r["provider"], exc.message)
            continue
        if payment.status == "pending":
            if r["status"] == "created" and r["created_at"] < datetime.now(UTC) - ABANDONED_AFTER:
                await deposits.cancel_deposit(actor, r["id"], "The payment was not completed in time.")
                changed += 1
            else:  # ask again later
                await db.fetch("UPDATE funding_deposits SET updated_at = now() WHERE id = {}", r["id"])
            continue
        after = await apply_payment(actor, r["provider"], payment)
        changed += after["status"] != r["status"]
    return changed
