"""A crash between the commit of a transfer and MT5's answer: the web process dies before sending,
or a worker is killed with SIGKILL before the request or after MT5 executed it. The trading sweep
finishes the operation, the hook books the ledger in the same transaction, and afterwards the
ledger equals MT5 with exactly one deal per leg."""

from __future__ import annotations

import asyncio
import signal
from decimal import Decimal

import pytest

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
from tests.trading.ops_support import settle
from tests.trading.test_operations_crash import spawn, wait_exit


@pytest.fixture
def died_after_commit(monkeypatch):
    """The request's process dies right after its commit: nothing is sent by it."""
    from app.funding import transfers

    async def gone(transfer_id: int, _actor) -> dict:
        return await transfers.get_transfer(transfer_id)

    monkeypatch.setattr(transfers, "_send_after_commit", gone)
    return transfers


async def assert_one_deal_and_books_match(server_id: int, account: dict, expected: Decimal) -> None:
    assert await mt5_balance(server_id, account["login"]) == expected
    assert await account_ledger(account["id"]) == expected
    totals = await ledger_totals()
    assert (totals["unbalanced"], totals["stale"], totals["negative"]) == (0, 0, 0)


@pytest.mark.parametrize("point", ["never_sent", "before_send", "after_execute"])
async def test_a_transfer_to_mt5_interrupted_anywhere_is_finished_by_the_sweep_once(
    ops_server, database: str, died_after_commit, point: str
):
    transfers = died_after_commit
    client = await new_client()
    await fund(client.id, Decimal(500))
    account = await open_live(ops_server, client.id)
    t = await transfers.wallet_to_account(
        client_actor(client.id), client.id, account["id"], Decimal(200), key()
    )
    assert t["status"] == "pending"
    assert (await wallet(client.id)).held == Decimal(200)
    if point != "never_sent":
        code, out, err = await wait_exit(spawn(database, t["op_id"], point))
        assert code == -signal.SIGKILL, f"worker exited {code}: {out} {err}"
        assert (await transfer_row(t["id"]))["status"] == "pending"  # the dead worker booked nothing
    result = await settle(t["op_id"])
    assert result.done, result.message
    done = await transfer_row(t["id"])
    assert done["status"] == "done"
    assert len(await mt5_deals(ops_server, account["login"])) == 1
    w = await wallet(client.id)
    assert (w.available, w.held) == (Decimal(300), 0)
    await assert_one_deal_and_books_match(ops_server, account, Decimal(200))


async def test_an_account_to_account_transfer_killed_after_its_first_leg_is_completed_by_the_sweep(
    ops_server, database: str, died_after_commit
):
    transfers = died_after_commit
    client = await new_client()
    await fund(client.id, Decimal(500))
    first = await open_live(ops_server, client.id)
    second = await open_live(ops_server, client.id)
    actor = client_actor(client.id)
    await operations.execute_operation(
        (await transfers.wallet_to_account(actor, client.id, first["id"], Decimal(300), key()))["op_id"]
    )
    t = await transfers.account_to_account(actor, client.id, first["id"], second["id"], Decimal(120), key())
    code, out, err = await wait_exit(spawn(database, t["op_id"], "after_execute"))
    assert code == -signal.SIGKILL, f"worker exited {code}: {out} {err}"
    for _ in range(60):  # the minute sweep, as often as it takes: leg 1 is found, leg 2 is sent
        await operations.recover_pending(older_than_seconds=0)
        if (await transfer_row(t["id"]))["status"] != "pending":
            break
        await asyncio.sleep(0.5)
    done = await transfer_row(t["id"])
    assert done["status"] == "done", done
    assert [d.profit for d in await mt5_deals(ops_server, first["login"])] == [Decimal(300), Decimal(-120)]
    assert [d.profit for d in await mt5_deals(ops_server, second["login"])] == [Decimal(120)]
    await assert_one_deal_and_books_match(ops_server, first, Decimal(180))
    await assert_one_deal_and_books_match(ops_server, second, Decimal(120))
    w = await wallet(client.id)
    assert (w.available, w.held) == (Decimal(200), 0)


async def test_a_transfer_left_pending_after_its_operation_settled_is_finished_by_the_safety_net(
    ops_server, died_after_commit, monkeypatch
):
    """Only a bug could leave it so (the hook runs in the operation's transaction): simulated by
    settling the operation with the hook switched off."""
    from app.funding import operation_hooks

    transfers = died_after_commit
    client = await new_client()
    await fund(client.id, Decimal(500))
    account = await open_live(ops_server, client.id)
    t = await transfers.wallet_to_account(
        client_actor(client.id), client.id, account["id"], Decimal(90), key()
    )
    with monkeypatch.context() as m:

        async def skipped(*_args) -> None:
            return None

        m.setattr(operation_hooks, "on_settled", skipped)
        assert (await operations.execute_operation(t["op_id"])).done
    assert (await transfer_row(t["id"]))["status"] == "pending"
    assert await transfers.finish_orphans(older_than_seconds=3600) == 0  # not old enough yet
    assert await transfers.finish_orphans(older_than_seconds=0) == 1
    assert (await transfer_row(t["id"]))["status"] == "done"
    assert await transfers.finish_orphans(older_than_seconds=0) == 0
    await assert_one_deal_and_books_match(ops_server, account, Decimal(90))
