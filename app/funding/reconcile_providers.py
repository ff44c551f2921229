"""Reconciliation against the payment providers' own records (issue 6 item 7).

For every configured provider that keeps records (`list_payments` / `list_payouts`), over a recent
window: each payment the provider says succeeded must be a completed deposit of the same amount
and currency, each completed deposit must be a succeeded payment there; each payout the provider
made must be a paid withdrawal of the same amount, and each paid withdrawal a payout there.
Movements still settling (a webhook not yet arrived, a payout being confirmed) are listed as *in
flight*, not as differences. Nothing is changed: finance decides.

Bank wire's record of payments is the imported bank statement (its matched lines). Its payouts
have no record but finance's own confirmation (the bank's reference, `payouts.confirm_payout`), so
they are not compared: every paid wire withdrawal would otherwise be listed as never sent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.core import db
from app.funding.providers import base, wire
from app.funding.reconcile import LIMIT, external_check

log = logging.getLogger(__name__)

WINDOW = timedelta(days=3)  # what a daily run looks back over (overlapping runs, nothing missed)
SETTLING = timedelta(minutes=15)  # younger than this, a one-sided record is in flight
NO_PAYOUT_RECORDS = frozenset({wire.KEY})  # providers whose payouts only finance's confirmation records


def _row(
    kind: str, provider: str, currency: str, expected: Any, found: Any, detail: str, **extra: Any
) -> dict[str, Any]:
    return {
        "kind": kind,
        "provider": provider,
        "currency": currency,
        "expected": str(expected),
        "found": str(found),
        "detail": detail,
        **extra,
    }


def _recent(moment: datetime | None, now: datetime) -> bool:
    return moment is not None and now - moment < SETTLING


async def compare_payments(provider: base.PaymentProvider, now: datetime) -> list[dict[str, Any]]:
    key = provider.key
    since = now - WINDOW
    theirs = await provider.list_payments(since - timedelta(days=1))
    ours = await db.fetch(
        "SELECT id, client_id, reference, provider_payment_id, amount, credited_amount, currency, status, "
        "updated_at, completed_at, created_at FROM funding_deposits WHERE provider = {} "
        "AND (created_at >= {} OR provider_payment_id = ANY({}))",
        key,
        since,
        [p.provider_payment_id for p in theirs],
    )
    by_payment = {r["provider_payment_id"]: r for r in ours if r["provider_payment_id"]}
    by_reference = {r["reference"]: r for r in ours}
    found: list[dict[str, Any]] = []
    seen: set[int] = set()
    for p in theirs:
        dep = by_payment.get(p.provider_payment_id) or by_reference.get(p.reference)
        if dep is not None:
            seen.add(dep["id"])
        if p.status != "succeeded":
            if dep is not None and dep["status"] == "completed":
                found.append(_row(
                    "credited_not_paid", key, dep["currency"], Decimal(0), dep["amount"],
                    f"deposit {dep['reference']} is credited but the provider says payment "
                    f"{p.provider_payment_id} is {p.status}",
                    deposit_id=dep["id"], client_id=dep["client_id"], in_flight=False,
                ))  # fmt: skip
            continue
        if dep is None:
            found.append(_row(
                "payment_unknown", key, p.currency, p.amount, Decimal(0),
                f"the provider took {p.amount} {p.currency} (payment {p.provider_payment_id}, reference "
                f"{p.reference or '—'}) and no deposit of ours matches it",
                in_flight=_recent(p.updated_at, now),
            ))  # fmt: skip
        elif dep["status"] != "completed":
            found.append(_row(
                "paid_not_credited", key, p.currency, p.amount, Decimal(0),
                f"deposit {dep['reference']} is {dep['status']} but the provider says it was paid",
                deposit_id=dep["id"], client_id=dep["client_id"],
                in_flight=_recent(p.updated_at, now) or _recent(dep["updated_at"], now),
            ))  # fmt: skip
        elif (Decimal(dep["amount"]), dep["currency"]) != (p.amount, p.currency):
            found.append(_row(
                "amount_differs", key, p.currency, p.amount, dep["amount"],
                f"deposit {dep['reference']} was booked as {dep['amount']} {dep['currency']}, the provider "
                f"took {p.amount} {p.currency}",
                deposit_id=dep["id"], client_id=dep["client_id"], in_flight=False,
            ))  # fmt: skip
    for dep in ours:
        if dep["status"] == "completed" and dep["id"] not in seen and dep["created_at"] >= since:
            found.append(_row(
                "credited_not_paid", key, dep["currency"], Decimal(0), dep["amount"],
                f"deposit {dep['reference']} is credited but the provider has no payment for it",
                deposit_id=dep["id"], client_id=dep["client_id"], in_flight=False,
            ))  # fmt: skip
    return found


async def compare_payouts(provider: base.PaymentProvider, now: datetime) -> list[dict[str, Any]]:
    key = provider.key
    since = now - WINDOW
    theirs = await provider.list_payouts(since - timedelta(days=1))
    ours = await db.fetch(
        "SELECT id, client_id, amount, currency, status, payout_reference, updated_at, paid_at, created_at "
        "FROM funding_withdrawals WHERE provider = {} AND (created_at >= {} OR payout_reference = ANY({}))",
        key,
        since,
        [p.payout_id for p in theirs],
    )
    by_payout = {r["payout_reference"]: r for r in ours if r["payout_reference"]}
    found: list[dict[str, Any]] = []
    seen: set[int] = set()
    for p in theirs:
        w = by_payout.get(p.payout_id)
        if w is not None:
            seen.add(w["id"])
        if p.status != "paid":
            if w is not None and w["status"] == "paid":
                found.append(_row(
                    "paid_not_sent", key, w["currency"], Decimal(0), w["amount"],
                    f"withdrawal {w['id']} is paid in our books, the provider's payout {p.payout_id} is {p.status}",
                    withdrawal_id=w["id"], client_id=w["client_id"], in_flight=False,
                ))  # fmt: skip
            continue
        if w is None:
            found.append(_row(
                "payout_unknown", key, p.currency, p.amount, Decimal(0),
                f"the provider paid out {p.amount} {p.currency} (payout {p.payout_id}) and no withdrawal of "
                "ours records it",
                in_flight=False,
            ))  # fmt: skip
        elif w["status"] != "paid":
            found.append(_row(
                "sent_not_booked", key, p.currency, p.amount, Decimal(0),
                f"withdrawal {w['id']} is {w['status']} but the provider paid it out",
                withdrawal_id=w["id"], client_id=w["client_id"],
                in_flight=w["status"] == "paying" and _recent(w["updated_at"], now),
            ))  # fmt: skip
        elif (Decimal(w["amount"]), w["currency"]) != (p.amount, p.currency):
            found.append(_row(
                "amount_differs", key, p.currency, p.amount, w["amount"],
                f"withdrawal {w['id']} was booked as {w['amount']} {w['currency']}, the provider paid "
                f"{p.amount} {p.currency}",
                withdrawal_id=w["id"], client_id=w["client_id"], in_flight=False,
            ))  # fmt: skip
    for w in ours:
        if w["status"] == "paid" and w["id"] not in seen and w["created_at"] >= since:
            found.append(_row(
                "paid_not_sent", key, w["currency"], Decimal(0), w["amount"],
                f"withdrawal {w['id']} is paid in our books but the provider has no payout for it",
                withdrawal_id=w["id"], client_id=w["client_id"], in_flight=False,
            ))  # fmt: skip
    return found


class _Unconfigured:
    def __init__(self, key: str) -> None:
        self.key = key


async def _providers_in_use() -> list[base.PaymentProvider | _Unconfigured]:
    rows = await db.fetch(
        "SELECT DISTINCT provider FROM funding_deposits WHERE created_at >= now() - interval '4 days' "
        "UNION SELECT DISTINCT provider FROM funding_withdrawals WHERE provider <> '' "
        "AND created_at >= now() - interval '4 days'"
    )
    out: list[base.PaymentProvider | _Unconfigured] = []
    for r in rows:
        try:
            out.append(base.get(r["provider"]))
        except base.ProviderError:
            log.warning("reconciliation: provider %s is not configured", r["provider"])
            out.append(_Unconfigured(r["provider"]))  # reported below as a failed check
    return out


@external_check("providers")
async def check_providers() -> list[dict[str, Any]]:
    """Every provider used recently, against its own records; one that cannot be asked fails the
    check (the run then says so) rather than passing silently."""
    now = datetime.now(UTC)
    found: list[dict[str, Any]] = []
    unreachable: list[str] = []
    for provider in await _providers_in_use():
        if isinstance(provider, _Unconfigured):
            unreachable.append(f"{provider.key} (not configured)")
            continue
        try:
            found += await compare_payments(provider, now)
            if provider.key not in NO_PAYOUT_RECORDS:
                found += await compare_payouts(provider, now)
        except base.ProviderError as exc:
            unreachable.append(f"{provider.key} ({exc.message})")
        except OSError as exc:
            unreachable.append(f"{provider.key} ({exc})")
    if unreachable:
        raise RuntimeError("could not read the records of " + ", ".join(unreachable))
    return found[:LIMIT]
