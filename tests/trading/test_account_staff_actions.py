"""Dealing changes existing accounts (re-link, group, trading rights) on the server and in the CRM,
audited; the console lists accounts and the client page shows them, to whoever may see the client;
live updates reach exactly the viewers who may see the account."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.core.errors import FormErrors
from app.core.live import Event, render_for
from app.trading import account_types, accounts, connections, staff_actions
from app.trading.tables import TradingAccount
from app.workbench.tables import TimelineEvent
from tests.conftest import post_form
from tests.personas import principal_of, sign_in
from tests.trading.accounts_support import account_audit, actor_of, make_types


@pytest.fixture
async def types(trading_server) -> dict[str, int]:
    return await make_types(trading_server.id)


@pytest.fixture
async def opened(personas, types, trading_server) -> dict:
    """client_a's demo account, open on the simulator."""
    a = personas["client_a"]
    result = await accounts.open_account(principal_of(a), types["demo"], "100", actor_of(a))
    return result.account


async def server_user(server_id: int, login: int):
    return await (await connections.platform_for(server_id)).get_user(login)


async def test_dealing_moves_an_account_to_another_client_with_a_reason(
    client, personas, opened, trading_server
):
    b = personas["client_b"]
    url = f"/staff/accounts/{opened['id']}"
    await sign_in(client, personas["dealing"])
    r = await post_form(client, f"{url}/relink", {"target": b.email, "reason": "x"}, page=url)
    assert r.status_code == 422 and "Say why the account moves" in r.text
    r = await post_form(
        client,
        f"{url}/relink",
        {"target": b.email.upper(), "reason": "Opened under the wrong profile"},
        page=url,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/staff/clients/{b.id}"
    row = await TradingAccount.select().where(TradingAccount.id == opened["id"]).first()
    assert row["client"] == b.id
    user = await server_user(trading_server.id, opened["login"])
    assert (user.client_ref, user.email, user.name) == (str(b.id), b.email, "Client Client_B")
    [moved] = [e for e in await account_audit(opened["id"]) if e["action"] == "trading.account_relinked"]
    assert moved["before"] == {"client_id": personas["client_a"].id}
    assert moved["after"] == {"client_id": b.id, "reason": "Opened under the wrong profile"}
    for who in (personas["client_a"].id, b.id):
        events = await TimelineEvent.select().where(
            (TimelineEvent.client == who) & (TimelineEvent.kind == "account")
        )
        assert any("Opened under the wrong profile" in e["summary"] for e in events)
    # client_a no longer sees it, client_b does.
    await sign_in(client, personas["client_a"])
    assert (await client.get(f"/portal/accounts/{opened['id']}")).status_code == 404
    await sign_in(client, b)
    assert (await client.get(f"/portal/accounts/{opened['id']}")).status_code == 200


async def test_a_relink_to_an_unknown_client_or_the_same_one_is_refused(personas, opened):
    d = personas["dealing"]
    for target in ("nobody@client.test", str(personas["client_a"].id), "99999999"):
        with pytest.raises(FormErrors) as refused:
            await staff_actions.relink(
                principal_of(d), opened["id"], target, "Because it is wrong", actor_of(d)
            )
        assert "target" in refused.value.errors


async def test_dealing_changes_the_group_within_the_currency_on_the_server(
    client, personas, opened, trading_server
):
    d = personas["dealing"]
    with pytest.raises(FormErrors) as refused:
        await staff_actions.change_group(principal_of(d), opened["id"], "real\\pro-eur", actor_of(d))
    assert refused.value.errors["group"] == "real\\pro-eur is in EUR; this account is in USD."
    with pytest.raises(FormErrors) as refused:
        await staff_actions.change_group(principal_of(d), opened["id"], "real\\nope", actor_of(d))
    assert "There is no group" in refused.value.errors["group"]
    url = f"/staff/accounts/{opened['id']}"
    await sign_in(client, d)
    r = await post_form(client, f"{url}/group", {"group": "real\\standard-usd"}, page=url, htmx=True)
    assert r.status_code == 200 and "Moved to group real\\standard-usd." in r.text and "<html" not in r.text
    assert (await server_user(trading_server.id, opened["login"])).group == "real\\standard-usd"
    row = await TradingAccount.select().where(TradingAccount.id == opened["id"]).first()
    assert row["group_name"] == "real\\standard-usd"
    [changed] = [e for e in await account_audit(opened["id"]) if e["action"] == "trading.group_changed"]
    assert (changed["before"], changed["after"]) == (
        {"group": "demo\\forex-usd"},
        {"group": "real\\standard-usd"},
    )


@pytest.mark.parametrize("htmx", [False, True])
async def test_dealing_disables_and_enables_trading_with_the_rights_flag(
    client, personas, opened, trading_server, htmx
):
    url = f"/staff/accounts/{opened['id']}"
    await sign_in(client, personas["dealing"])
    r = await post_form(
        client, f"{url}/trading", {"enabled": "0", "reason": "Abusive scalping"}, page=url, htmx=htmx
    )
    assert r.status_code == 200 and "Trading disabled." in r.text
    assert (await server_user(trading_server.id, opened["login"])).rights & staff_actions.TRADE_DISABLED
    assert (await TradingAccount.select().where(TradingAccount.id == opened["id"]).first())[
        "trading_disabled"
    ]
    r = await post_form(client, f"{url}/trading", {"enabled": "1"}, page=url, htmx=htmx)
    assert "Trading enabled." in r.text
    user = await server_user(trading_server.id, opened["login"])
    assert not user.rights & staff_actions.TRADE_DISABLED and user.rights & 0x1
    actions = [e["action"] for e in await account_audit(opened["id"])]
    assert actions[-2:] == ["trading.trading_disabled", "trading.trading_enabled"]


async def test_finance_and_sales_may_not_change_accounts(client, personas, opened, trading_server):
    url = f"/staff/accounts/{opened['id']}"
    for persona in ("finance", "sales"):
        await sign_in(client, personas[persona])
        for action, data in (
            ("trading", {"enabled": "0"}),
            ("group", {"group": "real\\standard-usd"}),
            ("relink", {"target": "1", "reason": "no reason"}),
            ("retry", {}),
        ):
            r = await post_form(client, f"{url}/{action}", data, page="/staff/clients")
            assert r.status_code == 403, (persona, action)
    user = await server_user(trading_server.id, opened["login"])
    assert not user.rights & staff_actions.TRADE_DISABLED and user.group == "demo\\forex-usd"


async def test_dealing_finishes_an_account_whose_creation_was_never_confirmed(
    client, personas, types, mt5_sim
):
    a = personas["client_a"]
    mt5_sim.control(drop_next=1)
    with pytest.raises(accounts.ProvisioningFailed):
        await accounts.open_account(principal_of(a), types["demo"], "100", actor_of(a))
    [row] = await TradingAccount.select()
    url = f"/staff/accounts/{row['id']}"
    await sign_in(client, personas["dealing"])
    page = await client.get(url)
    assert "never confirmed the first attempt" in page.text
    assert mt5_sim.status()["accounts"] == 1  # the server did create it; only the answer was lost
    r = await post_form(client, f"{url}/retry", {}, page=url, htmx=True)
    assert r.status_code == 200 and "Account opened." in r.text
    row = await TradingAccount.select().first()
    assert row["status"] == "active"
    assert mt5_sim.status()["accounts"] == 1  # adopted, not created a second time
    user = await server_user(row["server"], row["login"])
    assert user.comment == accounts.creation_comment(row["id"])
    assert "trading.account_found" in [e["action"] for e in await account_audit(row["id"])]


async def test_an_unconfirmed_creation_that_never_reached_the_server_is_created_on_retry(
    client, personas, types, mt5_sim
):
    a = personas["client_a"]
    mt5_sim.control(fail_next={"command": "user/add", "retcode": 9, "count": 1})  # 9: timeout, unknown
    with pytest.raises(accounts.ProvisioningFailed):
        await accounts.open_account(principal_of(a), types["demo"], "100", actor_of(a))
    assert mt5_sim.status()["accounts"] == 0
    [row] = await TradingAccount.select()
    await staff_actions.retry(principal_of(personas["dealing"]), row["id"], actor_of(personas["dealing"]))
    assert (await TradingAccount.select().first())["status"] == "active"
    assert mt5_sim.status()["accounts"] == 1


async def test_a_pending_account_cut_off_by_a_crash_is_finished_by_dealing_only_once_it_is_stale(
    personas, types, mt5_sim
):
    a = personas["client_a"]
    dealing = principal_of(personas["dealing"])
    t = await account_types.get_type(types["demo"])
    now = datetime.now(UTC)
    row = (  # what a crash right after the `pending` commit leaves behind
        await TradingAccount.insert(
            TradingAccount(
                client=a.id, server=t["server"], account_type=t["id"], group_name=t["group_name"],
                currency=t["currency"], leverage=100, is_demo=True, status="pending", created_at=now, updated_at=now,
            )
        ).returning(TradingAccount.id)
    )[0]  # fmt: skip
    with pytest.raises(FormErrors, match="being opened right now"):
        await staff_actions.retry(dealing, row["id"], actor_of(personas["dealing"]))
    await TradingAccount.raw(
        "UPDATE trading_accounts SET updated_at = now() - interval '10 minutes' WHERE id = {}", row["id"]
    )
    await staff_actions.retry(dealing, row["id"], actor_of(personas["dealing"]))
    done = await TradingAccount.select().where(TradingAccount.id == row["id"]).first()
    assert done["status"] == "active" and done["login"]
    assert mt5_sim.status()["accounts"] == 1


@pytest.mark.parametrize("htmx", [False, True])
async def test_the_client_page_panel_shows_the_accounts_to_whoever_may_see_the_client(
    client, personas, opened, htmx
):
    headers = {"HX-Request": "true"} if htmx else {}
    a = personas["client_a"]
    url = f"/staff/clients/{a.id}/accounts"
    for persona in ("sales", "compliance", "dealing"):  # sales: client_a is on their desk
        await sign_in(client, personas[persona])
        r = await client.get(url, headers=headers)
        assert r.status_code == 200 and str(opened["login"]) in r.text and "Balance" in r.text
        assert ("<html" in r.text) is not htmx
    await sign_in(client, personas["sales"])
    assert (
        await client.get(f"/staff/clients/{personas['client_b'].id}/accounts", headers=headers)
    ).status_code == 404
    page = await client.get(f"/staff/clients/{a.id}")
    assert f'ws-connect="/live?watch=client:{a.id}&watch=accounts:{a.id}"' in page.text
    assert f'hx-get="/staff/clients/{a.id}/accounts"' in page.text


@pytest.mark.parametrize("htmx", [False, True])
async def test_the_console_list_finds_accounts_by_login_and_by_client(client, personas, opened, htmx):
    headers = {"HX-Request": "true"} if htmx else {}
    await sign_in(client, personas["finance"])
    for q in (str(opened["login"]), "client.a@", "Client_A"):
        r = await client.get("/staff/accounts", params={"q": q}, headers=headers)
        assert r.status_code == 200 and f"/staff/accounts/{opened['id']}" in r.text, q
        assert ("<html" in r.text) is not htmx
    r = await client.get("/staff/accounts", params={"q": "nobody-at-all"}, headers=headers)
    assert "No account matches." in r.text
    await sign_in(client, personas["sales"])  # scoped: client_b's accounts would not show; client_a's do
    assert (await client.get("/staff/accounts")).status_code == 403  # sales does not enter the section


async def test_live_updates_render_only_for_viewers_who_may_see_the_account(personas, opened):
    a, b = personas["client_a"], personas["client_b"]
    event = Event(topic=f"client:{a.id}", type="trading.account", ids={"account_id": opened["id"]})
    [card] = await render_for(principal_of(a), event)
    assert f'id="account-{opened["id"]}" hx-swap-oob="true"' in card and str(opened["login"]) in card
    assert await render_for(principal_of(b), event) == []
    # On b's own topic (after a re-link, say) b's pages only drop the card; nothing of a's account shows.
    stray = await render_for(
        principal_of(b), Event(f"client:{b.id}", "trading.account", {"account_id": opened["id"]})
    )
    assert stray == [
        f'<div id="account-item-{opened["id"]}" hx-swap-oob="delete"></div>'
        f'<section id="account-{opened["id"]}" hx-swap-oob="delete"></section>'
    ]
    [panel] = await render_for(principal_of(personas["dealing"]), event)
    assert 'id="accounts-panel" hx-swap-oob="innerHTML"' in panel and str(opened["login"]) in panel
    from app.core.live_socket import watched_topics

    assert await watched_topics(principal_of(personas["sales"]), [f"accounts:{a.id}"]) == {f"client:{a.id}"}
    assert await watched_topics(principal_of(personas["sales"]), [f"accounts:{b.id}"]) == set()
    assert await watched_topics(principal_of(a), [f"accounts:{a.id}"]) == set()


async def test_open_positions_show_with_their_floating_profit_or_loss(
    client, personas, opened, trading_server
):
    from datetime import UTC, datetime
    from decimal import Decimal

    from app.trading.tables import Position

    now = datetime.now(UTC)
    for n, (symbol, side, volume, profit) in enumerate(
        [("EURUSD", 0, 15000, "-12.5"), ("XAUUSD", 1, 100, "40.1")]
    ):
        await Position(server_id=trading_server.id, position=n + 1, login=opened["login"], account_id=opened["id"],
                       symbol=symbol, action=side, volume=volume, price_open=Decimal("1.08512"),
                       price_current=Decimal("1.08431"), profit=Decimal(profit), digits=5, time_create=now,
                       time_update=now, synced_at=now).save()  # fmt: skip
    await sign_in(client, personas["client_a"])
    page = (await client.get("/portal/accounts")).text
    assert "EURUSD" in page and "XAUUSD" in page
    assert '<td class="mono">1.5</td>' in page and '<td class="mono">0.01</td>' in page  # lots
    assert '<td class="mono loss">-12.50</td>' in page and '<td class="mono gain">40.10</td>' in page
    assert "1.08512" in page and "buy" in page and "sell" in page
