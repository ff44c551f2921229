"""Staff › Accounts › Sync: ops see each server's sync health and errors; dealing can ask for a
sync now (audited)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from markupsafe import escape

from app.core import db
from app.core.tables import AuditEvent
from app.trading import platform as p
from app.trading import sync
from tests.conftest import post_form
from tests.personas import sign_in
from tests.trading.sync_support import open_accounts, sync_row

PAGE = "/staff/accounts/sync"


async def test_sync_errors_are_visible_to_ops_on_the_page_and_in_its_fragment(
    client, personas, trading_server, mt5_sim
):
    await open_accounts(trading_server.id, 1)
    await sync.sync_once(trading_server.id)
    await sign_in(client, personas["dealing"])
    page = await client.get(PAGE)
    assert page.status_code == 200 and "<html" in page.text
    assert "MT5 sim" in page.text and ">ok<" in page.text and "No gap detected" in page.text

    mt5_sim.stop()
    with pytest.raises(p.PlatformError):
        await sync.sync_deals(trading_server.id)
    message = (await sync_row(trading_server.id))["last_error"]
    assert message.startswith("deals: ")

    fragment = await client.get(PAGE, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'id="sync-servers"' in fragment.text and ">error<" in fragment.text
    assert str(escape(message)) in fragment.text
    page = await client.get(PAGE)
    assert "<html" in page.text and str(escape(message)) in page.text
    assert 'hx-trigger="every 5s"' in page.text  # the page polls its fragment


async def test_open_gaps_are_listed_first(client, personas, trading_server):
    now = datetime.now(UTC)
    await db.fetch(
        "INSERT INTO trading_sync_gaps (server, from_ticket, to_ticket, detected_at, resolved_at, note) VALUES "
        "({}, 10, 12, {}, {}, 'old and done'), ({}, 40, 40, {}, NULL, 'still open')",
        trading_server.id, now, now, trading_server.id, now,
    )  # fmt: skip
    await sign_in(client, personas["finance"])
    text = (await client.get(PAGE)).text
    assert text.index("still open") < text.index("old and done")
    assert '<span class="badge badge-amber">1</span>' in text  # the server's open gap count


async def test_sync_now_is_audited_and_answers_htmx_with_the_fragment_and_a_form_with_a_redirect(
    client, personas, trading_server
):
    await sign_in(client, personas["dealing"])
    r = await post_form(client, f"{PAGE}/{trading_server.id}/now", {}, page=PAGE, htmx=True)
    assert r.status_code == 200 and "<html" not in r.text
    assert "Sync of MT5 sim queued" in r.text and 'id="sync-servers"' in r.text
    r = await post_form(client, f"{PAGE}/{trading_server.id}/now", {}, page=PAGE)
    assert r.status_code == 303 and r.headers["location"] == PAGE
    rows = await AuditEvent.select().where(AuditEvent.action == "trading.sync_requested")
    assert len(rows) == 2
    assert (rows[0]["subject_id"], json.loads(rows[0]["after"])) == (
        str(trading_server.id),
        {"server": "MT5 sim"},
    )


async def test_finance_sees_the_sync_page_but_may_not_start_a_sync(client, personas, trading_server):
    await sign_in(client, personas["finance"])
    page = await client.get(PAGE)
    assert page.status_code == 200 and "Sync now" not in page.text
    r = await post_form(client, f"{PAGE}/{trading_server.id}/now", {}, page="/staff/accounts", htmx=True)
    assert r.status_code == 403
    assert await AuditEvent.select().where(AuditEvent.action == "trading.sync_requested") == []


async def test_sync_now_for_a_server_that_does_not_exist_is_not_found(client, personas):
    await sign_in(client, personas["admin"])
    r = await post_form(client, f"{PAGE}/999/now", {}, page=PAGE)
    assert r.status_code == 404
