"""Hypothesis drives random sequences of deposits, withdrawal requests, approvals, rejections,
transfers to and from a trading account, retries and reversals through the ledger services, and
checks after every step what must always hold: every transaction sums to zero per currency, each
cached balance equals the sum of its postings, no client wallet (or hold) is below zero, and
available = balance − held ≥ 0 — plus that the ledger agrees with a plain Python model.

Withdrawals also run through the withdrawal services (request → approvals by officers picked at
random, possibly the same one twice → reject or payout through an in-process provider), with the
invariant that nothing is ever paid out without the required number of distinct approvers.

The services are async and the machine is not: each machine runs its steps on an event loop of its
own, with its own small pool on a database copied from the migrated template (one per test).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

import tests.conftest as harness
from app.core import db
from app.core.errors import FormErrors
from app.funding import approvals, balances, holds, ledger, payouts, withdrawals
from app.funding.amounts import AlreadySettled, InsufficientFunds
from app.funding.withdrawals import WithdrawalRefused
from app.settings import use_settings
from tests.funding.support import FINANCE, PROVIDER, ledger_totals, new_client, trading_account
from tests.funding.withdraw_support import (
    PROVIDER as PAYOUT_PROVIDER,
)
from tests.funding.withdraw_support import (
    actor_of,
    install_provider,
    officer,
    wire_method,
)

T = TypeVar("T")
CURRENCIES = ("USD", "EUR")
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("300"), places=2)
small_amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("150"), places=2)
who = st.integers(min_value=0, max_value=1)


@pytest.fixture
def ledger_db(pg_server: str, template_db: str) -> Iterator[str]:
    """A fresh migrated database, without the per-test pool (each machine starts its own)."""
    name = f"fxcrm_t_{uuid.uuid4().hex[:10]}"
    harness._admin(pg_server, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    url = harness.with_database(pg_server, name)
    db.configure(url)
    use_settings(harness.test_settings(url))
    harness.forget_process_caches()
    try:
        yield url
    finally:
        harness._admin(pg_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class LedgerMachine(RuleBasedStateMachine):
    holds = Bundle("holds")
    reversible = Bundle("reversible")
    requests = Bundle("withdrawals")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.run(db.start_pool(min_size=1, max_size=2))
        self.expected: dict[int, Decimal] = {}  # account → normal-side balance, per the model
        self.effects: dict[int, dict[int, Decimal]] = {}  # transaction → its effect on balances
        self.open_holds: dict[int, tuple[int, int, Decimal]] = {}  # hold → (wallet, hold account, amount)
        self.reversed: set[int] = set()
        self.run(self._open_accounts())

    async def _open_accounts(self) -> None:
        self.wallets: dict[tuple[int, str], int] = {}
        self.hold_accounts: dict[int, int] = {}
        self.trading: dict[int, int] = {}
        for n in range(2):
            client = await new_client()
            for currency in CURRENCIES:
                wallet = await ledger.wallet_for(client, currency)
                assert wallet is not None
                self.wallets[n, currency] = wallet
                self.hold_accounts[wallet] = await _hold_account(wallet)
            account = await ledger.account_for_trading(await trading_account(client, "USD"))
            assert account is not None
            self.trading[n] = account
        self.clearing = {c: await ledger.system_account("provider_clearing", c, PROVIDER) for c in CURRENCIES}
        for account in [*self.wallets.values(), *self.hold_accounts.values(), *self.trading.values()]:
            self.expected[account] = Decimal(0)
        for account in self.clearing.values():
            self.expected[account] = await balances.balance_of(account)  # shared across machines
        await self._open_withdrawals()

    async def _open_withdrawals(self) -> None:
        """Verified clients (KYC level 2), three finance officers, a payout method in both
        currencies and a provider that keeps its payouts; two approvers above 100 USD (and for EUR,
        which has no rate)."""
        self.provider = install_provider()
        self.clients = {}
        for (n, _currency), wallet in self.wallets.items():
            account = await ledger.get_account(wallet)
            self.clients[n] = account.client_id
        for client_id in self.clients.values():
            await db.fetchrow(
                "INSERT INTO kyc_profiles (client, entity_type, level, nationality, address, source_of_funds, "
                "updated_at) VALUES ($1, 'individual', 2, '', '', '', now()) ON CONFLICT (client) DO UPDATE SET level = 2",
                client_id,
            )
        self.officers = [await officer() for _ in range(3)]
        self.destination = await wire_method("USD,EUR")
        await db.fetchrow(
            "UPDATE funding_policy SET dual_approval_over = 100, policy_currency = 'USD' WHERE id = 1"
        )
        self.payout_clearing = {
            c: await ledger.system_account("provider_clearing", c, PAYOUT_PROVIDER) for c in CURRENCIES
        }
        for account in self.payout_clearing.values():
            self.expected[account] = await balances.balance_of(account)
        self.requested: dict[int, dict[str, Any]] = {}  # withdrawal → the model's view of it

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(db.close_pool())
        self.loop.close()

    def apply(self, tx: int, effect: dict[int, Decimal]) -> None:
        self.effects[tx] = effect
        for account, delta in effect.items():
            self.expected[account] += delta

    def available(self, wallet: int) -> Decimal:
        return self.expected[wallet]

    # --- rules ------------------------------------------------------------------------------------

    @rule(target=reversible, n=who, currency=st.sampled_from(CURRENCIES), amount=amounts, retry=st.booleans())
    def deposit(self, n: int, currency: str, amount: Decimal, retry: bool) -> int:
        wallet, clearing = self.wallets[n, currency], self.clearing[currency]
        key = f"dep:{uuid.uuid4().hex}"
        call = ledger.transfer  # a webhook delivered twice must not credit twice
        tx = self.run(
            call(FINANCE, "deposit", debit=clearing, credit=wallet, amount=amount, idempotency_key=key)
        )
        if retry:
            again = self.run(
                call(FINANCE, "deposit", debit=clearing, credit=wallet, amount=amount, idempotency_key=key)
            )
            assert again.replayed and again.id == tx.id
        self.apply(tx.id, {clearing: amount, wallet: amount})
        return tx.id

    @rule(target=holds, n=who, currency=st.sampled_from(CURRENCIES), amount=amounts)
    def request_withdrawal(self, n: int, currency: str, amount: Decimal) -> Any:
        wallet = self.wallets[n, currency]
        try:
            held = self.run(holds.hold(FINANCE, wallet, amount, f"wd:{uuid.uuid4().hex}"))
        except InsufficientFunds:
            assert amount > self.available(wallet)
            return multiple()
        assert amount <= self.available(wallet)
        hold_account = self.hold_accounts[wallet]
        self.apply(held.hold_transaction_id, {wallet: -amount, hold_account: amount})
        self.open_holds[held.id] = (wallet, hold_account, amount)
        return held.id

    @rule(hold=consumes(holds))
    def approve(self, hold: int) -> None:
        wallet, hold_account, amount = self.open_holds.pop(hold)
        clearing = self.clearing[self.currency_of(wallet)]
        paid = self.run(holds.capture(FINANCE, hold, clearing, f"pay:{hold}"))
        assert paid.status == "captured"
        assert paid.settle_transaction_id is not None
        self.apply(paid.settle_transaction_id, {hold_account: -amount, clearing: -amount})

    @rule(hold=consumes(holds))
    def reject(self, hold: int) -> None:
        wallet, hold_account, amount = self.open_holds.pop(hold)
        released = self.run(holds.release(FINANCE, hold, f"rej:{hold}", reason="rejected by finance"))
        assert released.status == "released" and released.settle_transaction_id is not None
        with pytest.raises(AlreadySettled):
            self.run(holds.capture(FINANCE, hold, self.clearing[self.currency_of(wallet)], f"late:{hold}"))
        self.apply(released.settle_transaction_id, {hold_account: -amount, wallet: amount})

    @rule(target=reversible, n=who, amount=amounts, to_trading=st.booleans())
    def transfer(self, n: int, amount: Decimal, to_trading: bool) -> Any:
        wallet, account = self.wallets[n, "USD"], self.trading[n]
        debit, credit = (wallet, account) if to_trading else (account, wallet)
        try:
            tx = self.run(
                ledger.transfer(FINANCE, "transfer", debit=debit, credit=credit, amount=amount,
                                idempotency_key=f"tr:{uuid.uuid4().hex}")
            )  # fmt: skip
        except InsufficientFunds:
            assert to_trading and amount > self.available(wallet)
            return multiple()
        assert not to_trading or amount <= self.available(wallet)
        self.apply(tx.id, {debit: -amount, credit: amount})
        return tx.id

    @rule(tx=reversible)
    def reverse(self, tx: int) -> None:
        effect = {account: -delta for account, delta in self.effects[tx].items()}
        short = any(self.expected[a] + d < 0 for a, d in effect.items() if a in self.wallets.values())
        try:
            reversal = self.run(ledger.reverse(FINANCE, tx, "test reversal", f"rev:{uuid.uuid4().hex}"))
        except AlreadySettled:
            assert tx in self.reversed
            return
        except InsufficientFunds:
            assert short and tx not in self.reversed
            return
        assert tx not in self.reversed and not short
        self.reversed.add(tx)
        self.apply(reversal.id, effect)

    # --- withdrawals through the services ------------------------------------------------------------

    @rule(target=requests, n=who, currency=st.sampled_from(CURRENCIES), amount=small_amounts)
    def request_service_withdrawal(self, n: int, currency: str, amount: Decimal) -> Any:
        from app.core.auth.principal import Principal

        wallet = self.wallets[n, currency]
        client = Principal("client", self.clients[n], f"c{n}@client.test", "Client", 0, True, False)
        try:
            w = self.run(
                withdrawals.request_withdrawal(
                    actor_of(client), client, source="wallet", amount=amount, currency=currency,
                    destination=self.destination, idempotency_key=f"wd:{uuid.uuid4().hex}",
                )
            )  # fmt: skip
        except WithdrawalRefused:
            assert amount > self.available(wallet)
            return multiple()
        assert amount <= self.available(wallet)
        required = 2 if currency == "EUR" or amount > 100 else 1
        assert w["approvals_required"] == required and w["status"] == "requested"
        hold = self.run(holds.get_hold(w["hold_id"]))
        hold_account = self.hold_accounts[wallet]
        self.apply(hold.hold_transaction_id, {wallet: -amount, hold_account: amount})
        self.open_holds[hold.id] = (wallet, hold_account, amount)
        self.requested[w["id"]] = {
            "wallet": wallet, "hold": hold.id, "amount": amount, "currency": currency,
            "required": required, "approvers": [], "status": "requested",
        }  # fmt: skip
        return w["id"]

    @rule(
        wid=requests, officers=st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=3),
        then_pay=st.booleans(),
    )  # fmt: skip
    def approve_withdrawal(self, wid: int, officers: list[int], then_pay: bool) -> None:
        """Officers approve one after the other; the same one twice, or after the last step, is refused.
        `then_pay`: the payout job runs right after (it pays only what is fully approved)."""
        model = self.requested[wid]
        for n in officers:
            staff = self.officers[n]
            allowed = model["status"] == "requested" and staff.id not in model["approvers"]
            try:
                after = self.run(approvals.approve(staff, wid, actor_of(staff)))
            except FormErrors:
                assert not allowed
                continue
            assert allowed
            model["approvers"].append(staff.id)
            if len(model["approvers"]) == model["required"]:
                model["status"] = "approved"
            assert after["status"] == model["status"]
        if then_pay:
            self.pay_out_withdrawal(wid)

    @rule(wid=requests)
    def reject_withdrawal(self, wid: int) -> None:
        model = self.requested[wid]
        staff = self.officers[0]
        try:
            self.run(approvals.reject(staff, wid, "not this time", actor_of(staff)))
        except FormErrors:
            assert model["status"] not in ("requested", "approved")
            return
        assert model["status"] in ("requested", "approved")
        model["status"] = "rejected"
        wallet, hold_account, amount = self.open_holds.pop(model["hold"])
        released = self.run(holds.get_hold(model["hold"]))
        assert released.settle_transaction_id is not None
        self.apply(released.settle_transaction_id, {hold_account: -amount, wallet: amount})

    @rule(wid=requests)
    def pay_out_withdrawal(self, wid: int) -> None:
        model = self.requested[wid]
        outcome = self.run(payouts.pay_out(wid))
        if model["status"] != "approved":
            assert outcome == model["status"]
            return
        assert outcome == "paid"
        model["status"] = "paid"
        wallet, hold_account, amount = self.open_holds.pop(model["hold"])
        paid = self.run(holds.get_hold(model["hold"]))
        assert paid.settle_transaction_id is not None
        clearing = self.payout_clearing[model["currency"]]
        self.apply(paid.settle_transaction_id, {hold_account: -amount, clearing: -amount})

    @invariant()
    def no_payout_without_the_required_distinct_approvers(self) -> None:
        for key in self.provider.payouts:
            wid = int(key.removeprefix("withdrawal:"))
            if wid not in self.requested:
                continue  # another machine's
            model = self.requested[wid]
            assert len(set(model["approvers"])) >= model["required"]
            rows = self.run(withdrawals.approvals_of(wid))
            assert len({r["staff_user_id"] for r in rows}) >= model["required"]
            assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))
        for wid, model in self.requested.items():
            if model["status"] == "paid":
                assert f"withdrawal:{wid}" in self.provider.payouts

    def currency_of(self, wallet: int) -> str:
        return next(c for (_, c), w in self.wallets.items() if w == wallet)

    # --- invariants -------------------------------------------------------------------------------

    @invariant()
    def the_ledger_balances_and_matches_the_model(self) -> None:
        # every transaction sums to zero per currency; caches equal their postings; no client below 0
        assert self.run(ledger_totals()) == {"unbalanced": 0, "stale": 0, "negative": 0}
        for (n, currency), wallet in self.wallets.items():
            view = self.run(balances.wallet_balance(wallet))
            assert view.available == view.balance - view.held >= 0
            assert view.held >= 0
            assert view.available == self.expected[wallet], (n, currency)
            assert view.held == self.expected[self.hold_accounts[wallet]]
            assert view.held == sum((a for w, _, a in self.open_holds.values() if w == wallet), Decimal(0))
        for account in [*self.trading.values(), *self.clearing.values(), *self.payout_clearing.values()]:
            assert self.run(balances.balance_of(account)) == self.expected[account]


async def _hold_account(wallet: int) -> int:
    from app.funding.accounts import hold_account_of

    return await hold_account_of(wallet)


def test_the_ledger_keeps_its_invariants_through_any_sequence_of_operations(ledger_db):
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=40,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
