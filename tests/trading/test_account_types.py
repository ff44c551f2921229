"""Accounts › Account types: dealing names what clients may open; the group and its currency are
checked against the server when it answers."""

from __future__ import annotations

import json

import pytest

from app.core.tables import AuditEvent
from app.trading.account_types import parse_leverages
from app.trading.tables import AccountType
from tests.conftest import post_form
from tests.personas import sign_in
from tests.servers import free_port
from tests.trading.conftest import make_trading_server


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("30,100,500", [30, 100, 500]), (" 500, 30 ,100", [30, 100, 500]), ("1", [1]), ("10000", [10000])],
)
def test_leverages_are_parsed_as_whole_numbers_in_order(text, parsed):
    assert parse_leverages(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "whole numbers separated by commas"),
        ("30,,100", "whole numbers separated by commas"),
        ("30;100", "is not a whole number"),
        ("1:100", "is not a whole number"),
        ("100.5", "is not a whole number"),
        ("-30", "is not a whole number"),
        ("٣٠", "is not a whole number"),  # digits, but not ASCII ones
        ("0", "out of range"),
        ("20000", "out of range"),
        ("100,100", "listed twice"),
    ],
)
def test_anything_else_is_refused_with_a_reason(text, message):
    with pytest.raises(ValueError, match=message):
        parse_leverages(text)


def type_form(server_id: int, **overrides: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "name": "Standard USD",
        "server": str(server_id),
        "group_name": "real\\standard-usd",
        "currency": "usd",
        "leverages": "30,100,200,500",
        "default_leverage": "100",
        "active": "on",
        "description": "Our classic account.",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


async def test_dealing_adds_a_type_on_a_group_the_server_has(client, personas, trading_server):
    await sign_in(client, personas["dealing"])
    r = await post_form(
        client, "/staff/accounts/types/new", type_form(trading_server.id, group_name="REAL\\Standard-USD")
    )
    assert r.status_code == 303 and r.headers["location"].endswith("?saved=1")
    row = await AccountType.select().first()
    assert row["group_name"] == "real\\standard-usd"  # as the server spells it
    assert (row["currency"], row["leverages"], row["default_leverage"], row["is_demo"]) == (
        "USD",
        "30,100,200,500",
        100,
        False,
    )
    page = await client.get(r.headers["location"])
    assert "Saved." in page.text and "could not be checked" not in page.text
    listing = await client.get("/staff/accounts/types")
    assert "Standard USD" in listing.text and "real\\standard-usd" in listing.text
    [created] = await AuditEvent.select().where(AuditEvent.action == "trading.account_type_created")
    assert json.loads(created["after"])["group_checked"] is True


async def test_a_group_the_server_does_not_have_is_refused_with_the_groups_it_has(
    client, personas, trading_server
):
    await sign_in(client, personas["dealing"])
    r = await post_form(
        client, "/staff/accounts/types/new", type_form(trading_server.id, group_name="real\\nope")
    )
    assert r.status_code == 422
    assert "There is no group “real\\nope” on MT5 sim" in r.text and "demo\\forex-usd" in r.text
    assert await AccountType.count() == 0


async def test_a_currency_other_than_the_groups_is_refused(client, personas, trading_server):
    await sign_in(client, personas["dealing"])
    r = await post_form(
        client, "/staff/accounts/types/new", type_form(trading_server.id, group_name="real\\pro-eur")
    )
    assert r.status_code == 422 and "The group real\\pro-eur is in EUR" in r.text
    assert await AccountType.count() == 0


async def test_a_default_leverage_not_offered_and_bad_leverages_are_refused(client, personas, trading_server):
    await sign_in(client, personas["dealing"])
    r = await post_form(
        client, "/staff/accounts/types/new", type_form(trading_server.id, default_leverage="50")
    )
    assert r.status_code == 422 and "must be one of those offered" in r.text
    r = await post_form(client, "/staff/accounts/types/new", type_form(trading_server.id, leverages="30,abc"))
    assert r.status_code == 422 and "is not a whole number" in r.text and 'value="30,abc"' in r.text
    assert await AccountType.count() == 0


async def test_when_the_server_does_not_answer_the_type_is_saved_with_a_note(client, personas, settings):
    class Down:
        address = f"127.0.0.1:{free_port()}"
        tls = False

    server = await make_trading_server(Down(), name="Down")  # type: ignore[arg-type]
    await sign_in(client, personas["dealing"])
    r = await post_form(client, "/staff/accounts/types/new", type_form(server.id))
    assert r.status_code == 303 and "unchecked=1" in r.headers["location"]
    page = await client.get(r.headers["location"])
    assert "could not be checked" in page.text
    [created] = await AuditEvent.select().where(AuditEvent.action == "trading.account_type_created")
    assert json.loads(created["after"])["group_checked"] is False


async def test_an_edit_is_audited_with_what_changed(client, personas, trading_server):
    await sign_in(client, personas["dealing"])
    r = await post_form(client, "/staff/accounts/types/new", type_form(trading_server.id))
    url = r.headers["location"].split("?")[0]
    r = await post_form(
        client, url, type_form(trading_server.id, leverages="30,100", default_leverage="30", active=None)
    )
    assert r.status_code == 303
    row = await AccountType.select().first()
    assert (row["leverages"], row["default_leverage"], row["active"]) == ("30,100", 30, False)
    [updated] = await AuditEvent.select().where(AuditEvent.action == "trading.account_type_updated")
    assert json.loads(updated["before"]) == {
        "leverages": "30,100,200,500",
        "default_leverage": 100,
        "active": True,
    }
    assert json.loads(updated["after"]) == {"leverages": "30,100", "default_leverage": 30, "active": False}


async def test_finance_enters_the_accounts_section_but_not_account_types(client, personas, trading_server):
    await sign_in(client, personas["finance"])
    assert (await client.get("/staff/accounts")).status_code == 200
    r = await post_form(
        client, "/staff/accounts/types/new", type_form(trading_server.id), page="/staff/accounts"
    )
    assert r.status_code == 403 and await AccountType.count() == 0
