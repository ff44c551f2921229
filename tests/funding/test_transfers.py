"""Transfers between a wallet and trading accounts against the real MT5 simulator: the ledger
follows what MT5 did, a refusal books nothing, a double submit makes one transfer."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from app.core import db
from app.core.errors import NotFound
from app.funding import transfers
from app.funding.amounts import IdempotencyConflict, InsufficientFunds, LedgerError
from app.trading import operations
from tests.funding.support import ledger_totals
from tests.funding.transfer_support import (
    account_ledger,
    client_actor,
    fund,
    key,
    mt5_balance,
    mt5_deals,
    new_client,
    open_live,
    transfer_row,
    wallet,
)
from tests.trading.conftest import Sim


async def funded_with_account(server_id: int, amount: str = "1000") -> tuple[int, dict]:
    client = await new_client()
    await fund(client.id, Decimal(amount))
    return client.id, await open_live(server_id, client.id)


async def assert_books_match_mt5(server_id: int, account: dict) -> None:
    assert await account_ledger(account["id"]) == await mt5_balance(server_id, account["login"])
    totals = await ledger_totals()
    assert (totals["unbalanced"], totals["stale"], totals["negative"]) == (0, 0, 0)


async def test_money_moved_from_the_wallet_arrives_on_the_trading_account_and_in_the_ledger(ops_server):
    client_id, account = await funded_with_account(ops_server)
    t = await transfers.wallet_to_account(
        client_actor(client_id), client_id, account["id"], Decimal("250.50"), key()
    )
    assert t["status"] == "done", t
    w = await wallet(client_id)
    assert (w.available, w.held) == (Decimal("749.50"), 0)
    assert await mt5_balance(ops_server, account["login"]) == Decimal("250.50")
    assert [d.profit for d in await mt5_deals(ops_server, account["login"])] == [Decimal("250.50")]
    assert t["transaction_id"] is not None
    await assert_books_match_mt5(ops_server, account)


async def test_money_comes_back_from_the_account_to_the_wallet(ops_server):
    client_id, account = await funded_with_account(ops_server)
    actor = client_actor(client_id)
    await transfers.wallet_to_account(actor, client_id, account["id"], Decimal(300), key())
    t = await transfers.account_to_wallet(actor, client_id, account["id"], Decimal(120), key())
    assert t["status"] == "done", t
    assert (await wallet(client_id)).available == Decimal(820)
    assert await mt5_balance(ops_server, account["login"]) == Decimal(180)
    await assert_books_match_mt5(ops_server, account)


async def test_mt5_refusing_a_withdrawal_it_cannot_cover_books_nothing_and_says_why(ops_server):
    client_id, account = await funded_with_account(ops_server)
    actor = client_actor(client_id)
    await transfers.wallet_to_account(actor, client_id, account["id"], Decimal(100), key())
    t = await transfers.account_to_wallet(actor, client_id, account["id"], Decimal(500), key())
    assert t["status"] == "failed"
    assert "Not enough money on the trading account (balance or free margin)" in t["message"]
    assert t["transaction_id"] is None
    assert (await wallet(client_id)).available == Decimal(900)
    assert await mt5_balance(ops_server, account["login"]) == Decimal(100)
    await assert_books_match_mt5(ops_server, account)


async def test_mt5_refusing_a_withdrawal_for_lack_of_free_margin_books_nothing(ops_server, mt5_sim: Sim):
    """Open positions tie up margin: MT5 refuses to take out more than the free margin."""
    client_id, account = await funded_with_account(ops_server, "5000")
    actor = client_actor(client_id)
    await transfers.wallet_to_account(actor, client_id, account["id"], Decimal(5000), key())
    from app.trading import connections

    platform = await connections.platform_for(ops_server)
    mt5_sim.control(trade_rate=200)
    for _ in range(100):
        state = (await platform.fetch_accounts([account["login"]]))[0]
        if state.margin > 0 and state.margin_free < state.balance - 1:
            break
        await asyncio.sleep(0.05)
    mt5_sim.control(trade_rate=0, paused=True)
    state = (await platform.fetch_accounts([account["login"]]))[0]
    if not (state.margin > 0 and state.margin_free < state.balance - 1):
        pytest.skip("the simulated traders opened no position that ties up margin")
    amount = (Decimal(state.margin_free) + 1).quantize(Decimal("0.01"))
    balance_before = Decimal(state.balance)
    t = await transfers.account_to_wallet(actor, client_id, account["id"], amount, key())
    assert t["status"] == "failed", t
    assert "free margin" in t["message"]
    assert (await wallet(client_id)).available == 0
    assert await mt5_balance(ops_server, account["login"]) == balance_before
    assert await account_ledger(account["id"]) == Decimal(5000)


async def test_mt5_refusing_a_deposit_gives_the_held_money_back_to_the_wallet(ops_server, mt5_sim: Sim):
    client_id, account = await funded_with_account(ops_server)
    mt5_sim.control(fail_next=[{"command": "trade/balance", "retcode": 1002, "count": 1}])
    t = await transfers.wallet_to_account(
        client_actor(client_id), client_id, account["id"], Decimal(400), key()
    )
    assert t["status"] == "failed"
    assert "disabled on the trading server" in t["message"] and "back in your USD wallet" in t["message"]
    w = await wallet(client_id)
    assert (w.available, w.held) == (Decimal(1000), 0)
    assert await mt5_balance(ops_server, account["login"]) == 0
    await assert_books_match_mt5(ops_server, account)


async def test_money_moves_between_two_accounts_of_the_client_through_the_wallet(ops_server):
    client_id, first = await funded_with_account(ops_server)
    second = await open_live(ops_server, client_id)
    actor = client_actor(client_id)
    await transfers.wallet_to_account(actor, client_id, first["id"], Decimal(300), key())
    t = await transfers.account_to_account(actor, client_id, first["id"], second["id"], Decimal(125), key())
    assert t["status"] == "done", t
    assert t["op_id"] and t["op_id_2"]
    assert await mt5_balance(ops_server, first["login"]) == Decimal(175)
    assert await mt5_balance(ops_server, second["login"]) == Decimal(125)
    w = await wallet(client_id)
    assert (w.available, w.held) == (Decimal(700), 0)
    await assert_books_match_mt5(ops_server, first)
    await assert_books_match_mt5(ops_server, second)


async def test_a_refused_second_leg_leaves_the_money_in_the_wallet_and_says_so(
    ops_server, mt5_sim: Sim, monkeypatch
):
    client_id, first = await funded_with_account(ops_server)
    second = await open_live(ops_server, client_id)
    actor = client_actor(client_id)
    await transfers.wallet_to_account(actor, client_id, first["id"], Decimal(300), key())

    async def not_now(transfer_id: int, _actor) -> dict:
        return await transfers.get_transfer(transfer_id)

    monkeypatch.setattr(transfers, "_send_after_commit", not_now)
    t = await transfers.account_to_account(actor, client_id, first["id"], second["id"], Decimal(100), key())
    await operations.execute_operation(t["op_id"])  # leg 1: out of the first account
    t = await transfer_row(t["id"])
    assert (t["status"], bool(t["op_id_2"])) == ("pending", True)
    assert (await wallet(client_id)).held == Decimal(100)  # between the legs: held on the wallet
    mt5_sim.control(fail_next=[{"command": "trade/balance", "retcode": 1002, "count": 1}])
    await operations.execute_operation(t["op_id_2"])
    t = await transfer_row(t["id"])
    assert t["status"] == "failed"
    assert "The funds are in your USD wallet" in t["message"]
    w = await wallet(client_id)
    assert (w.available, w.held) == (Decimal(800), 0)
    assert await mt5_balance(ops_server, second["login"]) == 0
    await assert_books_match_mt5(ops_server, first)
    await assert_books_match_mt5(ops_server, second)


async def test_a_double_submitted_transfer_is_made_once(ops_server):
    client_id, account = await funded_with_account(ops_server)
    actor = client_actor(client_id)
    same = key()
    results = await asyncio.gather(
        *(transfers.wallet_to_account(actor, client_id, account["id"], Decimal(50), same) for _ in range(3))
    )
    assert len({r["id"] for r in results}) == 1
    again = await transfers.wallet_to_account(actor, client_id, account["id"], Decimal(50), same)
    assert again["id"] == results[0]["id"] and again.get("replayed")
    assert len(await mt5_deals(ops_server, account["login"])) == 1
    assert (await wallet(client_id)).available == Decimal(950)
    with pytest.raises(IdempotencyConflict):
        await transfers.wallet_to_account(actor, client_id, account["id"], Decimal(60), same)


async def test_bad_amounts_and_other_peoples_accounts_are_refused_and_nothing_moves(ops_server):
    client_id, account = await funded_with_account(ops_server)
    other, other_account = await funded_with_account(ops_server)
    actor = client_actor(client_id)
    for amount, text in ((Decimal(0), "zero"), (Decimal(-5), "positive"), (Decimal("1.001"), "decimals")):
        with pytest.raises(LedgerError, match=text):
            await transfers.wallet_to_account(actor, client_id, account["id"], amount, key())
    with pytest.raises(InsufficientFunds):
        await transfers.wallet_to_account(actor, client_id, account["id"], Decimal("1000.01"), key())
    with pytest.raises(NotFound):
        await transfers.wallet_to_account(actor, client_id, other_account["id"], Decimal(10), key())
    with pytest.raises(LedgerError, match="is in USD, not EUR"):
        await transfers.wallet_to_account(actor, client_id, account["id"], Decimal(10), key(), currency="EUR")
    await db.fetch("UPDATE trading_accounts SET is_demo = true WHERE id = {}", account["id"])
    with pytest.raises(LedgerError, match="Demo"):
        await transfers.wallet_to_account(actor, client_id, account["id"], Decimal(10), key())
    assert await db.fetchrow("SELECT count(*) AS n FROM funding_transfers") == {"n": 0}
    assert (await wallet(client_id)).available == Decimal(1000)
    assert await mt5_balance(ops_server, account["login"]) == 0


async def test_withdrawals_racing_transfers_on_the_same_wallet_never_overdraw_it(ops_server):
    """Holds for withdrawals being requested and transfers' holds on one wallet, all at once: as
    many as the money covers get it, the others a clear refusal, and nothing goes below zero."""
    from app.funding import holds

    client_id, account = await funded_with_account(ops_server, "100")
    actor = client_actor(client_id)
    wallet_id = (await wallet(client_id)).wallet_id

    async def withdrawal() -> str:
        try:
            await holds.hold(actor, wallet_id, Decimal(40), key(), reference="withdrawal:test")
        except InsufficientFunds:
            return "refused"
        return "held"

    async def transfer() -> str:
        try:
            t = await transfers.wallet_to_account(actor, client_id, account["id"], Decimal(40), key())
        except InsufficientFunds as exc:
            assert "Not enough available funds" in exc.message
            return "refused"
        return t["status"]

    outcomes = await asyncio.gather(*(f() for _ in range(3) for f in (withdrawal, transfer)))
    assert outcomes.count("refused") == 4, outcomes
    moved = await account_ledger(account["id"])
    w = await wallet(client_id)
    assert w.available == Decimal(20) and w.held + moved == Decimal(80)
    assert await mt5_balance(ops_server, account["login"]) == moved
    totals = await ledger_totals()
    assert (totals["unbalanced"], totals["stale"], totals["negative"]) == (0, 0, 0)
    assert await db.fetchrow("SELECT count(*) AS n FROM funding_transfers") == {"n": outcomes.count("done")}


async def test_a_client_blocked_by_compliance_cannot_move_money_to_or_from_accounts(ops_server):
    client_id, account = await funded_with_account(ops_server)
    await db.fetch(
        "INSERT INTO compliance_blocks (client, reason, active_client, created_at) VALUES ({}, 'true match', {}, now())",
        client_id,
        client_id,
    )
    actor = client_actor(client_id)
    with pytest.raises(LedgerError, match="restricted by our compliance team"):
        await transfers.wallet_to_account(actor, client_id, account["id"], Decimal(10), key())
    with pytest.raises(LedgerError, match="restricted by our compliance team"):
        await transfers.account_to_wallet(actor, client_id, account["id"], Decimal(10), key())
    assert (await wallet(client_id)).available == Decimal(1000)


async def test_transfers_between_currencies_or_to_the_same_account_are_refused(ops_server):
    client_id, usd = await funded_with_account(ops_server)
    eur = await open_live(ops_server, client_id, group="real\\pro-eur", currency="EUR")
    actor = client_actor(client_id)
    with pytest.raises(LedgerError, match="same currency"):
        await transfers.account_to_account(actor, client_id, usd["id"], eur["id"], Decimal(10), key())
    with pytest.raises(LedgerError, match="two different accounts"):
        await transfers.account_to_account(actor, client_id, usd["id"], usd["id"], Decimal(10), key())
    with pytest.raises(LedgerError, match="no EUR wallet"):
        await transfers.wallet_to_account(actor, client_id, eur["id"], Decimal(10), key())
    assert await db.fetchrow("SELECT count(*) AS n FROM funding_transfers") == {"n": 0}
