"""Workers killed with SIGKILL at every point of a balance operation, and recoverers racing each
other: afterwards the simulator holds exactly one deal per operation and the CRM says `done`
with that deal's ticket. Deals are counted on the server (the simulator), never in the CRM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from decimal import Decimal

import pytest

from app.core import db
from app.core.audit import Actor
from app.settings import ROOT
from app.trading import operations
from app.trading.platform import BalanceType
from tests.trading import ops_support
from tests.trading.conftest import Sim
from tests.trading.ops_support import (
    MARGIN,
    deals_with_comment,
    op_row,
    open_account,
    settle,
)

ACTOR = Actor(kind="system", label="funding test")
SLOW_MS = 1500  # below the client's 2 s timeout: the request is answered, just late

ops_server = ops_support.ops_server  # the fixture: a server with a short timeout on a simulator


def spawn(database: str, op_id: str, point: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.trading.ops_worker", database, op_id, point],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OPS_MARGIN": str(MARGIN)},
    )  # fmt: skip


async def wait_exit(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    out, err = await asyncio.to_thread(proc.communicate, None, timeout)
    return proc.returncode, out, err


async def wait_for_status(op_id: str, status: str, timeout: float = 30) -> dict:
    for _ in range(int(timeout * 20)):
        row = await op_row(op_id)
        if row["status"] == status:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"operation {op_id} never reached {status}: {row}")


async def new_operation(account: dict, amount: str = "25") -> tuple[str, str]:
    op_id = await operations.create_operation(
        ACTOR, account["id"], BalanceType.CREDIT, Decimal(amount), reference=f"crash:{operations.new_op_id()}"
    )
    return op_id, (await op_row(op_id))["comment"]


async def assert_exactly_one_deal(server_id: int, account: dict, op_id: str, comment: str) -> dict:
    row = await op_row(op_id)
    assert row["status"] == "done", row
    deals = await deals_with_comment(server_id, account["login"], comment)
    assert [d.deal for d in deals] == [row["ticket"]], f"deals on the server: {deals}"
    return row


# Where the worker dies, and how many requests the operation took in the end: a request that
# reached the server is found there, one that never left is sent by the recoverer.
KILL_POINTS = {
    "before_claim": 1,  # nothing stored but the operation: the recoverer sends it
    "before_send": 2,  # claimed (attempt 1), never sent: looked for, not found, sent again
    "during_send": 1,  # the request is on the wire, the server executes it after the kill
    "after_execute": 1,  # executed and answered, never recorded: found on the server
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
async def test_a_worker_killed_at_any_point_never_credits_twice_and_never_loses_the_operation(
    ops_server, mt5_sim: Sim, database: str, point: str
):
    account = await open_account(ops_server)
    op_id, comment = await new_operation(account)
    proc = spawn(database, op_id, "wait" if point == "during_send" else point)
    if point == "during_send":
        assert await asyncio.to_thread(proc.stdout.readline) == "ready\n"  # type: ignore[union-attr]
        mt5_sim.control(latency_ms=SLOW_MS)
        proc.stdin.write("go\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        await wait_for_status(op_id, "sending")
        await asyncio.sleep(SLOW_MS / 3000)  # the request is in the server's hands
        proc.send_signal(signal.SIGKILL)
    code, out, err = await wait_exit(proc)
    assert code == -signal.SIGKILL, f"worker exited {code}: {out} {err}"
    assert (await op_row(op_id))["status"] in ("pending", "sending")  # left open by the dead worker
    mt5_sim.control(latency_ms=0)
    result = await settle(op_id)
    assert result.done, result.message
    await asyncio.sleep(SLOW_MS / 1000)  # a request still on its way would have landed by now
    row = await assert_exactly_one_deal(ops_server, account, op_id, comment)
    assert row["attempts"] == KILL_POINTS[point]


async def test_several_operations_killed_at_several_points_are_each_credited_exactly_once(
    ops_server, mt5_sim: Sim, database: str
):
    """The loop of the issue: one account, an operation per kill point, then one sweep for all."""
    account = await open_account(ops_server)
    ops = []
    for point in ("before_claim", "before_send", "after_execute", "after_execute", "before_send"):
        op_id, comment = await new_operation(account, amount="3.5")
        code, out, err = await wait_exit(spawn(database, op_id, point))
        assert code == -signal.SIGKILL, f"{point}: worker exited {code}: {out} {err}"
        ops.append((op_id, comment))
    for _ in range(60):
        counts = await operations.recover_pending(older_than_seconds=0)
        if counts["open"] == 0:
            break
        await asyncio.sleep(0.5)
    assert counts["open"] == 0
    for op_id, comment in ops:
        await assert_exactly_one_deal(ops_server, account, op_id, comment)
    state = (await (await operations._platform(ops_server)).fetch_accounts([account["login"]]))[0]
    assert state.credit == Decimal("17.5")  # five operations of 3.5, each once


async def test_a_recoverer_does_not_send_while_the_first_worker_is_still_sending(
    ops_server, mt5_sim: Sim, database: str, monkeypatch
):
    """The time guard switched off: only the operation's lock keeps a second sender out while the
    first (alive, slow) has claimed the operation and not yet had its answer."""
    account = await open_account(ops_server)
    op_id, comment = await new_operation(account)
    proc = spawn(database, op_id, "slow")
    await wait_for_status(op_id, "sending")
    monkeypatch.setattr(operations, "RESEND_MARGIN_SECONDS", -3600)
    for _ in range(3):
        assert (await operations.resolve_operation(op_id)).attempts == 1
        assert (await operations.recover_pending(older_than_seconds=0))["done"] == 0
    code, out, err = await wait_exit(proc)
    assert (code, out.split()[-1]) == (0, "done"), err
    row = await assert_exactly_one_deal(ops_server, account, op_id, comment)
    assert row["attempts"] == 1


async def stuck_after_claim(account: dict) -> tuple[str, str]:
    """An operation a worker claimed an hour ago and died before sending."""
    op_id, comment = await new_operation(account)
    await db.fetch(
        "UPDATE trading_balance_operations SET status = 'sending', attempts = 1, "
        "sent_at = now() - interval '1 hour', updated_at = now() - interval '1 hour' WHERE op_id = {}",
        op_id,
    )
    return op_id, comment


async def test_two_recoverers_at_once_on_the_same_stuck_operation_make_one_deal(ops_server, mt5_sim: Sim):
    account = await open_account(ops_server)
    op_id, comment = await stuck_after_claim(account)
    mt5_sim.control(latency_ms=300)  # each look and send takes a while: the two really overlap
    results = await asyncio.gather(*(operations.resolve_operation(op_id) for _ in range(2)))
    assert sorted(r.status for r in results) in (["done", "done"], ["done", "sending"])
    mt5_sim.control(latency_ms=0)
    row = await assert_exactly_one_deal(ops_server, account, op_id, comment)
    assert row["attempts"] == 2


async def test_two_recovering_processes_at_once_make_one_deal_per_operation(
    ops_server, mt5_sim: Sim, database: str
):
    account = await open_account(ops_server)
    stuck = [await stuck_after_claim(account) for _ in range(3)]
    mt5_sim.control(latency_ms=200)
    procs = [spawn(database, "-", "recover") for _ in range(2)]
    for proc in procs:
        code, out, err = await wait_exit(proc)
        assert code == 0, err
    mt5_sim.control(latency_ms=0)
    await operations.recover_pending(older_than_seconds=0)  # whatever both skipped at the same moment
    for op_id, comment in stuck:
        await assert_exactly_one_deal(ops_server, account, op_id, comment)
