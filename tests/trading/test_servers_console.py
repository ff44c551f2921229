"""Accounts › Servers: administrators configure trading servers; the manager password is stored
encrypted, never shown again and never written to the audit trail."""

from __future__ import annotations

import json

import pytest

from app.core.tables import AuditEvent
from app.trading import credentials
from app.trading.tables import TradingServer
from tests.conftest import post_form
from tests.personas import sign_in
from tests.servers import free_port
from tests.trading.conftest import MANAGER_LOGIN, MANAGER_PASSWORD, Sim

SECRET_WORD = "S3cret#Manager!"  # noqa: S105 (a test value that must never show up anywhere)


def server_form(**overrides: str) -> dict[str, str]:
    form = {
        "name": "MT5 Live",
        "platform": "mt5",
        "address": "mt5.broker.test:443",
        "use_tls": "on",
        "verify_tls": "on",
        "manager_login": "1000",
        "password": SECRET_WORD,
        "timeout_seconds": "10",
        "pool_size": "2",
        "active": "on",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


async def audit_rows(action: str) -> list[dict]:
    rows = await AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.seq)
    return [
        {**r, "after": json.loads(r["after"] or "null"), "before": json.loads(r["before"] or "null")}
        for r in rows
    ]


async def test_an_admin_adds_a_server_whose_password_is_stored_encrypted_and_never_shown(client, personas):
    await sign_in(client, personas["admin"])
    r = await post_form(client, "/staff/accounts/servers/new", server_form())
    assert r.status_code == 303
    row = await TradingServer.select().first()
    assert r.headers["location"] == f"/staff/accounts/servers/{row['id']}?saved=1"
    assert (row["address"], row["manager_login"], row["use_tls"], row["verify_tls"]) == (
        "mt5.broker.test:443",
        1000,
        True,
        True,
    )
    assert SECRET_WORD.encode() not in bytes(row["password_enc"])
    assert credentials.decrypt(row["password_enc"], "MT5 Live") == SECRET_WORD
    page = await client.get(r.headers["location"])
    assert page.status_code == 200 and "Saved." in page.text and "mt5.broker.test:443" in page.text
    assert SECRET_WORD not in page.text
    listing = await client.get("/staff/accounts/servers")
    assert "MT5 Live" in listing.text and SECRET_WORD not in listing.text
    [created] = await audit_rows("trading.server_created")
    assert created["after"]["password_set"] is True and SECRET_WORD not in json.dumps(created["after"])


async def test_a_blank_password_on_edit_keeps_the_stored_one_even_when_the_server_is_renamed(
    client, personas
):
    await sign_in(client, personas["admin"])
    await post_form(client, "/staff/accounts/servers/new", server_form())
    row = await TradingServer.select().first()
    url = f"/staff/accounts/servers/{row['id']}"
    r = await post_form(client, url, server_form(name="MT5 Live 2", password="", timeout_seconds="20"))
    assert r.status_code == 303
    after = await TradingServer.select().first()
    assert after["name"] == "MT5 Live 2" and after["timeout_seconds"] == 20
    assert credentials.decrypt(after["password_enc"], "MT5 Live 2") == SECRET_WORD
    [updated] = await audit_rows("trading.server_updated")
    assert updated["before"] == {"name": "MT5 Live", "timeout_seconds": 10}
    assert updated["after"] == {"name": "MT5 Live 2", "timeout_seconds": 20}
    r = await post_form(
        client, url, server_form(name="MT5 Live 2", password="An0ther#Pass", timeout_seconds="20")
    )
    assert r.status_code == 303
    stored = await TradingServer.select().first()
    assert credentials.decrypt(stored["password_enc"], "MT5 Live 2") == "An0ther#Pass"
    assert (await audit_rows("trading.server_updated"))[-1]["after"] == {"password_changed": True}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("address", "https://mt5.broker.test", "host:port"),
        ("address", "mt5.broker.test:70000", "host:port"),
        ("manager_login", "abc", "manager login must be a whole number"),
        ("timeout_seconds", "0", "timeout must be a whole number from 1 to 120"),
        ("pool_size", "99", "pool size must be a whole number from 1 to 16"),
        ("password", "", "Enter the manager"),
        ("name", "", "Give the server a name"),
    ],
)
async def test_bad_values_are_refused_beside_their_field_and_nothing_is_saved(
    client, personas, field, value, message
):
    await sign_in(client, personas["admin"])
    r = await post_form(client, "/staff/accounts/servers/new", server_form(**{field: value}))
    assert r.status_code == 422
    assert message in r.text and f'id="e-{field}"' in r.text
    assert SECRET_WORD not in r.text  # the password field is never echoed back
    assert await TradingServer.count() == 0


async def test_a_second_server_with_the_same_name_is_refused(client, personas):
    await sign_in(client, personas["admin"])
    await post_form(client, "/staff/accounts/servers/new", server_form())
    r = await post_form(client, "/staff/accounts/servers/new", server_form(name="mt5 live"))
    assert r.status_code == 422 and "exists already" in r.text
    assert await TradingServer.count() == 1


async def saved_server(client, address: str, password: str, *, tls: bool = False) -> int:
    form = server_form(address=address, password=password, manager_login=str(MANAGER_LOGIN), verify_tls=None)
    if not tls:
        form.pop("use_tls")
    r = await post_form(client, "/staff/accounts/servers/new", form)
    assert r.status_code == 303, r.text
    return int(r.headers["location"].split("/")[-1].split("?")[0])


@pytest.mark.parametrize("htmx", [False, True])
async def test_test_connection_says_it_connected_to_the_simulator(client, personas, mt5_sim: Sim, htmx):
    await sign_in(client, personas["admin"])
    server_id = await saved_server(client, mt5_sim.address, MANAGER_PASSWORD)
    page = f"/staff/accounts/servers/{server_id}"
    r = await post_form(client, f"{page}/test", {}, page=page, htmx=htmx)
    assert r.status_code == 200
    assert "flash-success" in r.text and "Connected" in r.text
    assert ("<html" in r.text) is not htmx  # htmx gets the result block only
    [tested] = await audit_rows("trading.server_tested")
    assert tested["after"]["ok"] is True and MANAGER_PASSWORD not in json.dumps(tested["after"])


async def test_test_connection_reports_a_wrong_manager_password(client, personas, mt5_sim: Sim):
    await sign_in(client, personas["admin"])
    server_id = await saved_server(client, mt5_sim.address, "Wrong#Pass1")
    page = f"/staff/accounts/servers/{server_id}"
    r = await post_form(client, f"{page}/test", {}, page=page, htmx=True)
    assert r.status_code == 200 and "flash-error" in r.text
    assert "Wrong#Pass1" not in r.text
    [tested] = await audit_rows("trading.server_tested")
    assert tested["after"]["ok"] is False


async def test_test_connection_reports_a_server_that_does_not_answer(client, personas):
    await sign_in(client, personas["admin"])
    server_id = await saved_server(client, f"127.0.0.1:{free_port()}", MANAGER_PASSWORD)
    page = f"/staff/accounts/servers/{server_id}"
    r = await post_form(client, f"{page}/test", {}, page=page, htmx=True)
    assert r.status_code == 200 and "flash-error" in r.text
    assert "127.0.0.1" in r.text  # the operator is told which address failed


async def test_dealing_may_not_add_servers_and_nothing_is_written(client, personas):
    await sign_in(client, personas["dealing"])
    for htmx in (False, True):
        r = await post_form(
            client, "/staff/accounts/servers/new", server_form(), page="/staff/accounts", htmx=htmx
        )
        assert r.status_code == 403 and "role does not allow" in r.text
    assert await TradingServer.count() == 0
    assert await AuditEvent.count().where(AuditEvent.action.like("trading.%")) == 0
