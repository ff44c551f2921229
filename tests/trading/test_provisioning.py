"""Clients open trading accounts: the user really appears on the (simulated) MT5 server, the login
shows in the portal and the e-mail, the password only once on the page; the KYC level and the
appropriateness result limit what may be opened; failures leave a clear message and a row that
can be retried."""

from __future__ import annotations

import html
import re

import pytest

from app.core import mail
from app.core.errors import FormErrors
from app.core.tables import OutboundEmail
from app.settings import use_settings
from app.trading import accounts, connections
from app.trading.platform import PasswordKind
from app.trading.tables import TradingAccount, TradingServer
from tests import conftest as harness
from tests.conftest import post_form
from tests.personas import principal_of, sign_in
from tests.servers import body_of, free_port
from tests.trading.accounts_support import (
    account_audit,
    actor_of,
    all_audit_text,
    cap_leverage,
    make_types,
    reach_level_one,
)
from tests.trading.conftest import Sim

PASSWORD_SHOWN = re.compile(r'id="pw-main" type="text" readonly value="([^"]+)"')
INVESTOR_SHOWN = re.compile(r'id="pw-investor" type="text" readonly value="([^"]+)"')
NEW_SHOWN = re.compile(r'id="new-password" type="text" readonly value="([^"]+)"')


def shown(pattern: re.Pattern, page: str) -> str:
    """A password as the page shows it (HTML-escaped there: & is &amp;)."""
    m = pattern.search(page)
    assert m, "no password on the page"
    return html.unescape(m.group(1))


@pytest.fixture
async def types(trading_server) -> dict[str, int]:
    return await make_types(trading_server.id)


async def platform(server_id: int):
    return await connections.platform_for(server_id)


async def sim_accounts(sim: Sim) -> int:
    return int(sim.status()["accounts"])


async def only_account() -> dict:
    [row] = await TradingAccount.select()
    return row


def test_generated_passwords_are_twelve_unambiguous_characters_of_every_class():
    for _ in range(200):
        pw = accounts.generate_password()
        assert len(pw) == 12 and not set(pw) & set("0O1lI")
        assert any(c.islower() for c in pw) and any(c.isupper() for c in pw) and any(c.isdigit() for c in pw)
        assert any(not c.isalnum() for c in pw)


@pytest.mark.parametrize("htmx", [False, True])
async def test_a_client_opens_a_demo_account_that_exists_on_the_server_as_asked(
    client, personas, types, trading_server, mt5_sim, htmx
):
    a = personas["client_a"]
    await sign_in(client, a)
    form_page = await client.get(f"/portal/accounts/new?type={types['demo']}")
    assert form_page.status_code == 200 and '<option value="500"' in form_page.text
    r = await post_form(
        client,
        "/portal/accounts/new",
        {"account_type": str(types["demo"]), "leverage": "500"},
        page=f"/portal/accounts/new?type={types['demo']}",
        htmx=htmx,
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    assert ("<html" in r.text) is not htmx
    row = await only_account()
    assert (row["status"], row["group_name"], row["leverage"], row["is_demo"]) == (
        "active",
        "demo\\forex-usd",
        500,
        True,
    )
    assert f'id="new-login">{row["login"]}<' in r.text
    main, investor = shown(PASSWORD_SHOWN, r.text), shown(INVESTOR_SHOWN, r.text)
    user = await (await platform(trading_server.id)).get_user(row["login"])
    assert (user.group, user.leverage, user.name, user.email) == (
        "demo\\forex-usd",
        500,
        "Client Client_A",
        a.email,
    )
    assert user.client_ref == str(a.id)
    assert await (await platform(trading_server.id)).check_password(row["login"], main)
    assert await (await platform(trading_server.id)).check_password(
        row["login"], investor, PasswordKind.INVESTOR
    )
    listing = await client.get("/portal/accounts")
    assert str(row["login"]) in listing.text and "Demo USD" in listing.text and main not in listing.text
    assert [e["action"] for e in await account_audit(row["id"])] == [
        "trading.account_requested",
        "trading.account_opened",
    ]
    text = await all_audit_text()
    assert main not in text and investor not in text


async def test_the_e_mail_carries_the_login_and_never_the_password(
    personas, types, trading_server, smtp_server, database
):
    url, box = smtp_server
    use_settings(harness.test_settings(database, SMTP_URL=url))
    a = personas["client_a"]
    opened = await accounts.open_account(principal_of(a), types["demo"], "100", actor_of(a))
    [email] = await OutboundEmail.select().where(OutboundEmail.template == "trading_account_opened")
    assert await mail.deliver(email["id"]) == "sent"
    [msg] = box.to(a.email)
    body = body_of(msg)
    assert str(opened.account["login"]) in msg["Subject"] and str(opened.account["login"]) in body
    assert "MT5 sim" in body and "Demo USD" in body and "demo\\forex-usd" in body
    assert opened.password_main not in body and opened.password_investor not in body
    assert "reset it" in body


async def test_a_live_account_is_refused_below_the_kyc_level_with_what_would_grant_it(
    client, personas, types, mt5_sim
):
    a = personas["client_a"]
    before = await sim_accounts(mt5_sim)
    with pytest.raises(FormErrors) as refused:
        await accounts.open_account(principal_of(a), types["standard"], "100", actor_of(a))
    assert refused.value.errors["__all__"].startswith(
        "To open live trading accounts you need verification level 1"
    )
    await sign_in(client, a)
    page = await client.get(f"/portal/accounts/new?type={types['standard']}")
    assert "you need verification level 1" in page.text and 'name="leverage"' not in page.text
    r = await post_form(
        client,
        "/portal/accounts/new",
        {"account_type": str(types["standard"]), "leverage": "100"},
        page="/portal/accounts/new",
    )
    assert r.status_code == 422 and "you need verification level 1" in r.text
    assert await TradingAccount.count() == 0 and await sim_accounts(mt5_sim) == before


async def test_at_the_level_that_grants_it_a_live_account_opens(personas, types, trading_server):
    a = personas["client_a"]
    await reach_level_one(a.id)
    opened = await accounts.open_account(principal_of(a), types["standard"], "200", actor_of(a))
    user = await (await platform(trading_server.id)).get_user(opened.account["login"])
    assert (user.group, user.leverage) == ("real\\standard-usd", 200)
    assert opened.account["is_demo"] is False


async def test_leverage_is_capped_by_the_appropriateness_result_and_the_form_offers_only_what_is_allowed(
    client, personas, types, trading_server
):
    a = personas["client_a"]
    await reach_level_one(a.id)
    await cap_leverage(a.id, 100)
    with pytest.raises(FormErrors) as refused:
        await accounts.open_account(principal_of(a), types["standard"], "200", actor_of(a))
    assert refused.value.errors == {
        "leverage": "Your appropriateness assessment allows leverage up to 1:100."
    }
    await sign_in(client, a)
    page = await client.get(f"/portal/accounts/new?type={types['standard']}")
    offered = re.findall(r'<option value="(\d+)"', page.text)
    assert offered == ["30", "100"] and "allows up to 1:100" in page.text
    opened = await accounts.open_account(principal_of(a), types["standard"], "100", actor_of(a))
    assert opened.account["leverage"] == 100
    # A demo account is not limited by the questionnaire.
    demo = await accounts.open_account(principal_of(a), types["demo"], "500", actor_of(a))
    assert demo.account["leverage"] == 500


@pytest.mark.parametrize("leverage", ["50", "abc", "", "1000"])
async def test_a_leverage_the_type_does_not_offer_is_refused(personas, types, leverage):
    a = personas["client_a"]
    with pytest.raises(FormErrors) as refused:
        await accounts.open_account(principal_of(a), types["demo"], leverage, actor_of(a))
    assert "leverage" in refused.value.errors
    assert await TradingAccount.count() == 0


@pytest.mark.parametrize(
    ("retcode", "shown"),
    [(3006, "password"), (3004, "exists"), (8, "group does not exist")],
)
async def test_a_refusal_by_the_server_leaves_a_failed_account_that_the_client_retries_on_the_same_row(
    client, personas, types, trading_server, mt5_sim, retcode, shown
):
    a = personas["client_a"]
    mt5_sim.control(fail_next={"command": "user/add", "retcode": retcode, "count": 1})
    before = await sim_accounts(mt5_sim)
    with pytest.raises(accounts.ProvisioningFailed) as failed:
        await accounts.open_account(principal_of(a), types["demo"], "100", actor_of(a))
    assert failed.value.retry and shown in failed.value.message.lower()
    row = await only_account()
    assert row["status"] == "failed" and row["login"] is None and shown in row["error"].lower()
    assert await sim_accounts(mt5_sim) == before
    await sign_in(client, a)
    page = await client.get(f"/portal/accounts/{row['id']}")
    assert "Try again" in page.text and row["error"] in page.text
    r = await post_form(
        client, f"/portal/accounts/{row['id']}/retry", {}, page=f"/portal/accounts/{row['id']}"
    )
    assert r.status_code == 200 and PASSWORD_SHOWN.search(r.text)
    after = await only_account()
    assert after["id"] == row["id"] and after["status"] == "active" and after["login"]
    assert await sim_accounts(mt5_sim) == before + 1
    actions = [e["action"] for e in await account_audit(row["id"])]
    assert actions == [
        "trading.account_requested",
        "trading.account_failed",
        "trading.account_retried",
        "trading.account_opened",
    ]


async def test_a_group_missing_on_the_server_fails_clearly_and_a_corrected_type_is_used_on_retry(
    personas, types, trading_server
):
    a = personas["client_a"]
    await TradingAccount.raw(
        "UPDATE trading_account_types SET group_name = 'demo\\gone' WHERE id = {}", types["demo"]
    )
    with pytest.raises(accounts.ProvisioningFailed):
        await accounts.open_account(principal_of(a), types["demo"], "100", actor_of(a))
    await TradingAccount.raw(
        "UPDATE trading_account_types SET group_name = 'demo\\forex-usd' WHERE id = {}", types["demo"]
    )
    row = await only_account()
    opened = await accounts.retry(principal_of(a), row["id"], actor_of(a))
    assert opened.account["group_name"] == "demo\\forex-usd" and opened.account["status"] == "active"


async def test_an_unreachable_server_fails_clearly_and_the_retry_succeeds_once_it_answers(
    personas, types, trading_server, mt5_sim
):
    a = personas["client_a"]
    await TradingServer.update({TradingServer.address: f"127.0.0.1:{free_port()}"}).where(
        TradingServer.id == trading_server.id
    )
    with pytest.raises(accounts.ProvisioningFailed) as failed:
        await accounts.open_account(principal_of(a), types["demo"], "100", actor_of(a))
    assert failed.value.retry and "could not be opened" in failed.value.message
    from datetime import UTC, datetime

    await TradingServer.update(
        {TradingServer.address: mt5_sim.address, TradingServer.updated_at: datetime.now(UTC)}
    ).where(TradingServer.id == trading_server.id)
    opened = await accounts.retry(principal_of(a), (await only_account())["id"], actor_of(a))
    assert opened.account["status"] == "active"


async def test_an_unconfirmed_creation_is_not_offered_again_to_the_client(
    client, personas, types, trading_server, mt5_sim
):
    a = personas["client_a"]
    mt5_sim.control(drop_next=1)
    with pytest.raises(accounts.ProvisioningFailed) as failed:
        await accounts.open_account(principal_of(a), types["demo"], "100", actor_of(a))
    assert not failed.value.retry and failed.value.message == accounts.UNCONFIRMED
    row = await only_account()
    assert row["status"] == "failed"
    with pytest.raises(FormErrors) as refused:
        await accounts.retry(principal_of(a), row["id"], actor_of(a))
    assert refused.value.errors["__all__"] == accounts.UNCONFIRMED
    await sign_in(client, a)
    page = await client.get(f"/portal/accounts/{row['id']}")
    assert "dealing team will check" in page.text and "Try again" not in page.text


@pytest.mark.parametrize("htmx", [False, True])
async def test_a_client_changes_leverage_within_the_offers_and_the_server_has_it(
    client, personas, types, trading_server, htmx
):
    a = personas["client_a"]
    opened = await accounts.open_account(principal_of(a), types["demo"], "100", actor_of(a))
    url = f"/portal/accounts/{opened.account['id']}"
    await sign_in(client, a)
    r = await post_form(client, f"{url}/leverage", {"leverage": "500"}, page=url, htmx=htmx)
    assert r.status_code == 200 and "Leverage is now 1:500." in r.text
    assert ("<html" in r.text) is not htmx
    user = await (await platform(trading_server.id)).get_user(opened.account["login"])
    assert user.leverage == 500
    r = await post_form(client, f"{url}/leverage", {"leverage": "300"}, page=url, htmx=htmx)
    assert r.status_code == 422 and "Choose one of the leverages offered" in r.text
    changed = [
        e for e in await account_audit(opened.account["id"]) if e["action"] == "trading.leverage_changed"
    ]
    assert [(e["before"], e["after"]) for e in changed] == [({"leverage": 100}, {"leverage": 500})]


@pytest.mark.parametrize(("kind", "htmx"), [("main", False), ("investor", True)])
async def test_a_password_reset_is_applied_on_the_server_and_shown_once(
    client, personas, types, trading_server, kind, htmx
):
    a = personas["client_a"]
    opened = await accounts.open_account(principal_of(a), types["demo"], "100", actor_of(a))
    old = opened.password_main if kind == "main" else opened.password_investor
    url = f"/portal/accounts/{opened.account['id']}"
    await sign_in(client, a)
    r = await post_form(client, f"{url}/password", {"kind": kind}, page=url, htmx=htmx)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    new = shown(NEW_SHOWN, r.text)
    p = await platform(trading_server.id)
    assert await p.check_password(opened.account["login"], new, kind)
    assert not await p.check_password(opened.account["login"], old, kind)
    assert html.escape(new) not in (await client.get(url)).text
    [reset] = [
        e for e in await account_audit(opened.account["id"]) if e["action"] == "trading.password_reset"
    ]
    assert reset["after"]["kind"] == kind and new not in await all_audit_text()


async def test_no_client_sees_or_touches_another_clients_account(client, personas, types, trading_server):
    a, b = personas["client_a"], personas["client_b"]
    opened = await accounts.open_account(principal_of(a), types["demo"], "100", actor_of(a))
    url = f"/portal/accounts/{opened.account['id']}"
    await sign_in(client, b)
    assert (await client.get(url)).status_code == 404
    for action, data in (("leverage", {"leverage": "500"}), ("password", {"kind": "main"}), ("retry", {})):
        r = await post_form(client, f"{url}/{action}", data, page="/portal/accounts")
        assert r.status_code == 404, action
    assert str(opened.account["login"]) not in (await client.get("/portal/accounts")).text
    user = await (await platform(trading_server.id)).get_user(opened.account["login"])
    assert user.leverage == 100
