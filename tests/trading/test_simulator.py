"""The MT5 simulator seen from a third-party client: protocol, users, balance operations, deals
and groups, over a real HTTP connection to a real `fxcrm mt5-sim` process."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import httpx

from tests.trading.conftest import Sim
from tests.trading.sim_client import (
    ALL_TIME,
    INVESTOR,
    MT5,
    STRONG,
    password_hash,
    rand_answer,
    retcode,
    session,
)


def test_the_published_test_vectors_hold_for_our_independent_hash() -> None:
    ph = password_hash("Password1")
    assert ph.hex() == "904ba8ecb16273d2f0ae9c3b8a023752"
    assert rand_answer(ph, "73007dc7184747ce0f7c98516ef1c851") == "77fe51827f7fa69dd80fbec9aa33f1bb"
    assert rand_answer(ph, "4db98fec17aab4dc5a240bdc659e8395") == "1732021b1b332f51660b2b315eed3a35"


def test_it_authenticates_a_manager_and_proves_it_knows_the_password(mt5_sim: Sim) -> None:
    with MT5(mt5_sim) as mt5:
        start = mt5.call("auth/start", version=484, agent="thirdparty", login=1000, type="manager")
        assert start["retcode"] == "0 Done"
        assert len(bytes.fromhex(start["srv_rand"])) == 16 and "version_access" in start
        assert "answer" not in start
        ph = password_hash("Manager#2026")
        cli_rand = hashlib.md5(
            b"any token", usedforsecurity=False
        ).hexdigest()  # some clients send an MD5 of a token
        answer = mt5.call(
            "auth/answer", srv_rand_answer=rand_answer(ph, start["srv_rand"]), cli_rand=cli_rand
        )
        assert answer["retcode"] == "0 Done"
        assert answer["cli_rand_answer"] == rand_answer(ph, cli_rand)
        assert {"version_access", "version_trade"} <= answer.keys()
        assert mt5.call("test/access") == {"retcode": "0 Done"}


def test_it_refuses_a_bad_hash_with_1008_and_the_connection_must_authenticate_again(mt5_sim: Sim) -> None:
    with MT5(mt5_sim) as mt5:
        assert retcode(mt5.login(password="Wrong#2026")) == 1008
        denied = mt5.raw("test/access")
        assert denied.status_code == 403 and denied.json() == {"retcode": "8 Not enough permissions"}
        mt5.call("auth/start", version=484, agent="x", login=1000, type="manager")
        assert mt5.code("auth/answer", srv_rand_answer="00" * 16, cli_rand=os.urandom(16).hex()) == 1008
        assert retcode(mt5.login(login=1001)) == 1008  # not a manager login
        assert retcode(mt5.login()) == 0
        assert mt5.code("test/access") == 0


def test_it_checks_the_auth_start_parameters(mt5_sim: Sim) -> None:
    with MT5(mt5_sim) as mt5:
        good = {"version": 484, "agent": "crm", "login": 1000, "type": "manager"}
        assert mt5.code("auth/start", **good) == 0
        assert mt5.code("auth/start", **{**good, "version": 483}) == 3
        assert mt5.code("auth/start", **{**good, "agent": "my crm"}) == 3
        assert mt5.code("auth/start", **{**good, "agent": ""}) == 3
        assert mt5.code("auth/start", **{**good, "type": "client"}) == 3
        assert mt5.code("auth/answer", srv_rand_answer="00", cli_rand=os.urandom(16).hex()) == 3  # no start
        mt5.call("auth/start", **good)
        assert mt5.code("auth/answer", srv_rand_answer="00", cli_rand="abc") == 3  # cli_rand not 16 bytes


def test_commands_before_authentication_get_403_and_unknown_commands_get_3(mt5_sim: Sim) -> None:
    with MT5(mt5_sim) as mt5:
        for command in ("user/get", "trade/balance", "deal/get_batch", "no/such"):
            response = mt5.raw(command, login=100001)
            assert response.status_code == 403
            assert response.json() == {"retcode": "8 Not enough permissions"}
        mt5.login()
        response = mt5.raw("no/such")
        assert response.status_code == 404 and retcode(response.json()) == 3


def test_the_session_is_bound_to_the_connection(mt5_sim: Sim) -> None:
    with session(mt5_sim) as first, MT5(mt5_sim) as second:
        assert first.code("test/access") == 0
        assert second.raw("test/access").status_code == 403
        assert first.code("test/access") == 0


def test_quit_ends_the_session(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        assert mt5.call("quit") == {"retcode": "0 Done"}
        assert mt5.raw("test/access").status_code == 403  # a new connection, not authenticated


def test_server_time_follows_the_clock_offset_knob(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        before = int(mt5.ok("time/server")["Time"].split()[0])
        mt5_sim.control(clock_offset_seconds=7200)
        text = mt5.ok("time/server")["Time"]
        after = int(text.split()[0])
        assert 7190 <= after - before <= 7210
        assert len(text.split()) == 3 and text.split()[1].count(".") == 2
        assert mt5_sim.status()["server_time"] >= after


def test_user_add_allocates_a_login_and_answers_an_mt5_user_record(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        payload = mt5.call(
            "user/add",
            {
                "PassMain": STRONG,
                "PassInvestor": INVESTOR,
                "Name": "Ann Lee",
                "Email": "ann@example.com",
                "ID": "c-7",
            },
            group="real\\standard-usd",
            leverage=100,
        )
        assert payload["retcode"] == "0 Done"
        user = payload["answer"]
        assert payload["login"] == user["Login"] and int(user["Login"]) >= 100001
        assert user["Group"] == "real\\standard-usd" and user["Name"] == "Ann Lee" and user["ID"] == "c-7"
        assert user["Leverage"] == "100" and user["Rights"] == str(0x163) and user["Balance"] == "0.00"
        expected = {"Login", "Group", "Rights", "Registration", "LastAccess", "LastIP", "Name", "FirstName",
                    "LastName", "Company", "Account", "Country", "Language", "City", "State", "ZipCode",
                    "Address", "Phone", "Email", "ID", "Status", "Comment", "Color", "Leverage", "Agent",
                    "Balance", "Credit", "BalancePrevDay", "EquityPrevDay", "LeadCampaign", "LeadSource",
                    "ClientID"}  # fmt: skip
        assert expected <= user.keys()
        assert all(isinstance(v, str) for v in user.values())
        assert mt5.ok("user/get", login=user["Login"]) == user
        # passwords as query parameters work too, and an explicit login is honoured
        payload = mt5.call(
            "user/add", login=555000, pass_main=STRONG, pass_investor=INVESTOR, group="demo\\forex-usd"
        )
        assert payload["login"] == "555000" and payload["answer"]["Leverage"] == "500"


def test_user_add_rejects_duplicates_weak_passwords_and_unknown_groups(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        login = mt5.add_user()
        good = {"PassMain": STRONG, "PassInvestor": INVESTOR}
        assert mt5.code("user/add", {**good, "Login": login}, group="real\\standard-usd") == 3004
        assert mt5.code("user/add", good, group="real\\nope") == 8
        assert mt5.code("user/add", good) == 3  # no group
        for weak in ("Ab1#", "abcdefgh12", "ABCDEFGH", "Abcdefgh", "Abcd#1234567890xyz"):
            assert mt5.code("user/add", {**good, "PassMain": weak}, group="real\\standard-usd") == 3006, weak
        assert mt5.code("user/add", {**good, "PassInvestor": "short"}, group="real\\standard-usd") == 3006
        assert (
            mt5.code("user/add", {"PassMain": "abcdefg1#"}, group="real\\standard-usd") == 3006
        )  # 3 classes ok, no investor
        assert mt5.code("user/add", "not an object", group="real\\standard-usd") == 3


def test_user_update_changes_only_the_given_fields(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        login = mt5.add_user(Name="Old Name", Email="a@example.com")
        user = mt5.ok("user/update", {"Name": "New Name", "Leverage": 200, "Rights": 0x167}, login=login)
        assert user["Name"] == "New Name" and user["Leverage"] == "200" and user["Rights"] == str(0x167)
        assert user["Email"] == "a@example.com"
        assert mt5.ok("user/update", {"Group": "real\\pro-eur"}, login=login)["Group"] == "real\\pro-eur"
        assert mt5.code("user/update", {"Group": "real\\nope"}, login=login) == 8
        assert mt5.ok("user/get", login=login)["Group"] == "real\\pro-eur"
        assert mt5.code("user/update", {"Name": "x"}, login=999999) == 13
        assert mt5.code("user/get", login=999999) == 13
        assert mt5.code("user/update", {"Leverage": 0}, login=login) == 3
        assert mt5.ok("user/update", login=login, comment="via query")["Comment"] == "via query"


def test_passwords_are_checked_changed_and_never_stored_in_clear(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        login = mt5.add_user()
        assert mt5.code("user/check_password", login=login, type="main", password=STRONG) == 0
        assert mt5.code("user/check_password", login=login, type="investor", password=INVESTOR) == 0
        assert mt5.code("user/check_password", login=login, type="main", password=INVESTOR) == 3006
        assert mt5.code("user/check_password", login=999999, type="main", password=STRONG) == 13
        assert mt5.code("user/change_password", login=login, type="main", password="weak") == 3006
        assert mt5.code("user/change_password", login=login, type="boss", password="New#Pass99") == 3
        assert mt5.code("user/change_password", login=login, type="investor", password="New#Pass99") == 0
        assert mt5.code("user/check_password", login=login, type="investor", password="New#Pass99") == 0
        assert mt5.code("user/check_password", login=login, type="investor", password=INVESTOR) == 3006
        assert mt5.code("user/change_password", login=login, type="api", password="Api#Pass99") == 0
        assert mt5.code("user/check_password", login=login, type="api", password="Api#Pass99") == 0
    dump = "\n".join(sqlite3.connect(mt5_sim.state).iterdump())
    for clear in (STRONG, INVESTOR, "New#Pass99", "Api#Pass99"):
        assert clear not in dump


def test_a_deposit_is_a_deal_with_its_comment_and_shows_at_once(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        login = mt5.add_user()
        ticket = mt5.deposit(login, "1500.25", comment="fx:op-123 deposit")
        assert mt5.ok("user/get", login=login)["Balance"] == "1500.25"
        account = mt5.ok("user/account/get", login=login)
        assert account["Balance"] == "1500.25" and account["Equity"] == "1500.25"
        assert account["MarginFree"] == "1500.25" and account["Margin"] == "0.00"
        assert all(isinstance(v, str) for v in account.values())
        deal = mt5.ok("deal/get", ticket=ticket)
        assert deal["Deal"] == str(ticket) and deal["Login"] == str(login)
        assert (
            deal["Action"] == "2" and deal["Profit"] == "1500.25" and deal["Comment"] == "fx:op-123 deposit"
        )
        assert deal["Dealer"] == "1000"
        assert mt5.ok("deal/get_page", login=login, offset=0, total=10, **ALL_TIME) == [deal]
        credit = mt5.deposit(login, "100", comment="credit", type_=3)
        assert credit == ticket + 1
        assert mt5.ok("user/get", login=login)["Credit"] == "100.00"
        assert mt5.ok("user/account/get", login=login)["Equity"] == "1600.25"
        withdrawal = mt5.deposit(login, "-500.25", comment="fx:wd")
        assert mt5.ok("deal/get", ticket=withdrawal)["Profit"] == "-500.25"
        assert mt5.ok("user/get", login=login)["Balance"] == "1000.00"
        for kind in (4, 5, 6):
            mt5.deposit(login, "1", type_=kind, comment=f"type {kind}")
        assert mt5.ok("user/get", login=login)["Balance"] == "1003.00"
        assert mt5.code("deal/get", ticket=999999) == 13


def test_balance_operations_refuse_what_mt5_refuses(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        login = mt5.add_user()
        mt5.deposit(login, "100")
        mt5.deposit(login, "50", type_=3)

        def code(**params: object) -> int:
            return mt5.code(
                "trade/balance", **{"login": login, "type": 2, "balance": "1", "comment": "", **params}
            )

        assert code(balance="-100.01") == 10019
        assert code(type=3, balance="-50.01") == 10019
        assert code(balance="1000000001") == 4005
        assert code(balance="-1000000001") == 4005
        assert code(type=7) == 3 and code(type=1) == 3 and code(type="x") == 3
        assert code(balance="0") == 3 and code(balance="abc") == 3
        assert code(comment="x" * 33) == 3
        assert code(comment="x" * 32) == 0
        assert code(login=999999) == 13
        assert mt5.ok("user/get", login=login)["Balance"] == "101.00"
        assert code(balance="-101") == 0
        assert mt5.ok("user/get", login=login)["Balance"] == "0.00"


def test_deals_page_and_batch_by_login_group_symbol_and_time(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        usd = mt5.add_user("real\\standard-usd")
        eur = mt5.add_user("real\\pro-eur")
        demo = mt5.add_user("demo\\forex-usd")
        tickets = [mt5.deposit(usd, str(i + 1), comment=f"n{i}") for i in range(130)]
        mt5.deposit(eur, "10")
        mt5.deposit(demo, "20")
        assert mt5.ok("deal/get_total", login=usd, **ALL_TIME) == {"Total": "130"}
        first = mt5.ok("deal/get_page", login=usd, offset=0, total=100, **ALL_TIME)
        rest = mt5.ok("deal/get_page", login=usd, offset=100, total=100, **ALL_TIME)
        assert [int(d["Deal"]) for d in first + rest] == tickets
        assert mt5.code("deal/get_page", login=usd, offset=0, total=101, **ALL_TIME) == 3
        assert mt5.code("deal/get_total") == 3
        both = mt5.ok("deal/get_batch", login=f"{eur},{demo}", **ALL_TIME)
        assert [d["Login"] for d in both] == [str(eur), str(demo)]
        real = mt5.ok("deal/get_batch", group="real\\*", **ALL_TIME)
        assert {d["Login"] for d in real} == {str(usd), str(eur)} and len(real) == 131
        assert [int(d["Deal"]) for d in real] == sorted(int(d["Deal"]) for d in real)
        assert len(mt5.ok("deal/get_batch", group="*,!demo\\*", **ALL_TIME)) == 131
        assert mt5.ok("deal/get_batch", login=usd, symbol="EURUSD", **ALL_TIME) == []
        # time windows are server time: move the clock a day ahead, then filter on it
        now = int(mt5.ok("time/server")["Time"].split()[0])
        mt5_sim.control(clock_offset_seconds=86400)
        late = mt5.deposit(demo, "5", comment="tomorrow")
        window = mt5.ok("deal/get_batch", login=demo, **{"from": now + 3600, "to": now + 2 * 86400})
        assert [int(d["Deal"]) for d in window] == [late]
        assert int(window[0]["Time"]) >= now + 86400
        assert mt5.ok("deal/get_total", login=demo, **{"from": 0, "to": now + 60}) == {"Total": "1"}


def test_accounts_come_in_batches(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        a = mt5.add_user()
        b = mt5.add_user("real\\pro-eur")
        mt5.deposit(a, "10")
        batch = mt5.ok("user/account/get_batch", login=f"{a},{b},999999")
        assert [(x["Login"], x["Balance"]) for x in batch] == [(str(a), "10.00"), (str(b), "0.00")]
        expected = {"Login", "CurrencyDigits", "Balance", "Credit", "Margin", "MarginFree", "MarginLevel",
                    "MarginLeverage", "Profit", "Storage", "Commission", "Floating", "Equity", "SOActivation",
                    "SOTime", "SOLevel", "SOEquity", "SOMargin", "Assets", "Liabilities", "MarginInitial",
                    "MarginMaintenance"}  # fmt: skip
        assert expected <= batch[0].keys()
        assert [x["Login"] for x in mt5.ok("user/account/get_batch", group="real\\pro-eur")] == [str(b)]
        assert mt5.code("user/account/get", login=999999) == 13


def test_groups_have_currency_leverage_and_commission(mt5_sim: Sim) -> None:
    with session(mt5_sim) as mt5:
        groups = {g["Group"]: g for g in mt5.ok("group/get", mask="*")}
        assert set(groups) == {"demo\\forex-usd", "real\\standard-usd", "real\\pro-eur"}
        std = mt5.ok("group/get", group="real\\standard-usd")
        assert std == groups["real\\standard-usd"]
        assert (std["Currency"], std["CurrencyDigits"], std["DemoLeverage"]) == ("USD", "2", "500")
        assert std["Commissions"][0]["Tiers"][0]["Value"] == "3.50"
        eur = groups["real\\pro-eur"]
        assert (eur["Currency"], eur["DemoLeverage"], eur["Commissions"][0]["Tiers"][0]["Value"]) == (
            "EUR",
            "200",
            "2.50",
        )
        assert groups["demo\\forex-usd"]["Commissions"] == []
        assert float(std["MarginStopOut"]) < float(std["MarginCall"])
        assert [g["Group"] for g in mt5.ok("group/get", mask="real\\*")] == [
            "real\\pro-eur",
            "real\\standard-usd",
        ]
        assert mt5.code("group/get", group="real\\nope") == 13


def test_the_control_endpoint_rejects_unknown_knobs(mt5_sim: Sim) -> None:
    response = httpx.post(mt5_sim.url + "/sim/control", json={"warp": 9})
    assert response.status_code == 400
    response = httpx.post(mt5_sim.url + "/sim/control", json={"drop_rate": 2})
    assert response.status_code == 400
    status = mt5_sim.status()
    assert {"accounts", "deals", "positions", "last_deal", "server_time", "knobs"} <= status.keys()
    assert status["knobs"]["drop_rate"] == 0
