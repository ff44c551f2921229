"""Many requests on one wallet at the same moment, each on its own connection and transaction:
the row lock and the check constraint let exactly as many through as the money allows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal

import pytest

from app.core import db
from app.funding import balances, holds, ledger
from app.funding.amounts import InsufficientFunds
from tests.funding.support import FINANCE, funded_wallet, ledger_totals, new_client, trading_account

D = Decimal
N = 50


@pytest.fixture
async def wide_pool(database):
    """One pooled connection per concurrent request (the per-test pool has five)."""
    await db.close_pool()
    await db.start_pool(min_size=N, max_size=N + 2)
    yield database


async def all_at_once(calls: list[Callable[[], Awaitable[object]]]) -> list[object]:
    """Start every call, then release them together once each holds its own connection."""
    gate = asyncio.Event()

    async def one(call: Callable[[], Awaitable[object]]) -> object:
        async with db.transaction():  # its own connection, acquired before the gate opens
            await gate.wait()
            try:
                return await call()
            except InsufficientFunds as exc:
                return exc

    tasks = [asyncio.create_task(one(c)) for c in calls]
    await asyncio.sleep(0.2)
    gate.set()
    return await asyncio.gather(*tasks)


async def test_fifty_simultaneous_withdrawals_on_one_wallet_never_overdraw_it(wide_pool):
    wallet = await funded_wallet(D(170))  # enough for 17 withdrawals of 10
    results = await all_at_once(
        [
            lambda i=i: holds.hold(FINANCE, wallet, D(10), f"wd:{i}", reference=f"withdrawal:{i}")
            for i in range(N)
        ]
    )
    succeeded = [r for r in results if isinstance(r, holds.HoldInfo)]
    refused = [r for r in results if isinstance(r, InsufficientFunds)]
    assert (len(succeeded), len(refused)) == (17, 33)
    view = await balances.wallet_balance(wallet)
    assert (view.available, view.held, view.balance) == (D(0), D(170), D(170))
    assert await balances.derived_balance(wallet) == await balances.balance_of(wallet) == 0
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}
    assert "0.00 USD available, 10.00 USD needed" in refused[-1].message


async def test_withdrawals_racing_transfers_and_fees_share_the_same_money_exactly(wide_pool):
    client = await new_client()
    wallet = await funded_wallet(D(170), "USD", client)
    account = await ledger.account_for_trading(await trading_account(client))
    fees = await ledger.system_account("fees", "USD")
    assert account is not None
    calls: list[Callable[[], Awaitable[object]]] = []
    for i in range(N):
        if i % 3 == 0:
            calls.append(lambda i=i: holds.hold(FINANCE, wallet, D(10), f"wd:{i}"))
        elif i % 3 == 1:
            calls.append(lambda i=i: ledger.transfer(
                FINANCE, "transfer", debit=wallet, credit=account, amount=D(10), idempotency_key=f"tr:{i}"))  # fmt: skip
        else:
            calls.append(lambda i=i: ledger.transfer(
                FINANCE, "fee", debit=wallet, credit=fees, amount=D(10), idempotency_key=f"fee:{i}"))  # fmt: skip
    results = await all_at_once(calls)
    assert sum(1 for r in results if not isinstance(r, InsufficientFunds)) == 17
    assert await balances.balance_of(wallet) == 0
    moved = await balances.balance_of(account) + await balances.balance_of(fees)
    held = (await balances.wallet_balance(wallet)).held
    assert moved + held == D(170)
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}


async def test_the_same_request_sent_fifty_times_at_once_posts_once(wide_pool):
    wallet = await funded_wallet(D(100))
    fees = await ledger.system_account("fees", "USD")
    results = await all_at_once(
        [
            lambda: ledger.transfer(
                FINANCE, "fee", debit=wallet, credit=fees, amount=D(7), idempotency_key="dbl"
            )
            for _ in range(N)
        ]
    )
    posted = [r for r in results if isinstance(r, ledger.Posted)]
    assert len(posted) == N and len({p.id for p in posted}) == 1
    assert sum(1 for p in posted if not p.replayed) == 1
    assert await balances.balance_of(wallet) == 93
