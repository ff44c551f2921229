"""`MT5Platform` against the real simulator process: every platform method, and each bad input
becoming its typed error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from app.trading import platform as p
from app.trading.mt5.platform import MT5Platform
from tests.trading.conftest import MANAGER_LOGIN, MANAGER_PASSWORD, Sim

DEMO = "demo\\forex-usd"
STANDARD = "real\\standard-usd"
PASSWORD = "Strong#Pass1"
INVESTOR = "Invest#Pass1"


def connect(sim: Sim, **kw) -> MT5Platform:
    options = {"tls": sim.tls, "verify_tls": False, "timeout": 5.0, "pool_size": 2, **kw}
    return MT5Platform(sim.address, MANAGER_LOGIN, MANAGER_PASSWORD, **options)


@pytest.fixture
async def mt5(mt5_sim: Sim) -> AsyncIterator[MT5Platform]:
    platform = connect(mt5_sim)
    try:
        yield platform
    finally:
        await platform.close()


def new_account(**kw) -> p.NewAccount:
    values = {
        "group": DEMO,
        "name": "Ada Lovelace",
        "leverage": 100,
        "password_main": PASSWORD,
        "password_investor": INVESTOR,
        "email": "ada@example.com",
        "client_ref": "42",
        **kw,
    }
    return p.NewAccount(**values)


async def test_it_creates_an_account_with_a_login_the_server_allocates(mt5):
    user = await mt5.create_account(new_account())
    assert user.login > 0
    assert (user.group, user.name, user.email, user.leverage, user.client_ref) == (
        DEMO,
        "Ada Lovelace",
        "ada@example.com",
        100,
        "42",
    )
    assert await mt5.get_user(user.login) == user


async def test_a_second_account_with_the_same_login_is_a_duplicate(mt5):
    user = await mt5.create_account(new_account())
    with pytest.raises(p.Duplicate) as caught:
        await mt5.create_account(new_account(login=user.login))
    assert caught.value.code == 3004


async def test_an_unknown_group_is_refused_as_not_permitted(mt5):
    with pytest.raises(p.PermissionDenied) as caught:
        await mt5.create_account(new_account(group="real\\no-such-group"))
    assert "group does not exist" in caught.value.message


async def test_a_weak_password_is_refused_on_creation_and_on_change(mt5):
    with pytest.raises(p.WeakPassword) as caught:
        await mt5.create_account(new_account(password_main="short"))
    assert caught.value.code == 3006
    user = await mt5.create_account(new_account())
    with pytest.raises(p.WeakPassword):
        await mt5.change_password(user.login, "password")


async def test_passwords_are_checked_and_changed_per_kind(mt5):
    user = await mt5.create_account(new_account())
    assert await mt5.check_password(user.login, PASSWORD)
    assert not await mt5.check_password(user.login, "Wrong#Pass1")
    assert await mt5.check_password(user.login, INVESTOR, p.PasswordKind.INVESTOR)
    await mt5.change_password(user.login, "Newer#Pass2")
    assert await mt5.check_password(user.login, "Newer#Pass2")
    assert not await mt5.check_password(user.login, PASSWORD)
    assert await mt5.check_password(user.login, INVESTOR, p.PasswordKind.INVESTOR)


async def test_it_changes_leverage_and_updates_only_the_given_fields(mt5):
    user = await mt5.create_account(new_account())
    await mt5.change_leverage(user.login, 500)
    assert (await mt5.get_user(user.login)).leverage == 500
    updated = await mt5.update_account(user.login, p.AccountUpdate(group=STANDARD, comment="moved"))
    assert (updated.group, updated.comment, updated.name, updated.leverage) == (
        STANDARD,
        "moved",
        "Ada Lovelace",
        500,
    )


async def test_an_unknown_login_is_not_found(mt5):
    with pytest.raises(p.NotFound):
        await mt5.get_user(99_999_999)
    with pytest.raises(p.NotFound):
        await mt5.update_account(99_999_999, p.AccountUpdate(leverage=100))


async def test_a_deposit_returns_its_ticket_and_shows_in_the_account_and_the_deals(mt5):
    user = await mt5.create_account(new_account())
    since = await mt5.server_time() - 5
    ticket = await mt5.balance_operation(
        user.login, p.BalanceType.BALANCE, Decimal("1000.50"), "fx:op-1 deposit"
    )
    assert ticket > 0
    [state] = await mt5.fetch_accounts([user.login])
    assert (state.login, state.balance, state.equity) == (user.login, Decimal("1000.50"), Decimal("1000.50"))
    deals = await mt5.fetch_deals([user.login], since, since + 3600)
    [deal] = [d for d in deals if d.deal == ticket]
    assert (deal.action, deal.profit, deal.comment, deal.login) == (
        2,
        Decimal("1000.50"),
        "fx:op-1 deposit",
        user.login,
    )
    rows = await mt5.fetch_deal_rows([user.login], since, since + 3600)
    assert [r for r in rows if r[0] == str(ticket)] == [
        tuple(str(getattr(deal, c)) for c in p.DEAL_ROW_COLUMNS)
    ]


async def test_a_withdrawal_beyond_the_balance_is_not_enough_money(mt5):
    user = await mt5.create_account(new_account())
    await mt5.balance_operation(user.login, p.BalanceType.BALANCE, Decimal("100"), "fx:op-1")
    with pytest.raises(p.NotEnoughMoney) as caught:
        await mt5.balance_operation(user.login, p.BalanceType.BALANCE, Decimal("-100.01"), "fx:op-2")
    assert caught.value.code == 10019
    await mt5.balance_operation(user.login, p.BalanceType.BALANCE, Decimal("-100"), "fx:op-3")
    [state] = await mt5.fetch_accounts([user.login])
    assert state.balance == 0


async def test_credit_and_bonus_are_balance_deals_of_their_own_type(mt5):
    user = await mt5.create_account(new_account())
    since = await mt5.server_time() - 5
    await mt5.balance_operation(user.login, p.BalanceType.CREDIT, Decimal("50"), "fx:credit")
    await mt5.balance_operation(user.login, p.BalanceType.BONUS, Decimal("5"), "fx:bonus")
    actions = sorted(d.action for d in await mt5.fetch_deals([user.login], since, since + 3600))
    assert actions == [3, 6]
    [state] = await mt5.fetch_accounts([user.login])
    assert state.credit == Decimal("50")


async def test_it_finds_its_own_balance_operation_by_comment(mt5):
    user = await mt5.create_account(new_account())
    since = await mt5.server_time() - 5
    for i in range(3):
        await mt5.balance_operation(user.login, p.BalanceType.BALANCE, Decimal("10"), f"fx:op-{i}")
    found = await mt5.find_balance_operation(user.login, "fx:op-1", since)
    assert found is not None and found.comment == "fx:op-1" and found.profit == Decimal("10")
    assert await mt5.find_balance_operation(user.login, "fx:op-9", since) is None
    assert await mt5.find_balance_operation(user.login, "fx:op", since) is None  # exact comments only


async def test_finding_an_operation_pages_through_more_than_a_hundred_deals(mt5_sim):
    platform = connect(mt5_sim, pool_size=4)
    try:
        user = await platform.create_account(new_account())
        since = await platform.server_time() - 5
        await asyncio.gather(
            *(
                platform.balance_operation(user.login, p.BalanceType.BALANCE, Decimal("1"), f"fx:op-{i}")
                for i in range(230)
            )
        )
        found = await platform.find_balance_operation(user.login, "fx:op-229", since)
        assert found is not None and found.comment == "fx:op-229"
    finally:
        await platform.close()


async def test_fetching_accounts_and_deals_spans_many_logins_in_chunks(mt5_sim):
    platform = connect(mt5_sim, batch_logins=3)
    try:
        since = await platform.server_time() - 5
        logins = []
        for i in range(7):
            user = await platform.create_account(new_account(name=f"Trader {i}"))
            await platform.balance_operation(user.login, p.BalanceType.BALANCE, Decimal(100 + i), f"fx:{i}")
            logins.append(user.login)
        states = await platform.fetch_accounts(logins)
        assert sorted((s.login, s.balance) for s in states) == [
            (x, Decimal(100 + i)) for i, x in enumerate(logins)
        ]
        deals = await platform.fetch_deals(logins, since, since + 3600)
        assert sorted(d.login for d in deals) == logins
        assert await platform.fetch_deals(logins, since - 3600, since - 1800) == []
    finally:
        await platform.close()


async def test_it_lists_the_groups_with_currency_leverage_and_commission(mt5):
    groups = {g.name: g for g in await mt5.list_groups()}
    assert groups[DEMO].currency == "USD" and groups[DEMO].leverage == 500
    assert groups["real\\pro-eur"].currency == "EUR"
    assert groups[STANDARD].commission_per_lot == Decimal("3.50")  # per side, as MT5 configures it


async def test_server_time_follows_the_servers_clock_offset(mt5_sim, mt5):
    assert abs(await mt5.server_time() - time.time()) < 5
    mt5_sim.control(clock_offset_seconds=7200)
    assert abs(await mt5.server_time() - time.time() - 7200) < 5


async def test_positions_of_simulated_traders_are_fetched(tmp_path):
    from tests.trading.conftest import start_sim

    sim = start_sim(tmp_path / "trading.sqlite3", trade_rate=200)
    platform = connect(sim)
    try:
        logins = []
        for i in range(5):
            user = await platform.create_account(
                new_account(name=f"Trader {i}", group=STANDARD, leverage=500)
            )
            await platform.balance_operation(user.login, p.BalanceType.BALANCE, Decimal("100000"), f"fx:{i}")
            logins.append(user.login)
        positions: list[p.Position] = []
        deadline = time.monotonic() + 20
        while not positions and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            positions = await platform.fetch_positions(logins)
        assert positions, "the simulated traders opened no position in 20 s"
        assert all(pos.login in logins and pos.volume > 0 and pos.symbol for pos in positions)
    finally:
        await platform.close()
        sim.stop()


async def test_a_dropped_connection_after_a_read_is_healed_transparently(mt5_sim):
    platform = connect(mt5_sim, pool_size=1)
    try:
        await platform.server_time()
        mt5_sim.control(drop_next=1)
        assert abs(await platform.server_time() - time.time()) < 5
        assert platform.pool.sessions[0].auth_count == 2
    finally:
        await platform.close()


async def test_a_dropped_connection_after_a_deposit_ran_is_an_unknown_outcome_found_afterwards(mt5_sim, mt5):
    user = await mt5.create_account(new_account())
    since = await mt5.server_time() - 5
    mt5_sim.control(drop_next=1)
    with pytest.raises(p.OutcomeUnknown):
        await mt5.balance_operation(user.login, p.BalanceType.BALANCE, Decimal("25"), "fx:lost-answer")
    found = await mt5.find_balance_operation(user.login, "fx:lost-answer", since)
    assert found is not None and found.profit == Decimal("25")
    [state] = await mt5.fetch_accounts([user.login])
    assert state.balance == Decimal("25")  # applied exactly once


async def test_a_queued_failure_becomes_its_typed_error(mt5_sim, mt5):
    user = await mt5.create_account(new_account())
    mt5_sim.control(fail_next={"command": "trade/balance", "retcode": 10019, "count": 1})
    with pytest.raises(p.NotEnoughMoney):
        await mt5.balance_operation(user.login, p.BalanceType.BALANCE, Decimal("25"), "fx:1")
    mt5_sim.control(error_rate=1.0)
    with pytest.raises(p.PlatformError) as caught:
        await mt5.get_user(user.login)
    assert caught.value.code == 2


async def test_broken_json_from_the_server_is_a_bad_response(mt5_sim, mt5):
    await mt5.server_time()
    mt5_sim.control(malformed_next=1)
    with pytest.raises(p.BadResponse):
        await mt5.server_time()
    assert await mt5.server_time() > 0


async def test_a_pool_runs_commands_concurrently_on_its_sessions(mt5_sim):
    platform = connect(mt5_sim, pool_size=4)
    try:
        await asyncio.gather(*(platform.server_time() for _ in range(4)))  # log every session in
        mt5_sim.control(latency_ms=200)
        started = time.monotonic()
        await asyncio.gather(*(platform.server_time() for _ in range(8)))
        elapsed = time.monotonic() - started
        assert elapsed < 1.2, f"8 commands of 200 ms on 4 sessions took {elapsed:.2f} s"
        assert all(s.auth_count == 1 for s in platform.pool.sessions)
    finally:
        await platform.close()


async def test_tls_with_verification_off_works_against_the_self_signed_certificate(tmp_path):
    from tests.trading.conftest import start_sim

    sim = start_sim(tmp_path / "tls.sqlite3", tls=True)
    try:
        trusting = connect(sim, verify_tls=False)
        assert abs(await trusting.server_time() - time.time()) < 5
        await trusting.close()
        strict = connect(sim, verify_tls=True)
        with pytest.raises(p.Unreachable) as caught:
            await strict.server_time()
        assert "certificate" in caught.value.message
        await strict.close()
    finally:
        sim.stop()
