"""Balance operations against the real simulator: done with the deal's ticket, refused cleanly,
and safe to retry after a timeout, a dropped or malformed answer or an unreachable server."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from app.core import db
from app.core.audit import Actor
from app.core.errors import FormErrors
from app.trading import operations
from app.trading.operation_rules import mt5_comment, new_op_id, parse_amount
from app.trading.platform import BalanceType
from tests.trading import ops_support
from tests.trading.conftest import Sim, start_sim
from tests.trading.ops_support import (
    MARGIN,
    TIMEOUT,
    audit_actions,
    deals_with_comment,
    op_row,
    open_account,
    settle,
)

ACTOR = Actor(kind="staff", id="7", label="finance@staff.test")

ops_server = ops_support.ops_server  # the fixture: a server with a short timeout on a simulator


async def credit(account: dict, amount: str = "50", **kw) -> operations.BalanceOperationResult:
    return await operations.balance_operation(
        ACTOR, account["id"], kw.pop("type", BalanceType.CREDIT), Decimal(amount),
        reference=kw.pop("reference", f"test:{new_op_id()}"), **kw,
    )  # fmt: skip


async def test_a_credit_is_done_with_the_ticket_of_the_one_deal_carrying_its_id(ops_server):
    account = await open_account(ops_server)
    result = await credit(account, "50", comment="welcome")
    assert result.done and result.ticket
    row = await op_row(result.op_id)
    assert row["comment"] == f"fx:{result.op_id} welcome" and len(row["comment"]) <= 32
    deals = await deals_with_comment(ops_server, account["login"], row["comment"])
    assert [(d.deal, d.action, d.profit) for d in deals] == [(result.ticket, 3, Decimal(50))]
    assert (row["status"], row["attempts"], row["ticket"]) == ("done", 1, result.ticket)
    assert await audit_actions(result.op_id) == [
        "trading.balance_operation.requested",
        "trading.balance_operation.sent",
        "trading.balance_operation.done",
    ]


async def test_not_enough_money_fails_with_a_clear_message_and_nothing_on_the_server(ops_server):
    account = await open_account(ops_server, deposit=Decimal(100))
    result = await credit(account, "-250", type=BalanceType.CORRECTION)
    assert result.status == "failed"
    assert "Not enough money" in result.message
    row = await op_row(result.op_id)
    assert await deals_with_comment(ops_server, account["login"], row["comment"]) == []
    assert await audit_actions(result.op_id) == [
        "trading.balance_operation.requested",
        "trading.balance_operation.sent",
        "trading.balance_operation.failed",
    ]
    again = await operations.resolve_operation(result.op_id)  # a refused operation stays refused
    assert (again.status, again.attempts) == ("failed", 1)


async def test_an_answer_dropped_after_execution_is_found_on_the_server_and_not_sent_again(
    ops_server, mt5_sim: Sim
):
    account = await open_account(ops_server)
    mt5_sim.control(drop_next=1)
    result = await credit(account, "75")
    assert result.done, result.message
    row = await op_row(result.op_id)
    deals = await deals_with_comment(ops_server, account["login"], row["comment"])
    assert [d.deal for d in deals] == [result.ticket]
    assert row["attempts"] == 1
    assert "trading.balance_operation.unconfirmed" in await audit_actions(result.op_id)


async def test_a_malformed_answer_leaves_an_operation_that_completes_without_a_second_deal(
    ops_server, mt5_sim: Sim
):
    account = await open_account(ops_server)
    mt5_sim.control(malformed_next=1)
    result = await credit(account, "20")
    assert result.done, result.message  # the deal was made: the look right after finds it
    row = await op_row(result.op_id)
    assert len(await deals_with_comment(ops_server, account["login"], row["comment"])) == 1
    assert row["attempts"] == 1


async def test_after_a_timeout_it_looks_on_the_server_before_sending_again(ops_server, mt5_sim: Sim):
    account = await open_account(ops_server)
    mt5_sim.control(latency_ms=(TIMEOUT + 1) * 1000)  # the server executes after the client gave up
    result = await credit(account, "30")
    assert result.status == "sending"
    assert "not yet confirmed" in result.message
    early = await operations.resolve_operation(result.op_id)  # within the guard: nothing re-sent
    assert early.attempts == 1 and not early.settled
    mt5_sim.control(latency_ms=0)
    done = await settle(result.op_id)
    assert done.done, done.message
    row = await op_row(result.op_id)
    deals = await deals_with_comment(ops_server, account["login"], row["comment"])
    assert [d.deal for d in deals] == [done.ticket]
    assert row["attempts"] == 1  # found, never re-sent
    assert "trading.balance_operation.done" in await audit_actions(result.op_id)


async def test_a_common_error_is_retried_after_a_look_and_makes_exactly_one_deal(ops_server, mt5_sim: Sim):
    account = await open_account(ops_server)
    mt5_sim.control(fail_next={"command": "trade/balance", "retcode": 2, "count": 1})
    result = await credit(account, "40")
    assert result.status == "sending" and "2 Common error" in result.message
    done = await settle(result.op_id)
    assert done.done
    row = await op_row(result.op_id)
    assert row["attempts"] == 2
    deals = await deals_with_comment(ops_server, account["login"], row["comment"])
    assert [d.deal for d in deals] == [done.ticket]


async def test_an_unreachable_server_leaves_the_operations_open_until_the_server_is_back(
    ops_server, mt5_sim: Sim
):
    account = await open_account(ops_server)
    mt5_sim.stop()
    results = [await credit(account, "60"), await credit(account, "70")]
    for result in results:
        assert not result.settled
        row = await op_row(result.op_id)
        assert row["status"] in ("pending", "sending") and row["last_error"]
    counts = await operations.recover_pending(older_than_seconds=0)
    # still down: nothing lost, nothing settled, and the server is not asked again in this sweep
    assert counts == {"checked": 1, "done": 0, "failed": 0, "open": 2}
    back = start_sim(mt5_sim.state, port=mt5_sim.port)
    try:
        await asyncio.sleep(TIMEOUT + MARGIN)
        for _ in range(20):
            counts = await operations.recover_pending(older_than_seconds=0)
            if counts["open"] == 0:
                break
            await asyncio.sleep(0.5)
        assert counts["done"] == 2
        for result in results:
            row = await op_row(result.op_id)
            assert row["status"] == "done"
            deals = await deals_with_comment(ops_server, account["login"], row["comment"])
            assert [d.deal for d in deals] == [row["ticket"]]
    finally:
        back.stop()


async def test_the_same_reference_returns_the_first_operation_instead_of_a_second_credit(ops_server):
    account = await open_account(ops_server)
    first = await credit(account, "10", reference="transfer:812")
    second = await credit(account, "10", reference="transfer:812")
    assert second.op_id == first.op_id and second.done
    row = await op_row(first.op_id)
    assert len(await deals_with_comment(ops_server, account["login"], row["comment"])) == 1
    with pytest.raises(FormErrors) as exc:
        await credit(account, "11", reference="transfer:812")
    assert "reference was used for another operation" in exc.value.errors["reference"]


async def test_inside_a_transaction_the_operation_waits_for_the_commit_and_is_then_sent(ops_server):
    account = await open_account(ops_server)
    async with db.transaction():
        result = await credit(account, "15", type=BalanceType.BONUS)
        assert result.status == "pending"
    sent = await operations.execute_operation(result.op_id)  # what the job does after commit
    assert sent.done


async def test_a_rolled_back_transaction_leaves_no_operation(ops_server):
    account = await open_account(ops_server)
    with pytest.raises(RuntimeError):
        async with db.transaction():
            result = await credit(account, "15")
            raise RuntimeError("the caller's own step failed")
    assert (
        await db.fetchrow("SELECT 1 FROM trading_balance_operations WHERE op_id = $1", result.op_id) is None
    )


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "must not be zero"),
        ("10.005", "USD amounts have at most 2 decimal places"),
        ("1000000000.01", "at most 1,000,000,000 USD"),
        ("-1000000001", "at most 1,000,000,000 USD"),
    ],
)
async def test_amounts_are_checked_before_anything_is_stored(ops_server, amount, message):
    account = await open_account(ops_server, deposit=Decimal(0))
    with pytest.raises(FormErrors) as exc:
        await credit(account, amount)
    assert message in exc.value.errors["amount"]
    assert await db.fetchrow("SELECT 1 FROM trading_balance_operations") is None


async def test_an_inactive_account_or_a_type_not_allowed_is_refused_with_a_reason(ops_server):
    account = await open_account(ops_server, deposit=Decimal(0))
    with pytest.raises(FormErrors) as exc:
        await credit(account, "5", type=BalanceType.BALANCE, allowed_types=frozenset({BalanceType.CREDIT}))
    assert exc.value.errors["type"] == "Choose one of: credit."
    await db.fetch("UPDATE trading_accounts SET status = 'archived' WHERE id = {}", account["id"])
    with pytest.raises(FormErrors) as exc:
        await credit(account, "5")
    assert "not active on the trading server (status: archived)" in exc.value.errors["account"]


def test_typed_amounts_are_parsed_without_floats_and_nonsense_is_refused():
    assert parse_amount(" 1,250.50 ") == Decimal("1250.50")
    assert parse_amount("-20") == Decimal(-20)
    for bad in ("abc", "", "NaN", "Infinity", "1e"):
        with pytest.raises(FormErrors) as exc:
            parse_amount(bad)
        assert "Enter an amount" in exc.value.errors["amount"]


def test_the_mt5_comment_starts_with_the_operation_id_and_fits_in_32_characters():
    op_id = new_op_id()
    assert len(op_id) == 16 and op_id.isalnum()
    assert mt5_comment(op_id) == "fx:" + op_id
    long = mt5_comment(op_id, "bonus for the\nspring promotion")
    assert long.startswith(f"fx:{op_id} bonus") and len(long) <= 32 and "\n" not in long


async def test_the_job_is_enqueued_after_commit_for_after_the_inline_attempt_and_finishes_what_it_left(
    ops_server, mt5_sim: Sim
):
    from app.core import jobs
    from app.trading import operation_jobs

    account = await open_account(ops_server)
    queue = await jobs.connect(db.current_url())
    try:
        mt5_sim.control(fail_next={"command": "trade/balance", "retcode": 2, "count": 1})
        result = await credit(account, "12")
        job = await queue.job(f"balance-op:{result.op_id}")
        assert job is not None and job.function == "execute_balance_operation"
        assert job.kwargs == {"op_id": result.op_id}
        assert job.scheduled >= time.time() + TIMEOUT  # after the inline attempt, not racing it
    finally:
        await jobs.disconnect()
    with pytest.raises(operation_jobs.NotSettledYet):  # SAQ retries it with back-off
        await operation_jobs.execute_balance_operation({}, op_id=result.op_id)
    await asyncio.sleep(TIMEOUT + MARGIN)
    assert await operation_jobs.execute_balance_operation({}, op_id=result.op_id) == "done"
    assert await operation_jobs.execute_balance_operation({}, op_id=result.op_id) == "done"  # idempotent
    assert await operation_jobs.execute_balance_operation({}, op_id="nosuchoperation0") == "gone"
    assert await operation_jobs.balance_operations_sweep({}) == {
        "checked": 0,
        "done": 0,
        "failed": 0,
        "open": 0,
    }
    row = await op_row(result.op_id)
    assert len(await deals_with_comment(ops_server, account["login"], row["comment"])) == 1


def test_the_operation_jobs_are_registered_with_the_worker():
    from app.core import jobs

    jobs.load_job_modules()
    assert "execute_balance_operation" in jobs._functions
    assert any(
        c.function.__name__ == "balance_operations_sweep" and c.cron == "* * * * *" for c in jobs._crons
    )
