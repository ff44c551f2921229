"""Reconciliation: the ledger recomputed from its postings, every difference reported for
finance and nothing fixed behind anyone's back."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from app.core import db, jobs
from app.core.audit import Actor
from app.funding import balances, holds, reconcile
from tests.funding.support import FINANCE, funded_wallet

D = Decimal
ROBOT = Actor.system("funding reconciliation")


async def test_a_clean_ledger_reconciles_without_differences(database):
    wallet = await funded_wallet(D(100))
    held = await holds.hold(FINANCE, wallet, D(40), "wd:1")
    await holds.release(FINANCE, held.id, "wd:1:no")
    report = await reconcile.reconcile_balances()
    assert report.ok
    assert (report.accounts_checked, report.postings_checked) == (3, 6)  # wallet, its hold, clearing


async def test_reconciliation_finds_a_corrupted_cached_balance_and_leaves_it_as_found(database):
    wallet = await funded_wallet(D(100))
    other = await funded_wallet(D(5))
    await db.fetch(
        "UPDATE funding_ledger_accounts SET balance = 130 WHERE id = {}", wallet
    )  # behind the service
    report = await reconcile.reconcile_balances()
    assert [(d.check, d.account_id, d.expected, d.found) for d in report.differences] == [
        ("balance", wallet, D(100), D(130))
    ]
    assert "client_wallet" in report.differences[0].detail
    assert await balances.balance_of(wallet) == 130  # reported, not fixed
    assert await balances.derived_balance(wallet) == 100
    assert await balances.balance_of(other) == 5


async def test_reconciliation_finds_a_hold_account_that_disagrees_with_its_open_holds(database):
    wallet = await funded_wallet(D(100))
    held = await holds.hold(FINANCE, wallet, D(40), "wd:2")
    await db.fetch("UPDATE funding_holds SET amount = 30 WHERE id = {}", held.id)
    report = await reconcile.reconcile_balances()
    assert [(d.check, d.expected, d.found) for d in report.differences] == [("holds", D(30), D(40))]


async def test_a_run_is_stored_for_finance_with_external_checks_and_their_failures(database, monkeypatch):
    wallet = await funded_wallet(D(100))
    await db.fetch("UPDATE funding_ledger_accounts SET balance = 99 WHERE id = {}", wallet)
    monkeypatch.setattr(reconcile, "_external", {})

    @reconcile.external_check("mt5")
    async def mt5() -> list[dict]:
        return [
            {"account_id": 7, "currency": "USD", "expected": "10", "found": "12", "detail": "MT5 says 12"}
        ]

    @reconcile.external_check("testpay")
    async def provider() -> list[dict]:
        raise ConnectionError("provider unreachable")

    run_id = await reconcile.run_reconciliation(ROBOT)
    row = await db.fetchrow("SELECT * FROM funding_reconciliation_runs WHERE id = $1", run_id)
    assert row is not None
    assert row["status"] == "failed" and "testpay: provider unreachable" in row["error"]
    assert row["finished_at"] is not None and row["accounts_checked"] == 3
    found = json.loads(row["differences"])
    assert [d["check"] for d in found] == ["balance", "mt5"]
    assert found[0] == {
        "check": "balance", "currency": "USD", "expected": "100", "found": "99", "account_id": wallet,
        "detail": "client_wallet: cached balance differs from its postings by -1",
    }  # fmt: skip
    audit = await db.fetchrow("SELECT action, after FROM audit_events ORDER BY seq DESC LIMIT 1")
    assert audit is not None and audit["action"] == "funding.reconciliation.run"


async def test_the_daily_job_is_scheduled_and_records_an_ok_run(database):
    from app.funding import jobs as funding_jobs

    jobs.load_job_modules()
    assert any(c.function is funding_jobs.funding_reconcile_daily for c in jobs._crons)
    await funded_wallet(D(10))
    run_id = await funding_jobs.funding_reconcile_daily({})
    row = await db.fetchrow(
        "SELECT status, differences FROM funding_reconciliation_runs WHERE id = $1", run_id
    )
    assert row is not None and row["status"] == "ok" and json.loads(row["differences"]) == []


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (D("10.50"), "usd", D("10.50")),
        (D("10.500"), "EUR", D("10.50")),
        (7, "JPY", D(7)),
        (D("0.00000001"), "BTC", None),
    ],
)
def test_check_amount_accepts_exact_amounts_in_the_currency_minor_units(amount, currency, expected):
    from app.funding.amounts import check_amount

    assert check_amount(amount, currency) == (expected if expected is not None else amount)
