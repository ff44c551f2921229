"""Reconciliation with the payment providers' own records: nothing when both sides agree, every
one-sided or different record listed (and none fixed), young one-sided records as in flight, and a
provider that cannot be asked fails the check instead of passing it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.core import db
from app.core.audit import Actor
from app.funding import providers, reconcile, reconcile_providers
from app.funding.providers import PayoutResult, ProviderError, ProviderPayment
from tests.funding.withdraw_support import InMemoryProvider, verified_client

KEY = "testrecon"
FINANCE = Actor(kind="staff", id="1", label="finance@staff.test")


@dataclass
class RecordsProvider(InMemoryProvider):
    """The withdrawal tests' in-process provider, with payments too and a switch to be unreachable."""

    key: str = KEY
    payments: list[ProviderPayment] = field(default_factory=list)
    down: bool = False

    async def list_payments(self, since: datetime) -> list[ProviderPayment]:
        if self.down:
            raise ProviderError("connection refused")
        return list(self.payments)


@pytest.fixture
async def provider(database):
    found = RecordsProvider()
    providers.register(found)
    return found


async def deposit_row(
    client_id: int, amount: str, status: str = "completed", *, payment_id: str = "", age_min: int = 60
) -> dict:
    """A deposit as the deposit service leaves it (the ledger side is not what this check reads)."""
    at = datetime.now(UTC) - timedelta(minutes=age_min)
    tx = None
    if status == "completed":
        from app.funding import ledger
        from tests.funding.support import deposit

        wallet = await ledger.wallet_for(client_id, "USD")
        assert wallet is not None
        tx = (await deposit(wallet, Decimal(amount))).id
    row = await db.fetchrow(
        "INSERT INTO funding_deposits (client_id, provider, kind, reference, amount, currency, credit_currency, "
        "credited_amount, status, provider_payment_id, transaction_id, created_at, updated_at) "
        "VALUES ($1, $2, 'card', $3, $4, 'USD', 'USD', $5, $6, $7, $8, $9, $9) RETURNING *",
        client_id, KEY, "D" + uuid.uuid4().hex[:10].upper(), Decimal(amount),
        Decimal(amount) if status == "completed" else None, status, payment_id, tx, at,
    )  # fmt: skip
    assert row is not None
    return dict(row)


def paid(
    payment_id: str, amount: str, reference: str = "", status: str = "succeeded", age_min: int = 60
) -> ProviderPayment:
    return ProviderPayment(
        payment_id, status, Decimal(amount), "USD", reference=reference,
        updated_at=datetime.now(UTC) - timedelta(minutes=age_min),
    )  # fmt: skip


async def check() -> list[dict]:
    return await reconcile_providers.check_providers()


async def test_nothing_is_reported_when_the_provider_and_the_ledger_agree(provider):
    client = await verified_client()
    await deposit_row(client.id, "100.00", payment_id="pay_1")
    provider.payments.append(paid("pay_1", "100.00"))
    assert await check() == []


async def test_a_payment_the_provider_took_without_a_deposit_of_ours_is_listed(provider):
    client = await verified_client()
    await deposit_row(client.id, "100.00", payment_id="pay_1")
    provider.payments += [paid("pay_1", "100.00"), paid("pay_2", "40.00", reference="DUNKNOWN")]
    (found,) = await check()
    assert found["kind"] == "payment_unknown" and found["expected"] == "40.00" and not found["in_flight"]
    assert "pay_2" in found["detail"]


async def test_a_credited_deposit_the_provider_never_received_is_listed_and_left_alone(provider):
    client = await verified_client()
    dep = await deposit_row(client.id, "75.00", payment_id="pay_9")
    (found,) = await check()
    assert (found["kind"], found["deposit_id"], found["found"]) == ("credited_not_paid", dep["id"], "75.00")
    row = await db.fetchrow("SELECT status FROM funding_deposits WHERE id = $1", dep["id"])
    assert row is not None and row["status"] == "completed"  # reported, never fixed


async def test_a_different_amount_is_listed_with_both_figures(provider):
    client = await verified_client()
    await deposit_row(client.id, "100.00", payment_id="pay_1")
    provider.payments.append(paid("pay_1", "90.00"))
    (found,) = await check()
    assert (found["kind"], found["expected"], found["found"]) == ("amount_differs", "90.00", "100.00")


async def test_a_paid_payment_whose_webhook_is_still_on_its_way_is_in_flight_not_a_difference(provider):
    client = await verified_client()
    await deposit_row(client.id, "100.00", "pending", payment_id="pay_1", age_min=2)
    provider.payments.append(paid("pay_1", "100.00", age_min=1))
    (found,) = await check()
    assert found["kind"] == "paid_not_credited" and found["in_flight"]
    run_id = await reconcile.run_reconciliation(FINANCE)
    run = await db.fetchrow("SELECT status FROM funding_reconciliation_runs WHERE id = $1", run_id)
    assert run is not None and run["status"] == "ok"


async def test_an_old_paid_payment_never_credited_is_a_difference(provider):
    client = await verified_client()
    await deposit_row(client.id, "100.00", "pending", payment_id="pay_1", age_min=120)
    provider.payments.append(paid("pay_1", "100.00", age_min=110))
    (found,) = await check()
    assert found["kind"] == "paid_not_credited" and not found["in_flight"]
    run_id = await reconcile.run_reconciliation(FINANCE)
    run = await db.fetchrow(
        "SELECT status, differences::text AS d FROM funding_reconciliation_runs WHERE id = $1", run_id
    )
    assert run is not None and run["status"] == "differences" and "paid_not_credited" in run["d"]


async def test_payouts_are_compared_both_ways(provider):
    client = await verified_client()
    w = await db.fetchrow(
        "INSERT INTO funding_withdrawals (client_id, provider, amount, requested_amount, currency, status, "
        "payout_reference, created_at, updated_at, paid_at) VALUES ($1, $2, 50, 50, 'USD', 'paid', 'po_1', "
        "now() - interval '1 hour', now() - interval '1 hour', now()) RETURNING id",
        client.id,
        KEY,
    )
    assert w is not None
    provider.payouts["withdrawal:x"] = PayoutResult("po_1", "paid", Decimal(50), "USD")
    assert await check() == []
    provider.payouts["withdrawal:x"] = replace(provider.payouts["withdrawal:x"], amount=Decimal(55))
    provider.payouts["withdrawal:y"] = PayoutResult("po_2", "paid", Decimal(20), "USD")
    kinds = sorted(f["kind"] for f in await check())
    assert kinds == ["amount_differs", "payout_unknown"]


async def test_a_provider_that_cannot_be_asked_fails_the_check_and_the_run_says_so(provider):
    client = await verified_client()
    await deposit_row(client.id, "10.00", payment_id="pay_1")
    provider.down = True
    with pytest.raises(RuntimeError, match="testrecon"):
        await check()
    run_id = await reconcile.run_reconciliation(FINANCE)
    run = await db.fetchrow("SELECT status, error FROM funding_reconciliation_runs WHERE id = $1", run_id)
    assert run is not None and run["status"] == "failed" and "providers" in run["error"]


async def test_a_wire_payout_finance_confirmed_is_not_listed_as_never_sent(provider):
    """Wire payouts have no record but finance's confirmation: there is nothing to compare them with."""
    client = await verified_client()
    await db.fetchrow(
        "INSERT INTO funding_withdrawals (client_id, provider, amount, requested_amount, currency, status, "
        "payout_reference, created_at, updated_at, paid_at) VALUES ($1, 'wire', 50, 50, 'USD', 'paid', "
        "'BANKREF1', now() - interval '1 hour', now() - interval '1 hour', now()) RETURNING id",
        client.id,
    )
    assert "wire" in [p.key for p in await reconcile_providers._providers_in_use()]
    assert await check() == []
