"""Withdrawals from a trading account, against the real MT5 simulator: the money comes off MT5
first (`moving`), and only when the server confirms is it booked account → wallet and held."""

from __future__ import annotations

from decimal import Decimal

from app.core import db
from app.funding import balances, ledger, withdrawals
from tests.funding.withdraw_support import (
    actor_of,
    card_deposit,
    install_provider,
    verified_client,
    wallet_of,
)
from tests.trading.ops_support import op_row, open_account


async def live_account_for(server_id: int, client_id: int, mt5_balance: str = "1000") -> dict:
    account = await open_account(server_id, deposit=Decimal(mt5_balance))
    await db.fetchrow(
        "UPDATE trading_accounts SET client = $2, is_demo = false, balance = $3, credit = 0, equity = $3, "
        "margin_free = $3, state_at = now() WHERE id = $1",
        account["id"],
        client_id,
        Decimal(mt5_balance),
    )
    return account


async def test_an_account_withdrawal_moves_the_money_off_mt5_then_holds_it(ops_server):
    install_provider()
    client = await verified_client()
    await card_deposit(client.id, Decimal("500"))
    account = await live_account_for(ops_server, client.id)
    w = await withdrawals.request_withdrawal(
        actor_of(client), client, source="account", trading_account_id=account["id"], amount=Decimal("200"),
        currency="USD", destination="card:tok_4242",
    )  # fmt: skip
    assert w["status"] == "requested" and w["hold_id"] is not None
    op = await op_row(w["op_id"])
    assert (op["status"], op["amount"], op["reference"]) == ("done", Decimal("-200"), f"withdrawal:{w['id']}")
    # the card deposit (500) stays available; the 200 from MT5 is held for the payout
    assert await wallet_of(client.id) == {"available": Decimal("500"), "held": Decimal("200")}
    mirror = await ledger.account_for_trading(account["id"])
    assert await balances.balance_of(mirror) == Decimal("-200")


async def test_mt5_refusing_the_move_fails_the_withdrawal_and_books_nothing(ops_server):
    install_provider()
    client = await verified_client()
    await card_deposit(client.id, Decimal("500"))
    account = await live_account_for(ops_server, client.id, mt5_balance="50")
    await db.fetchrow(  # the synced figures are stale: they say more than the server has
        "UPDATE trading_accounts SET balance = 900, equity = 900, margin_free = 900 WHERE id = $1",
        account["id"],
    )
    w = await withdrawals.request_withdrawal(
        actor_of(client), client, source="account", trading_account_id=account["id"], amount=Decimal("300"),
        currency="USD", destination="card:tok_4242",
    )  # fmt: skip
    assert w["status"] == "failed" and "trading server refused" in w["payout_error"]
    assert w["hold_id"] is None
    assert await wallet_of(client.id) == {"available": Decimal("500"), "held": Decimal("0")}
