"""The double-entry ledger: balanced, immutable, idempotent, never below zero, and checked by
the database as well as by the service."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest

from app.core import db
from app.core.errors import NotFound
from app.funding import balances, holds, ledger
from app.funding.amounts import AlreadySettled, IdempotencyConflict, InsufficientFunds, LedgerError
from tests.funding.support import FINANCE, PROVIDER, deposit, funded_wallet, key, ledger_totals, new_client

D = Decimal


async def raw_connection() -> asyncpg.Connection:
    """A connection outside the service, as someone with psql would have."""
    return await asyncpg.connect(db.current_url())


async def test_a_balanced_deposit_posts_and_moves_both_balances(database):
    wallet = await funded_wallet(D(0))
    tx = await deposit(wallet, D("150.25"), reference="psp:1", memo="card deposit")
    clearing = await ledger.system_account("provider_clearing", "USD", PROVIDER)
    assert tx.kind == "deposit" and not tx.replayed and tx.reference == "psp:1"
    assert [(x.account_id, x.amount, x.balance_after) for x in tx.lines] == [
        (clearing, D("150.25"), D("150.25")),
        (wallet, D("-150.25"), D("150.25")),
    ]
    assert await balances.balance_of(wallet) == await balances.derived_balance(wallet) == D("150.25")
    assert await balances.balance_of(clearing) == await balances.derived_balance(clearing) == D("150.25")
    assert tx.created_by == "finance@staff.test"


async def test_an_unbalanced_transaction_is_refused_and_nothing_is_written(database):
    wallet = await funded_wallet(D(0))
    clearing = await ledger.system_account("provider_clearing", "USD", PROVIDER)
    with pytest.raises(LedgerError, match="do not balance"):
        await ledger.post(FINANCE, "deposit", [(clearing, D(100)), (wallet, D(-99))], idempotency_key=key())
    assert await db.fetchrow("SELECT count(*) AS n FROM funding_transactions") == {"n": 0}
    assert await balances.balance_of(wallet) == 0


async def test_postings_balanced_in_one_currency_but_not_in_another_are_refused(database):
    client = await new_client()
    usd, eur = await funded_wallet(D(100), "USD", client), await funded_wallet(D(0), "EUR", client)
    fx_usd, fx_eur = await ledger.system_account("fx", "USD"), await ledger.system_account("fx", "EUR")
    with pytest.raises(LedgerError, match="do not balance.*-1.00 EUR"):
        await ledger.post(
            FINANCE, "conversion", [(usd, D(100)), (fx_usd, D(-100)), (fx_eur, D(91)), (eur, D(-92))],
            idempotency_key=key(),
        )  # fmt: skip
    tx = await ledger.post(
        FINANCE, "conversion", [(usd, D(100)), (fx_usd, D(-100)), (fx_eur, D(92)), (eur, D(-92))],
        idempotency_key=key(), memo="rate 0.92",
    )  # fmt: skip
    assert len(tx.lines) == 4
    assert (await balances.balance_of(usd), await balances.balance_of(eur)) == (0, 92)


async def test_the_database_refuses_an_unbalanced_transaction_at_commit(database):
    wallet = await funded_wallet(D(0))
    clearing = await ledger.system_account("provider_clearing", "USD", PROVIDER)
    conn = await raw_connection()
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
            async with conn.transaction():
                tx = await conn.fetchval(
                    "INSERT INTO funding_transactions (kind, idempotency_key, fingerprint, created_by) "
                    "VALUES ('deposit', 'raw-1', '', 'psql') RETURNING id"
                )
                await conn.execute(
                    "INSERT INTO funding_postings (transaction_id, account_id, amount, currency, balance_after) "
                    "VALUES ($1, $2, 100, 'USD', 100), ($1, $3, -90, 'USD', 90)",
                    tx,
                    clearing,
                    wallet,
                )  # each statement is accepted: the check runs at commit
        with pytest.raises(asyncpg.CheckViolationError, match="has no postings"):
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO funding_transactions (kind, idempotency_key, fingerprint, created_by) "
                    "VALUES ('deposit', 'raw-2', '', 'psql')"
                )
    finally:
        await conn.close()
    assert await db.fetchrow("SELECT count(*) AS n FROM funding_postings") == {"n": 0}


async def test_the_database_refuses_a_transaction_balanced_only_across_currencies(database):
    client = await new_client()
    usd, eur = await funded_wallet(D(0), "USD", client), await funded_wallet(D(0), "EUR", client)
    conn = await raw_connection()
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
            async with conn.transaction():
                tx = await conn.fetchval(
                    "INSERT INTO funding_transactions (kind, idempotency_key, fingerprint, created_by) "
                    "VALUES ('adjustment', 'raw-3', '', 'psql') RETURNING id"
                )
                await conn.execute(
                    "INSERT INTO funding_postings (transaction_id, account_id, amount, currency, balance_after) "
                    "VALUES ($1, $2, 10, 'USD', 0), ($1, $3, -10, 'EUR', 10)",
                    tx,
                    usd,
                    eur,
                )
        with pytest.raises(asyncpg.ForeignKeyViolationError):  # a posting's currency is its account's
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO funding_postings (transaction_id, account_id, amount, currency, balance_after) "
                    "VALUES (1, $1, 10, 'EUR', 0)",
                    usd,
                )
    finally:
        await conn.close()


async def test_postings_and_transactions_cannot_be_updated_or_deleted(database):
    wallet = await funded_wallet(D(10))
    conn = await raw_connection()
    try:
        for sql in (
            "UPDATE funding_postings SET amount = amount * 2",
            "DELETE FROM funding_postings",
            "UPDATE funding_transactions SET memo = 'edited'",
            "DELETE FROM funding_transactions",
            "TRUNCATE funding_postings CASCADE",
        ):
            with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
                await conn.execute(sql)
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="never change"):
            await conn.execute("UPDATE funding_ledger_accounts SET currency = 'EUR' WHERE id = $1", wallet)
    finally:
        await conn.close()
    assert await balances.derived_balance(wallet) == 10


async def test_replaying_an_idempotency_key_returns_the_first_transaction(database):
    wallet = await funded_wallet(D(0))
    first = await deposit(wallet, D(40), idempotency_key="psp:evt_1")
    again = await deposit(wallet, D("40.00"), idempotency_key="psp:evt_1")
    assert again.replayed and again.id == first.id and again.lines == first.lines
    assert await balances.balance_of(wallet) == 40
    assert await db.fetchrow("SELECT count(*) AS n FROM funding_transactions") == {"n": 1}


async def test_the_same_key_with_different_content_is_refused(database):
    wallet = await funded_wallet(D(0))
    await deposit(wallet, D(40), idempotency_key="psp:evt_2")
    with pytest.raises(IdempotencyConflict, match="already used"):
        await deposit(wallet, D(41), idempotency_key="psp:evt_2")
    with pytest.raises(IdempotencyConflict):
        await deposit(wallet, D(40), idempotency_key="psp:evt_2", memo="other")
    assert await balances.balance_of(wallet) == 40


async def test_a_reversal_negates_the_postings_and_happens_only_once(database):
    wallet = await funded_wallet(D(0))
    original = await deposit(wallet, D(25), reference="psp:9")
    reversal = await ledger.reverse(FINANCE, original.id, "charged back by the issuer", "rev:1")
    assert (
        reversal.kind == "reversal" and reversal.reverses_id == original.id and reversal.reference == "psp:9"
    )
    assert [(x.account_id, x.amount) for x in reversal.lines] == [
        (x.account_id, -x.amount) for x in original.lines
    ]
    assert await balances.balance_of(wallet) == 0
    assert (await ledger.reverse(FINANCE, original.id, "charged back by the issuer", "rev:1")).replayed
    with pytest.raises(AlreadySettled, match="already reversed"):
        await ledger.reverse(FINANCE, original.id, "again", "rev:2")
    with pytest.raises(LedgerError, match="cannot be reversed"):
        await ledger.reverse(FINANCE, reversal.id, "undo the undo", "rev:3")
    with pytest.raises(LedgerError, match="why"):
        await ledger.reverse(FINANCE, original.id, "  ", "rev:4")
    with pytest.raises(NotFound):
        await ledger.reverse(FINANCE, 999_999, "nothing", "rev:5")


async def test_a_reversal_is_refused_when_the_wallet_no_longer_has_the_money(database):
    wallet = await funded_wallet(D(0))
    original = await deposit(wallet, D(25))
    fees = await ledger.system_account("fees", "USD")
    await ledger.transfer(FINANCE, "fee", debit=wallet, credit=fees, amount=D(10), idempotency_key=key())
    with pytest.raises(InsufficientFunds, match="15.00 USD available, 25.00 USD needed"):
        await ledger.reverse(FINANCE, original.id, "chargeback", key())
    assert await balances.balance_of(wallet) == 15


async def test_a_wallet_cannot_go_below_zero(database):
    wallet = await funded_wallet(D("10.50"))
    fees = await ledger.system_account("fees", "USD")
    with pytest.raises(InsufficientFunds, match="10.50 USD available, 10.51 USD needed"):
        await ledger.transfer(
            FINANCE, "fee", debit=wallet, credit=fees, amount=D("10.51"), idempotency_key=key()
        )
    await ledger.transfer(FINANCE, "fee", debit=wallet, credit=fees, amount=D("10.50"), idempotency_key=key())
    assert await balances.balance_of(wallet) == 0
    conn = await raw_connection()
    try:  # the check constraint stands behind the service
        with pytest.raises(asyncpg.CheckViolationError, match="client_not_negative"):
            await conn.execute("UPDATE funding_ledger_accounts SET balance = -1 WHERE id = $1", wallet)
    finally:
        await conn.close()


async def test_holds_reduce_the_available_funds_and_release_gives_them_back(database):
    wallet = await funded_wallet(D(100))
    held = await holds.hold(FINANCE, wallet, D(60), "wd:1", reference="withdrawal:1")
    assert (held.status, held.amount, held.reference) == ("held", D(60), "withdrawal:1")
    view = await balances.wallet_balance(wallet)
    assert (view.balance, view.held, view.available) == (D(100), D(60), D(40))
    with pytest.raises(InsufficientFunds, match="40.00 USD available, 50.00 USD needed"):
        await holds.hold(FINANCE, wallet, D(50), "wd:2")
    assert (await holds.hold(FINANCE, wallet, D(60), "wd:1", reference="withdrawal:1")).id == held.id
    assert [h.id for h in await holds.open_holds(wallet)] == [held.id]
    released = await holds.release(FINANCE, held.id, "wd:1:reject", reason="card expired")
    assert released.status == "released" and released.settle_transaction_id
    view = await balances.wallet_balance(wallet)
    assert (view.balance, view.held, view.available) == (D(100), D(0), D(100))
    assert await holds.open_holds(wallet) == []


async def test_a_capture_pays_the_held_funds_out_and_can_release_the_rest(database):
    wallet = await funded_wallet(D(100))
    clearing = await ledger.system_account("provider_clearing", "USD", PROVIDER)
    first = await holds.hold(FINANCE, wallet, D(30), key())
    paid = await holds.capture(FINANCE, first.id, clearing, "payout:1")
    assert paid.status == "captured"
    second = await holds.hold(FINANCE, wallet, D(50), key())
    await holds.capture(FINANCE, second.id, clearing, "payout:2", amount=D(45))  # staff lowered the amount
    view = await balances.wallet_balance(wallet)
    assert (view.balance, view.held, view.available) == (D(25), D(0), D(25))
    assert await balances.balance_of(clearing) == D(100) - D(30) - D(45)
    with pytest.raises(LedgerError, match="Between 0 and 20.00 USD"):
        third = await holds.hold(FINANCE, wallet, D(20), key())
        await holds.capture(FINANCE, third.id, clearing, key(), amount=D(50))


async def test_a_settled_hold_cannot_be_settled_again_but_a_retry_gets_the_same_answer(database):
    wallet = await funded_wallet(D(100))
    clearing = await ledger.system_account("provider_clearing", "USD", PROVIDER)
    held = await holds.hold(FINANCE, wallet, D(30), key())
    paid = await holds.capture(FINANCE, held.id, clearing, "payout:7")
    retry = await holds.capture(FINANCE, held.id, clearing, "payout:7")
    assert retry.replayed and retry.settle_transaction_id == paid.settle_transaction_id
    with pytest.raises(AlreadySettled, match="already captured"):
        await holds.release(FINANCE, held.id, "reject:7")
    with pytest.raises(AlreadySettled, match="already captured"):
        await holds.capture(FINANCE, held.id, clearing, "payout:8")
    assert (await balances.wallet_balance(wallet)).balance == 70


async def test_held_funds_move_only_through_their_hold(database):
    wallet = await funded_wallet(D(100))
    held = await holds.hold(FINANCE, wallet, D(30), key())
    hold_account = (await ledger.get_account(wallet)).id + 1
    assert (await ledger.get_account(hold_account)).kind == "client_hold"
    with pytest.raises(LedgerError, match="only by releasing or capturing"):
        await ledger.transfer(FINANCE, "adjustment", debit=hold_account, credit=wallet, amount=D(30),
                              idempotency_key=key())  # fmt: skip
    with pytest.raises(LedgerError, match="releasing it, not by a reversal"):
        await ledger.reverse(FINANCE, held.hold_transaction_id, "oops", key())


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        (10.5, "USD", "exact decimals, not float"),
        ("10", "USD", "exact decimals, not str"),
        (D("10.005"), "USD", "at most 2 decimals"),
        (D("1.5"), "JPY", "whole units"),
        (D("0.000000001"), "BTC", "at most 8 decimals"),
        (D(0), "USD", "must be positive"),
        (D(-5), "USD", "must be positive"),
        (D("NaN"), "USD", "must be"),
    ],
)
async def test_bad_amounts_are_refused_with_a_message_for_people(database, amount, currency, message):
    wallet = await funded_wallet(D(0), currency)
    clearing = await ledger.system_account("provider_clearing", currency, PROVIDER)
    with pytest.raises(LedgerError, match=message) as caught:
        await ledger.transfer(FINANCE, "deposit", debit=clearing, credit=wallet, amount=amount,
                              idempotency_key=key())  # fmt: skip
    assert caught.value.errors == {"amount": caught.value.message}


async def test_unknown_currencies_and_foreign_currency_postings_are_refused(database):
    client = await new_client()
    with pytest.raises(LedgerError, match="Unknown currency 'XYZ'"):
        await ledger.wallet_for(client, "XYZ")
    usd, eur = await funded_wallet(D(10), "USD", client), await funded_wallet(D(0), "EUR", client)
    with pytest.raises(LedgerError, match="do not balance"):  # one USD and one EUR line never balance
        await ledger.transfer(FINANCE, "transfer", debit=usd, credit=eur, amount=D(5), idempotency_key=key())
    assert (await ledger.get_account(usd)).currency == "USD"
    assert await ledger.wallet_for(client, "usd") == usd


async def test_the_trading_account_ledger_account_mirrors_transfers_both_ways(database):
    from tests.funding.support import trading_account

    client = await new_client()
    wallet = await funded_wallet(D(500), "USD", client)
    account = await ledger.account_for_trading(await trading_account(client))
    assert account == await ledger.account_for_trading(await db_trading_id(account))
    await ledger.transfer(
        FINANCE, "transfer", debit=wallet, credit=account, amount=D(200), idempotency_key=key()
    )
    await ledger.transfer(
        FINANCE, "transfer", debit=account, credit=wallet, amount=D(50), idempotency_key=key()
    )
    assert (await balances.balance_of(wallet), await balances.balance_of(account)) == (D(350), D(150))
    assert (await ledger.get_account(account)).client_id == client


async def db_trading_id(account_id: int) -> int:
    return (await ledger.get_account(account_id)).trading_account_id or 0


async def test_wallet_for_opens_one_wallet_per_client_and_currency(database):
    import asyncio

    client = await new_client()
    ids = await asyncio.gather(*(ledger.wallet_for(client, "EUR") for _ in range(4)))
    assert len(set(ids)) == 1
    assert await ledger.wallet_for(client, "GBP", create=False) is None
    rows = await db.fetch("SELECT kind FROM funding_ledger_accounts WHERE client_id = {} ORDER BY id", client)
    assert [r["kind"] for r in rows] == ["client_wallet", "client_hold"]


async def test_a_refusal_inside_a_callers_transaction_writes_nothing_and_the_caller_goes_on(database):
    wallet = await funded_wallet(D(20))
    fees = await ledger.system_account("fees", "USD")
    async with db.transaction():
        with pytest.raises(InsufficientFunds):
            await ledger.transfer(
                FINANCE, "fee", debit=wallet, credit=fees, amount=D(30), idempotency_key="f:1"
            )
        await ledger.transfer(FINANCE, "fee", debit=wallet, credit=fees, amount=D(5), idempotency_key="f:2")
    assert await balances.balance_of(wallet) == 15
    assert [
        r["idempotency_key"] for r in await db.fetch("SELECT idempotency_key FROM funding_transactions")
    ] == [
        await _deposit_key(wallet),
        "f:2",
    ]


async def _deposit_key(wallet: int) -> str:
    rows = await db.fetch("SELECT idempotency_key FROM funding_transactions WHERE kind = 'deposit'")
    return rows[0]["idempotency_key"]


async def test_a_rolled_back_caller_takes_the_posting_with_it(database):
    wallet = await funded_wallet(D(20))
    fees = await ledger.system_account("fees", "USD")
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await ledger.transfer(
                FINANCE, "fee", debit=wallet, credit=fees, amount=D(5), idempotency_key="f:3"
            )
            raise RuntimeError("the caller failed after posting")
    assert await balances.balance_of(wallet) == 20
    assert (await ledger.transfer(FINANCE, "fee", debit=wallet, credit=fees, amount=D(5),
                                  idempotency_key="f:3")).replayed is False  # fmt: skip


async def test_each_transaction_and_hold_is_audited_with_its_postings(database):
    wallet = await funded_wallet(D(100))
    held = await holds.hold(FINANCE, wallet, D(10), key())
    await holds.release(FINANCE, held.id, key(), reason="client cancelled")
    rows = await db.fetch("SELECT action, subject_id, after FROM audit_events ORDER BY seq")
    assert [r["action"] for r in rows if r["action"].startswith("funding.")] == [
        "funding.transaction.posted",
        "funding.hold.placed",
        "funding.hold.released",
    ]
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}
