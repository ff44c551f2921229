"""Reconciliation of the ledger's trading accounts with MT5's balance deals (as synced): nothing
when they agree, every difference when money moved on MT5 without the CRM, and an operation still
on its way reported as in flight rather than as a difference."""

from __future__ import annotations

from decimal import Decimal

from app.core import db
from app.core.audit import Actor
from app.funding import reconcile, reconcile_mt5, transfers
from app.trading import connections
from app.trading.platform import BalanceType
from app.trading.sync import sync_once
from tests.funding.transfer_support import client_actor, fund, key, new_client, open_live
from tests.trading.ops_support import settle

FINANCE = Actor(kind="staff", id="1", label="finance@staff.test")


async def client_with_transfers(server_id: int) -> tuple[int, dict]:
    client = await new_client()
    await fund(client.id, Decimal(1000))
    account = await open_live(server_id, client.id)
    actor = client_actor(client.id)
    assert (await transfers.wallet_to_account(actor, client.id, account["id"], Decimal(300), key()))[
        "status"
    ] == "done"
    assert (await transfers.account_to_wallet(actor, client.id, account["id"], Decimal(50), key()))[
        "status"
    ] == "done"
    return client.id, account


async def test_nothing_is_reported_when_the_ledger_and_mt5_agree(ops_server):
    _, account = await client_with_transfers(ops_server)
    platform = await connections.platform_for(ops_server)
    await platform.balance_operation(
        account["login"], BalanceType.CREDIT, Decimal(500), "credit line"
    )  # not money
    await sync_once(ops_server)
    found, checked = await reconcile_mt5.compare()
    assert (found, checked) == ([], 1)
    run = await reconcile.run_reconciliation(FINANCE)
    row = await db.fetchrow("SELECT status, differences FROM funding_reconciliation_runs WHERE id = $1", run)
    assert row["status"] == "ok", row


async def test_a_balance_deal_made_on_mt5_without_the_crm_is_listed_and_not_fixed(ops_server):
    _, account = await client_with_transfers(ops_server)
    platform = await connections.platform_for(ops_server)
    await platform.balance_operation(account["login"], BalanceType.BALANCE, Decimal("25.50"), "by hand")
    await sync_once(ops_server)
    found, _ = await reconcile_mt5.compare()
    assert len(found) == 1
    diff = found[0]
    assert (diff["login"], diff["expected"], diff["found"], diff["in_flight"]) == (
        account["login"], "275.50", "250.00", False,
    )  # fmt: skip
    assert "MT5 has 25.50 more" in diff["detail"]
    run = await reconcile.run_reconciliation(FINANCE)
    row = await db.fetchrow("SELECT status, differences FROM funding_reconciliation_runs WHERE id = $1", run)
    assert row["status"] == "differences"
    assert [d["check"] for d in _json(row["differences"])] == ["mt5"]
    again, _ = await reconcile_mt5.compare()  # listed again: nothing was booked to make it agree
    assert again == found


async def test_an_operation_on_its_way_is_in_flight_not_a_difference(ops_server, monkeypatch):
    client_id, account = await client_with_transfers(ops_server)

    async def later(transfer_id: int, _actor) -> dict:
        return await transfers.get_transfer(transfer_id)

    monkeypatch.setattr(transfers, "_send_after_commit", later)
    t = await transfers.wallet_to_account(
        client_actor(client_id), client_id, account["id"], Decimal(40), key()
    )
    await sync_once(ops_server)
    found, _ = await reconcile_mt5.compare()
    assert [(d["login"], d["in_flight"]) for d in found] == [(account["login"], True)]
    assert t["op_id"] in found[0]["detail"]
    assert (await settle(t["op_id"])).done
    found, _ = await reconcile_mt5.compare()  # done, but its deal not synced yet: still in flight
    assert [d["in_flight"] for d in found] == [True]
    await sync_once(ops_server)
    assert (await reconcile_mt5.compare())[0] == []


async def test_demo_accounts_and_accounts_funding_never_touched_are_not_compared(ops_server):
    client = await new_client()
    await open_live(ops_server, client.id, deposit_on_mt5=Decimal(100))  # no ledger account: not ours
    await sync_once(ops_server)
    assert await reconcile_mt5.compare() == ([], 0)


def _json(value):
    import json

    return json.loads(value) if isinstance(value, str) else value
