"""A charge, correction or bonus dealing posts on a trading account reaches the ledger when the
trading server confirms it, once, balanced; MT5 credit (the broker's margin loan) does not."""

from __future__ import annotations

from decimal import Decimal

from app.core import db
from app.funding import balances, ledger
from app.trading import operation_views, operations
from tests.personas import principal_of
from tests.trading import ops_support
from tests.trading.ops_support import open_account

ops_server = ops_support.ops_server  # the fixture: a server with a short timeout on a simulator


async def post(personas, account: dict, data: dict) -> operations.BalanceOperationResult:
    viewer = principal_of(personas["finance"])
    return await operation_views.post_operation(viewer, viewer.actor(), account["id"], data)


async def booked(op_id: str) -> list[dict]:
    return await db.fetch(
        "SELECT t.kind, p.account_id AS ledger_account, p.amount FROM funding_transactions t "
        "JOIN funding_postings p ON p.transaction_id = t.id WHERE t.idempotency_key = {} ORDER BY p.amount",
        f"mt5op:{op_id}",
    )


async def test_a_confirmed_charge_is_booked_as_fee_income_against_the_trading_account(personas, ops_server):
    account = await open_account(ops_server)
    result = await post(personas, account, {"type": "4", "amount": "-50", "reason": "Inactivity fee"})
    assert result.status == "done"
    trading = await ledger.account_for_trading(account["id"])
    fees = await ledger.system_account("fees", "USD")
    lines = await booked(result.op_id)
    assert {r["kind"] for r in lines} == {"fee"}
    assert sum(r["amount"] for r in lines) == 0
    assert {(r["ledger_account"], r["amount"]) for r in lines} == {
        (trading, Decimal(50)),
        (fees, Decimal(-50)),
    }
    assert await balances.balance_of(fees) == Decimal(50)  # income, on its credit side
    assert await balances.balance_of(trading) == Decimal(-50)  # owed to the client: 50 less
    assert await balances.derived_balance(trading) == await balances.balance_of(trading)


async def test_a_correction_goes_to_suspense_and_settling_again_books_nothing_more(personas, ops_server):
    account = await open_account(ops_server)
    result = await post(personas, account, {"type": "5", "amount": "12.50", "reason": "Swap correction"})
    assert result.status == "done"
    assert len(await booked(result.op_id)) == 2
    again = await operations.resolve_operation(result.op_id)
    assert again.status == "done"
    assert len(await booked(result.op_id)) == 2
    suspense = await ledger.system_account("suspense", "USD")
    assert await balances.derived_balance(suspense) == await balances.balance_of(suspense)


async def test_mt5_credit_is_not_client_money_and_is_not_booked(personas, ops_server):
    account = await open_account(ops_server)
    result = await post(personas, account, {"type": "3", "amount": "40", "reason": "Credit line agreed"})
    assert result.status == "done"
    assert await booked(result.op_id) == []


async def test_a_refused_operation_books_nothing(personas, ops_server):
    account = await open_account(ops_server, deposit=Decimal(10))
    result = await post(
        personas, account, {"type": "4", "amount": "-500", "reason": "Fee larger than the balance"}
    )
    assert result.status == "failed"
    assert await booked(result.op_id) == []
