"""The staff balance form (Accounts › account › Balance): dealing and finance post a credit, bonus,
correction or charge with a reason; the list shows each operation's state; "resolve now"."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from app.core import db
from app.core.errors import FormErrors
from app.trading import operation_views, operations
from tests.conftest import post_form
from tests.personas import principal_of, sign_in
from tests.trading import ops_support
from tests.trading.conftest import Sim
from tests.trading.ops_support import audit_actions, deals_with_comment, op_row, open_account

ops_server = ops_support.ops_server  # the fixture: a server with a short timeout on a simulator


def page(account: dict) -> str:
    return f"/staff/accounts/{account['id']}/balance"


async def only_operation() -> dict:
    rows = await db.fetch("SELECT op_id FROM trading_balance_operations")
    assert len(rows) == 1, rows
    return await op_row(rows[0]["op_id"])


async def test_the_page_shows_the_form_and_an_htmx_request_gets_only_the_panel(client, personas, ops_server):
    account = await open_account(ops_server)
    await sign_in(client, personas["dealing"])
    full = await client.get(page(account))
    assert full.status_code == 200
    assert "<html" in full.text and 'id="balance-panel"' in full.text
    assert "go through Funding" in full.text  # deposits and withdrawals are not posted here
    assert f"Post to {account['login']}" in full.text
    fragment = await client.get(page(account), headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert 'id="balance-panel"' in fragment.text and "No balance operations" in fragment.text


async def test_finance_posts_a_bonus_with_htmx_and_sees_it_done_with_its_ticket(client, personas, ops_server):
    account = await open_account(ops_server)
    await sign_in(client, personas["finance"])
    r = await post_form(
        client,
        page(account),
        {
            "type": "6",
            "amount": "125.50",
            "reason": "Spring promotion, approved by J. Doe",
            "comment": "spring",
        },
        htmx=True,
    )
    assert r.status_code == 200
    assert "<html" not in r.text
    op = await only_operation()
    assert op["status"] == "done" and f"deal #{op['ticket']}" in r.text
    assert op["comment"] == f"fx:{op['op_id']} spring"
    assert op["reference"].startswith("staff:") and "Spring promotion" in op["reference"]
    assert op["requested_by"] == personas["finance"].email
    deals = await deals_with_comment(ops_server, account["login"], op["comment"])
    assert [(d.action, d.profit) for d in deals] == [(6, Decimal("125.50"))]
    note = await db.fetchrow(
        "SELECT after FROM audit_events WHERE action = 'trading.balance_operation.requested' AND subject_id = $1",
        op["op_id"],
    )
    assert "approved by J. Doe" in str(note["after"])


async def test_a_form_post_without_htmx_redirects_to_the_page_that_names_the_result(
    client, personas, ops_server
):
    account = await open_account(ops_server)
    await sign_in(client, personas["dealing"])
    r = await post_form(client, page(account), {"type": "3", "amount": "40", "reason": "Credit line agreed"})
    assert r.status_code == 303
    op = await only_operation()
    assert r.headers["location"] == f"{page(account)}?op={op['op_id']}"
    shown = await client.get(r.headers["location"])
    assert f"is done: deal #{op['ticket']}" in shown.text


async def test_the_same_form_posted_twice_makes_one_operation(client, personas, ops_server):
    account = await open_account(ops_server)
    await sign_in(client, personas["finance"])
    form = (await client.get(page(account))).text
    form_id = re.search(r'name="form_id" value="([0-9a-f]{12})"', form).group(1)
    data = {"type": "5", "amount": "-5", "reason": "Swap correction", "form_id": form_id}
    for _ in range(2):
        assert (await post_form(client, page(account), data, htmx=True)).status_code == 200
    op = await only_operation()
    assert len(await deals_with_comment(ops_server, account["login"], op["comment"])) == 1


@pytest.mark.parametrize("htmx", [True, False])
async def test_a_bad_form_is_answered_beside_its_fields_and_nothing_is_sent(
    client, personas, ops_server, htmx
):
    account = await open_account(ops_server)
    await sign_in(client, personas["dealing"])
    r = await post_form(
        client,
        page(account),
        {"type": "2", "amount": "12.345abc", "reason": " ", "comment": "x" * 13},
        htmx=htmx,
    )
    assert r.status_code == 422
    assert ("<html" in r.text) is not htmx
    for message in (
        "Choose credit, bonus, correction or charge.",
        "Enter an amount such as 100 or -25.50.",
        "Give the reason",
        "at most 12 characters",
    ):
        assert message in r.text
    assert 'value="12.345abc"' in r.text  # the input is kept
    assert await db.fetch("SELECT 1 FROM trading_balance_operations") == []


async def test_too_many_decimals_are_refused_in_the_accounts_currency(client, personas, ops_server):
    account = await open_account(ops_server)
    await sign_in(client, personas["finance"])
    r = await post_form(client, page(account), {"type": "3", "amount": "1.005", "reason": "x"}, htmx=True)
    assert r.status_code == 422 and "USD amounts have at most 2 decimal places" in r.text


async def test_a_refused_charge_says_why_in_the_panel(client, personas, ops_server):
    account = await open_account(ops_server, deposit=Decimal(10))
    await sign_in(client, personas["finance"])
    r = await post_form(
        client, page(account), {"type": "4", "amount": "-50", "reason": "Inactivity fee"}, htmx=True
    )
    assert r.status_code == 200
    assert "refused the charge" in r.text and "Not enough money" in r.text
    assert (await only_operation())["status"] == "failed"


@pytest.mark.parametrize("htmx", [True, False])
async def test_resolve_now_completes_a_stuck_operation_after_looking_on_the_server(
    client, personas, ops_server, mt5_sim: Sim, htmx
):
    account = await open_account(ops_server)
    mt5_sim.stop()  # the server is down when the operation is posted
    await sign_in(client, personas["finance"])
    r = await post_form(client, page(account), {"type": "3", "amount": "9", "reason": "Goodwill"}, htmx=True)
    assert "not confirmed yet" in r.text and "Resolve now" in r.text
    assert 'hx-trigger="every 5s"' in r.text  # the list follows an open operation by itself
    op = await only_operation()
    await db.fetch(
        "UPDATE trading_balance_operations SET sent_at = now() - interval '1 hour' WHERE id = {}", op["id"]
    )
    from tests.trading.conftest import start_sim

    back = start_sim(mt5_sim.state, port=mt5_sim.port)
    try:
        url = f"{page(account)}/{op['op_id']}/resolve"
        r = await post_form(client, url, {}, page=page(account), htmx=htmx)
        if htmx:
            assert r.status_code == 200 and "is done: deal #" in r.text
        else:
            assert r.status_code == 303 and r.headers["location"].endswith(f"?op={op['op_id']}")
        done = await op_row(op["op_id"])
        assert done["status"] == "done"
        assert len(await deals_with_comment(ops_server, account["login"], done["comment"])) == 1
        assert "trading.balance_operation.done" in await audit_actions(op["op_id"])
    finally:
        back.stop()


async def test_resolving_another_accounts_operation_is_not_found(client, personas, ops_server):
    first, second = await open_account(ops_server), await open_account(ops_server, name="other")
    result = await operations.balance_operation(
        principal_of(personas["finance"]).actor(), first["id"], operations.BalanceType.CREDIT, Decimal(1),
        reference="test",
    )  # fmt: skip
    await sign_in(client, personas["finance"])
    url = f"{page(second)}/{result.op_id}/resolve"
    r = await post_form(client, url, {}, page=page(second), htmx=True)
    assert r.status_code == 404


async def test_only_dealing_finance_and_administrators_may_post_balance_operations(personas, ops_server):
    account = await open_account(ops_server)
    for name in ("sales", "compliance"):
        viewer = principal_of(personas[name])
        with pytest.raises(PermissionError):
            await operation_views.post_operation(viewer, viewer.actor(), account["id"], {"type": "3"})
    with pytest.raises(FormErrors):  # admin passes the role check; the empty form does not
        await operation_views.post_operation(
            principal_of(personas["admin"]), principal_of(personas["admin"]).actor(), account["id"], {}
        )
