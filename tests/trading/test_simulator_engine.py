"""The simulator's market engine seen through the MT5 API: positions, P/L, commission, swap,
margin, stop-out, and determinism from the seed."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.trading.conftest import Sim, start_sim
from tests.trading.sim_client import ALL_TIME, MT5, session


def _money(value: str) -> Decimal:
    return Decimal(value)


def _deals_without_times(mt5: MT5, login: int) -> list[dict[str, Any]]:
    deals = mt5.ok("deal/get_batch", login=login, **ALL_TIME)
    return [{k: v for k, v in d.items() if k not in ("Time", "TimeMsc")} for d in deals]


def _balance_matches_deals(mt5: MT5, login: int) -> None:
    deals = mt5.ok("deal/get_batch", login=login, **ALL_TIME)
    total = sum(_money(d["Profit"]) + _money(d["Commission"]) + _money(d["Storage"]) for d in deals)
    assert _money(mt5.ok("user/get", login=login)["Balance"]) == total


def _step_until_positions(sim: Sim, mt5: MT5, login: int, limit: int = 50) -> list[dict[str, Any]]:
    for _ in range(limit):
        sim.control(step=1)
        positions = mt5.ok("position/get_batch", login=login)
        if positions:
            return positions
    raise AssertionError("the simulated trader never opened a position")


def test_simulated_traders_open_and_close_positions_with_commission_and_pl(mt5_sim: Sim) -> None:
    mt5_sim.control(paused=True)
    with session(mt5_sim) as mt5:
        login = mt5.add_user("real\\standard-usd", Leverage=100)
        mt5.deposit(login, "10000")
        mt5_sim.control(step=40)
        deals = mt5.ok("deal/get_batch", login=login, **ALL_TIME)
        trades = [d for d in deals if d["Action"] in ("0", "1")]
        assert len(trades) == 40
        ins = {d["PositionID"]: d for d in trades if d["Entry"] == "0"}
        outs = [d for d in trades if d["Entry"] == "1"]
        assert ins and outs
        for out in outs:
            opened = ins[out["PositionID"]]
            assert out["Symbol"] == opened["Symbol"] and out["Volume"] == opened["Volume"]
            assert out["Action"] != opened["Action"]
            assert int(out["Deal"]) > int(opened["Deal"])
        for deal in trades:
            lots = Decimal(deal["Volume"]) / 10000
            assert Decimal("0.01") <= lots <= 5 and int(deal["VolumeExt"]) == int(deal["Volume"]) * 10000
            assert _money(deal["Commission"]) == -(Decimal("3.5") * lots).quantize(Decimal("0.01"))
            assert deal["Symbol"] and Decimal(deal["Price"]) > 0 and deal["Digits"] != "0"
        assert all(_money(d["Profit"]) == 0 for d in ins.values())
        _balance_matches_deals(mt5, login)

        positions = mt5.ok("position/get_batch", login=login)
        assert mt5.ok("position/get_total", login=login) == {"Total": str(len(positions))}
        assert mt5.ok("position/get_page", login=login, offset=0, total=100) == positions
        account = mt5.ok("user/account/get", login=login)
        profit = sum((_money(p["Profit"]) for p in positions), Decimal(0))
        storage = sum((_money(p["Storage"]) for p in positions), Decimal(0))
        assert abs(_money(account["Profit"]) - profit) <= Decimal("0.01") * max(1, len(positions))
        equity = _money(account["Balance"]) + _money(account["Credit"]) + _money(account["Profit"]) + storage
        assert abs(_money(account["Equity"]) - equity) <= Decimal("0.02")
        assert abs(
            _money(account["MarginFree"]) - (_money(account["Equity"]) - _money(account["Margin"]))
        ) <= Decimal("0.02")
        if positions:
            assert _money(account["Margin"]) > 0
            level = _money(account["Equity"]) / _money(account["Margin"]) * 100
            assert abs(_money(account["MarginLevel"]) - level) < 1
            one = positions[0]
            assert mt5.ok("position/get", login=login, symbol=one["Symbol"]) == one
            assert {"Position", "Login", "Symbol", "Action", "PriceOpen", "PriceCurrent", "Volume", "Profit",
                    "Storage", "TimeCreate", "Digits", "ContractSize"} <= one.keys()  # fmt: skip


def test_the_same_seed_and_steps_give_the_same_deals(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        sim = start_sim(tmp_path / f"{name}.sqlite3", seed=42)
        try:
            sim.control(paused=True)
            with session(sim) as mt5:
                logins = [mt5.add_user("real\\standard-usd"), mt5.add_user("real\\pro-eur")]
                for login in logins:
                    mt5.deposit(login, "5000")
                sim.control(step=60)
                runs.append([_deals_without_times(mt5, login) for login in logins])
        finally:
            sim.stop()
    assert runs[0] == runs[1]
    assert sum(len(d) for d in runs[0]) == 62
    other = start_sim(tmp_path / "c.sqlite3", seed=43)
    try:
        other.control(paused=True)
        with session(other) as mt5:
            login = mt5.add_user("real\\standard-usd")
            mt5.deposit(login, "5000")
            mt5.add_user("real\\pro-eur")
            other.control(step=60)
            assert _deals_without_times(mt5, login) != runs[0][0]
    finally:
        other.stop()


def test_trading_disabled_accounts_and_empty_accounts_are_left_alone(mt5_sim: Sim) -> None:
    mt5_sim.control(paused=True)
    with session(mt5_sim) as mt5:
        disabled = mt5.add_user(Rights=0x163 | 0x4)
        empty = mt5.add_user()
        mt5.deposit(disabled, "5000")
        mt5_sim.control(step=20)
        assert mt5.ok("deal/get_total", login=disabled, **ALL_TIME) == {"Total": "1"}
        assert mt5.ok("deal/get_total", login=empty, **ALL_TIME) == {"Total": "0"}
        mt5.ok("user/update", {"Rights": 0x163}, login=disabled)
        mt5_sim.control(step=5)
        assert int(mt5.ok("deal/get_total", login=disabled, **ALL_TIME)["Total"]) == 6


def test_a_withdrawal_is_limited_by_free_margin_and_a_forced_one_triggers_a_stop_out(mt5_sim: Sim) -> None:
    mt5_sim.control(paused=True)
    with session(mt5_sim) as mt5:
        login = mt5.add_user("demo\\forex-usd", Leverage=100)
        mt5.deposit(login, "2000")
        _step_until_positions(mt5_sim, mt5, login)
        account = mt5.ok("user/account/get", login=login)
        balance, free = _money(account["Balance"]), _money(account["MarginFree"])
        assert free < balance
        too_much = str(min(balance, free + 1))
        assert mt5.code("trade/balance", login=login, type=2, balance=f"-{too_much}", comment="wd") == 10019
        margin = _money(account["Margin"])
        # without the margin check the manager may take it anyway; the engine then stops the account out
        take = min(balance, _money(account["Equity"]) - margin * Decimal("0.3"))
        mt5.deposit(login, f"-{take}", comment="forced", check_margin=0)
        outs = [d for d in mt5.ok("deal/get_batch", login=login, **ALL_TIME) if d["Entry"] == "1"]
        assert outs and outs[-1]["Reason"] == "5" and outs[-1]["Comment"].startswith("[so ")
        after = mt5.ok("user/account/get", login=login)
        assert int(after["SOTime"]) > 0 and _money(after["SOLevel"]) <= 50
        assert _money(after["Margin"]) == 0 or _money(after["MarginLevel"]) > 50
        _balance_matches_deals(mt5, login)


def test_a_price_shock_stops_out_the_losing_side(mt5_sim: Sim) -> None:
    mt5_sim.control(paused=True)
    with session(mt5_sim) as mt5:
        login = mt5.add_user("demo\\forex-usd", Leverage=500)
        mt5.deposit(login, "300")
        positions = _step_until_positions(mt5_sim, mt5, login)
        moves = {p["Symbol"]: (-60 if p["Action"] == "0" else 150) for p in positions}
        mt5_sim.control(shock=moves)
        after = [d for d in mt5.ok("deal/get_batch", login=login, **ALL_TIME) if d["Reason"] == "5"]
        assert after and all(d["Entry"] == "1" for d in after)
        assert mt5.ok("position/get_total", login=login) == {"Total": "0"}


def test_a_rollover_charges_swap_that_is_realised_when_the_position_closes(mt5_sim: Sim) -> None:
    mt5_sim.control(paused=True)
    with session(mt5_sim) as mt5:
        login = mt5.add_user("real\\standard-usd", Leverage=100)
        mt5.deposit(login, "20000")
        positions = _step_until_positions(mt5_sim, mt5, login)
        assert all(p["Storage"] == "0.00" for p in positions)
        balance = mt5.ok("user/get", login=login)["Balance"]
        mt5_sim.control(rollover=True)
        assert mt5.ok("user/get", login=login)["BalancePrevDay"] == balance
        swapped = mt5.ok("position/get_batch", login=login)
        assert any(_money(p["Storage"]) != 0 for p in swapped)
        account = mt5.ok("user/account/get", login=login)
        assert _money(account["Storage"]) == sum(_money(p["Storage"]) for p in swapped)
        for _ in range(60):
            mt5_sim.control(step=1)
            if not mt5.ok("position/get_batch", login=login, ticket=",".join(p["Position"] for p in swapped)):
                break
        closed = {
            d["PositionID"]: d
            for d in mt5.ok("deal/get_batch", login=login, **ALL_TIME)
            if d["Entry"] == "1" and d["PositionID"] in {p["Position"] for p in swapped}
        }
        for pos in swapped:
            if pos["Position"] in closed:
                assert closed[pos["Position"]]["Storage"] == pos["Storage"]
        _balance_matches_deals(mt5, login)


def test_a_running_engine_produces_deals_at_the_trade_rate(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        logins = [mt5.add_user() for _ in range(3)]
        for login in logins:
            mt5.deposit(login, "10000")
        before = mt5_sim.status()["deals"]
        mt5_sim.control(trade_rate=20)
        time.sleep(1.5)
        mt5_sim.control(paused=True)
        made = mt5_sim.status()["deals"] - before
        assert 10 <= made <= 45
        eur = mt5.add_user("real\\pro-eur")
        assert mt5.ok("user/account/get", login=eur)["Balance"] == "0.00"
        batch = mt5.ok("deal/get_batch", group="*", **ALL_TIME)
        assert len(batch) == mt5_sim.status()["deals"]
        for login in logins:
            _balance_matches_deals(mt5, login)
