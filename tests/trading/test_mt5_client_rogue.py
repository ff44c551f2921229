"""The MT5 client against a server that misbehaves on purpose (tests/trading/rogue_server.py): a fake
server, broken answers, slow answers, dropped connections. What matters most: a money command is
never sent twice when its outcome is unknown, and every failure is a typed error with a message."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from app.trading import platform as p
from app.trading.mt5.client import SessionPool, WebApiSession
from app.trading.mt5.platform import MT5Platform
from tests.servers import free_port
from tests.trading.conftest import MANAGER_LOGIN, MANAGER_PASSWORD
from tests.trading.rogue_server import RogueServer


def session_on(
    rogue: RogueServer, *, password: str = MANAGER_PASSWORD, timeout: float = 2.0, **kw
) -> WebApiSession:
    return WebApiSession(rogue.address, MANAGER_LOGIN, password, tls=False, timeout=timeout, **kw)


def platform_on(rogue: RogueServer, *, timeout: float = 2.0, pool_size: int = 1) -> MT5Platform:
    return MT5Platform(
        rogue.address, MANAGER_LOGIN, MANAGER_PASSWORD, tls=False, timeout=timeout, pool_size=pool_size
    )


async def test_the_login_exchange_follows_the_published_test_vectors(monkeypatch):
    from app.trading.mt5 import client

    async with RogueServer(password="Password1") as rogue:
        rogue.srv_rand = "73007dc7184747ce0f7c98516ef1c851"
        monkeypatch.setattr(client.os, "urandom", lambda n: bytes.fromhex("4db98fec17aab4dc5a240bdc659e8395"))
        session = session_on(rogue, password="Password1")
        await session.call("test/access")
        start, answer = rogue.params["auth/start"], rogue.params["auth/answer"]
        assert start == {"version": "484", "agent": "fxcrm", "login": str(MANAGER_LOGIN), "type": "manager"}
        assert answer == {
            "srv_rand_answer": "77fe51827f7fa69dd80fbec9aa33f1bb",
            "cli_rand": "4db98fec17aab4dc5a240bdc659e8395",
        }
        assert session.authenticated  # the server's cli_rand_answer 1732021b… was accepted
        await session.close()


async def test_a_server_that_cannot_prove_it_knows_the_password_is_refused_as_fake():
    async with RogueServer() as rogue:
        rogue.bad.wrong_cli_answer = True
        session = session_on(rogue)
        with pytest.raises(p.AuthFailed) as caught:
            await session.call("trade/balance", {"login": 7, "type": 2, "balance": "100", "comment": "x"})
        assert "mutual authentication" in caught.value.message
        assert rogue.seen == ["auth/start", "auth/answer"]  # the money command never left
        assert not session.authenticated
        await session.close()


async def test_a_wrong_manager_password_is_an_auth_failure_with_a_clear_message():
    async with RogueServer() as rogue:
        session = session_on(rogue, password="Wrong#2026")
        with pytest.raises(p.AuthFailed) as caught:
            await session.call("time/server")
        assert "rejected manager 1000" in caught.value.message
        await session.close()


async def test_malformed_json_on_a_read_is_a_bad_response():
    async with RogueServer() as rogue:
        rogue.bad.malformed.add("time/server")
        platform = platform_on(rogue)
        with pytest.raises(p.BadResponse) as caught:
            await platform.server_time()
        assert "not the MT5 protocol" in caught.value.message
        rogue.bad.malformed.clear()
        assert await platform.server_time() == 1572518788  # and the client recovers
        await platform.close()


async def test_malformed_json_after_a_balance_operation_is_an_unknown_outcome_not_a_resend():
    async with RogueServer() as rogue:
        rogue.bad.malformed.add("trade/balance")
        platform = platform_on(rogue)
        with pytest.raises(p.OutcomeUnknown):
            await platform.balance_operation(7, p.BalanceType.BALANCE, Decimal("100.00"), "fx:op1")
        assert rogue.count("trade/balance") == 1
        await platform.close()


async def test_an_answer_without_a_retcode_is_a_bad_response():
    async with RogueServer() as rogue:
        rogue.bad.no_retcode.add("user/get")
        platform = platform_on(rogue)
        with pytest.raises(p.BadResponse):
            await platform.get_user(7)
        await platform.close()


async def test_a_balance_operation_that_times_out_is_an_unknown_outcome_and_is_sent_once():
    async with RogueServer() as rogue:
        rogue.bad.slow["trade/balance"] = 1.0
        platform = platform_on(rogue, timeout=0.3)
        with pytest.raises(p.OutcomeUnknown) as caught:
            await platform.balance_operation(7, p.BalanceType.BALANCE, Decimal("100.00"), "fx:op1")
        assert "Look for it before sending it again" in caught.value.message
        await asyncio.sleep(0.8)
        assert rogue.count("trade/balance") == 1
        await platform.close()


async def test_a_read_that_times_out_once_is_retried_transparently():
    async with RogueServer() as rogue:
        rogue.bad.slow["time/server"] = 1.0
        rogue.bad.slow_times["time/server"] = 1
        platform = platform_on(rogue, timeout=0.3)
        assert await platform.server_time() == 1572518788
        assert rogue.count("time/server") == 2
        await platform.close()


async def test_a_read_that_never_answers_in_time_makes_the_server_unreachable():
    async with RogueServer() as rogue:
        rogue.bad.slow["time/server"] = 1.0
        platform = platform_on(rogue, timeout=0.3)
        with pytest.raises(p.Unreachable) as caught:
            await platform.server_time()
        assert "did not answer" in caught.value.message
        assert rogue.count("time/server") == 2
        await platform.close()


async def test_a_connection_dropped_after_a_balance_operation_ran_is_an_unknown_outcome():
    async with RogueServer() as rogue:
        rogue.bad.close_after["trade/balance"] = 1
        platform = platform_on(rogue)
        with pytest.raises(p.OutcomeUnknown):
            await platform.balance_operation(7, p.BalanceType.BALANCE, Decimal("100.00"), "fx:op1")
        assert rogue.count("trade/balance", executed=True) == 1
        assert rogue.count("trade/balance") == 1
        # the session is rebuilt for the next command
        assert await platform.server_time() == 1572518788
        await platform.close()


async def test_a_connection_dropped_after_a_read_is_healed_by_logging_in_again():
    async with RogueServer() as rogue:
        rogue.bad.close_after["user/get"] = 1
        session = session_on(rogue)
        data = await session.call("user/get", {"login": 7})
        assert data["answer"]["Login"] == "7"
        assert session.auth_count == 2 and rogue.connections == 2
        await session.close()


async def test_a_lost_session_answered_with_403_is_logged_in_again_and_the_command_resent():
    async with RogueServer() as rogue:
        platform = platform_on(rogue)
        await platform.server_time()
        rogue.bad.forbid_next = 1  # the server no longer knows this connection: it refused unseen
        ticket = await platform.balance_operation(7, p.BalanceType.BALANCE, Decimal("100.00"), "fx:op1")
        assert ticket == 1001
        assert rogue.count("trade/balance", executed=True) == 1
        assert platform.pool.sessions[0].auth_count == 2
        await platform.close()


async def test_a_server_with_nothing_listening_is_unreachable():
    platform = MT5Platform(f"127.0.0.1:{free_port()}", MANAGER_LOGIN, MANAGER_PASSWORD, tls=False, timeout=1)
    with pytest.raises(p.Unreachable) as caught:
        await platform.balance_operation(7, p.BalanceType.BALANCE, Decimal("1"), "fx:op1")
    assert "cannot be reached" in caught.value.message
    with pytest.raises(p.Unreachable):
        await platform.fetch_deals([7], 0, 10)
    await platform.close()


async def test_pings_keep_an_idle_session_on_its_connection():
    async with RogueServer() as rogue:
        rogue.bad.idle_timeout = 0.5
        session = session_on(rogue, ping_interval=0.15)
        await session.call("time/server")
        await asyncio.sleep(1.2)
        await session.call("time/server")
        assert session.ping_count >= 4
        assert rogue.idle_drops == 0 and rogue.connections == 1 and session.auth_count == 1
        await session.close()


async def test_without_pings_the_server_drops_an_idle_session_and_the_client_logs_in_again():
    async with RogueServer() as rogue:
        rogue.bad.idle_timeout = 0.3
        session = session_on(rogue, ping_interval=0)
        await session.call("time/server")
        await asyncio.sleep(0.6)
        await session.call("time/server")
        assert rogue.idle_drops == 1 and session.auth_count == 2
        await session.close()


async def test_closing_a_session_says_quit():
    async with RogueServer() as rogue:
        session = session_on(rogue)
        await session.call("time/server")
        await session.close()
        assert rogue.seen[-1] == "quit"
        with pytest.raises(p.Unreachable):
            await session.call("time/server")


async def test_a_pool_spreads_concurrent_commands_over_its_sessions():
    async with RogueServer() as rogue:
        rogue.bad.slow["time/server"] = 0.3
        pool = SessionPool([session_on(rogue) for _ in range(3)])
        started = time.monotonic()
        await asyncio.gather(*(pool.call("time/server") for _ in range(6)))
        elapsed = time.monotonic() - started
        assert rogue.connections == 3
        assert 0.55 < elapsed < 1.2  # two rounds of three, not six in a row
        assert all(s.auth_count == 1 for s in pool.sessions)
        await pool.close()


async def test_one_session_runs_its_commands_one_at_a_time():
    async with RogueServer() as rogue:
        rogue.bad.slow["time/server"] = 0.2
        session = session_on(rogue)
        started = time.monotonic()
        await asyncio.gather(*(session.call("time/server") for _ in range(3)))
        assert time.monotonic() - started >= 0.6
        assert rogue.connections == 1
        await session.close()
