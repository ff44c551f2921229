"""Running the simulator: state kept across restarts (even kill -9), TLS with a certificate kept
beside the state, the failure knobs, the idle timeout and the benchmark generator."""

from __future__ import annotations

import socket
import ssl
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.trading.conftest import Sim, start_sim
from tests.trading.sim_client import ALL_TIME, MT5, retcode, session


@pytest.mark.parametrize("how", ["terminate", "kill"])
def test_a_restart_keeps_accounts_balances_and_deals(tmp_path: Path, how: str) -> None:
    state = tmp_path / "sim.sqlite3"
    sim = start_sim(state)
    try:
        with session(sim) as mt5:
            login = mt5.add_user(Name="Kept")
            first = mt5.deposit(login, "250.50", comment="before restart")
            sim.control(paused=True, step=10)
            deals = mt5.ok("deal/get_batch", login=login, **ALL_TIME)
            positions = mt5.ok("position/get_batch", login=login)
            balance = mt5.ok("user/get", login=login)["Balance"]
    finally:
        sim.proc.kill() if how == "kill" else sim.stop()
        sim.proc.wait(10)
    sim = start_sim(state)
    try:
        with session(sim) as mt5:
            user = mt5.ok("user/get", login=login)
            assert user["Name"] == "Kept" and user["Balance"] == balance
            assert mt5.ok("deal/get_batch", login=login, **ALL_TIME) == deals
            assert [p["Position"] for p in mt5.ok("position/get_batch", login=login)] == [
                p["Position"] for p in positions
            ]
            assert mt5.code("user/check_password", login=login, type="main", password="Strong#Pass1") == 0
            assert mt5.deposit(login, "1") == int(deals[-1]["Deal"]) + 1 > first
            assert mt5.add_user() == login + 1
    finally:
        sim.stop()


def test_tls_works_and_the_certificate_is_generated_once(tmp_path: Path) -> None:
    state = tmp_path / "tls.sqlite3"
    sim = start_sim(state, tls=True)
    cert = state.with_name(state.name + ".crt")
    try:
        assert sim.url.startswith("https://") and cert.exists()
        with session(sim) as mt5:
            assert mt5.code("test/access") == 0
        with pytest.raises(httpx.HTTPError):
            httpx.get(sim.url + "/sim/status", verify=True)
        httpx.get(
            sim.url + "/sim/status", verify=ssl.create_default_context(cafile=str(cert))
        ).raise_for_status()  # pinned certificate
    finally:
        sim.stop()
    pem = cert.read_bytes()
    sim = start_sim(state, tls=True)
    try:
        assert cert.read_bytes() == pem
        with session(sim) as mt5:
            assert mt5.code("test/access") == 0
    finally:
        sim.stop()


def test_latency_delays_every_answer(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        mt5_sim.control(latency_ms=300)
        started = time.monotonic()
        assert mt5.code("test/access") == 0
        assert time.monotonic() - started >= 0.3
        mt5_sim.control(latency_ms=0)


def test_drop_next_runs_the_command_then_closes_the_connection(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        login = mt5.add_user()
        mt5_sim.control(drop_next=1)
        assert mt5.code("test/access") == 0  # keep-alive pings do not use up the knob
        with pytest.raises(httpx.TransportError):
            mt5.call("trade/balance", login=login, type=2, balance="100", comment="fx:dropped")
        assert mt5.raw("test/access").status_code == 403  # the session went with the connection
    with session(mt5_sim) as mt5:
        deals = mt5.ok("deal/get_batch", login=login, **ALL_TIME)
        assert [d["Comment"] for d in deals] == ["fx:dropped"]  # it did happen: outcome unknown to the client
        assert mt5.ok("user/get", login=login)["Balance"] == "100.00"
        assert mt5_sim.status()["knobs"]["drop_next"] == 0


def test_drop_rate_closes_connections(mt5_sim: Sim) -> None:
    mt5_sim.control(drop_rate=1.0)
    with MT5(mt5_sim) as mt5, pytest.raises(httpx.TransportError):
        mt5.call("auth/start", version=484, agent="x", login=1000, type="manager")
    mt5_sim.control(drop_rate=0.0)
    with session(mt5_sim) as mt5:
        assert mt5.code("test/access") == 0


def test_error_rate_answers_common_errors_without_running_the_command(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        login = mt5.add_user()
        mt5_sim.control(error_rate=1.0)
        assert mt5.call("trade/balance", login=login, type=2, balance="5", comment="") == {
            "retcode": "2 Common error"
        }
        assert mt5.code("test/access") == 0
        mt5_sim.control(error_rate=0.0)
        assert mt5.ok("user/get", login=login)["Balance"] == "0.00"


def test_fail_next_answers_the_given_retcode_once(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        login = mt5.add_user()
        mt5_sim.control(fail_next={"command": "trade/balance", "retcode": 10019, "count": 1})
        assert mt5.code("user/get", login=login) == 0
        assert mt5.code("trade/balance", login=login, type=2, balance="5", comment="") == 10019
        assert mt5.code("trade/balance", login=login, type=2, balance="5", comment="") == 0
        assert mt5.ok("user/get", login=login)["Balance"] == "5.00"
        mt5_sim.control(fail_next={"command": "auth/answer", "retcode": 1008})
    with MT5(mt5_sim) as mt5:
        assert retcode(mt5.login()) == 1008
        assert retcode(mt5.login()) == 0


def test_malformed_next_breaks_the_json_of_the_next_answer(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        login = mt5.add_user()
        mt5_sim.control(malformed_next=1)
        response = mt5.raw("trade/balance", login=login, type=2, balance="7", comment="x")
        assert response.status_code == 200
        with pytest.raises(ValueError):
            response.json()
        assert mt5.ok("user/get", login=login)["Balance"] == "7.00"  # it ran; only the answer broke


def test_an_idle_connection_is_dropped(tmp_path: Path) -> None:
    sim = start_sim(tmp_path / "idle.sqlite3", extra=["--idle-timeout", "1"])
    try:
        with socket.create_connection((sim.host, sim.port)) as raw:
            raw.settimeout(5)
            started = time.monotonic()
            assert raw.recv(1) == b""
            assert 0.8 <= time.monotonic() - started < 4
        with session(sim) as mt5:
            time.sleep(1.5)
            assert mt5.raw("test/access").status_code == 403  # reconnected, so unauthenticated
    finally:
        sim.stop()


def test_the_benchmark_generator_builds_consistent_history(tmp_path: Path) -> None:
    sim = start_sim(tmp_path / "bench.sqlite3", extra=["--accounts", "40", "--history-deals", "3000"])
    try:
        sim.control(paused=True)
        status = sim.status()
        assert status["accounts"] == 40 and status["deals"] == 3000 and status["last_deal"] == 3000
        with session(sim) as mt5:
            deals = mt5.ok("deal/get_batch", group="*", **ALL_TIME)
            assert [int(d["Deal"]) for d in deals] == list(range(1, 3001))
            times = [int(d["TimeMsc"]) for d in deals]
            assert (
                times == sorted(times)
                and times[-1] <= int(mt5.ok("time/server")["Time"].split()[0]) * 1000 + 999
            )
            for login in (100001, 100020, 100040):
                mine = [d for d in deals if d["Login"] == str(login)]
                total = sum(
                    Decimal(d["Profit"]) + Decimal(d["Commission"]) + Decimal(d["Storage"]) for d in mine
                )
                assert Decimal(mt5.ok("user/get", login=login)["Balance"]) == total
            page = mt5.ok("deal/get_page", login=100001, offset=0, total=100, **ALL_TIME)
            assert page[0]["Action"] == "2"
            assert mt5.code("user/check_password", login=100001, type="main", password="Bench#2026") == 0
    finally:
        sim.stop()
