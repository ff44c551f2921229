"""The wallet, live, in a real browser against the real web process: a client keeps Portal › Wallet
open on a phone-sized screen; a pending card deposit is completed by the deposit service (in
another process, as the webhook handler would) and the row's status and the balances change on
the open page without a reload; a movement published by hand appears in the list by itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import SECRET, TEST_VAR
from tests.e2e.conftest import (
    MOBILE,
    db,
    has_no_horizontal_scroll,
    insert_client,
    screenshot,
    sign_in,
    unique_email,
)

pytestmark = pytest.mark.browser

LIVE_WITHIN_MS = 5_000

COMPLETE = """
import asyncio, sys
from app.core import db
from app.core.audit import Actor
from app.funding import deposits

async def main():
    db.configure(sys.argv[1])
    await db.start_pool(min_size=1, max_size=2)
    try:
        await deposits.complete_deposit(Actor.system("card webhook (e2e)"), int(sys.argv[2]))
    finally:
        await db.close_pool()

asyncio.run(main())
"""


def insert_deposit(live_server, client_id: int, amount: str, status: str = "pending") -> int:
    with db(live_server) as conn:
        return conn.execute(
            "INSERT INTO funding_deposits (client_id, provider, kind, reference, amount, currency, credit_currency, "
            "status, instrument, created_at, updated_at) VALUES (%s, 'simcard', 'card', %s, %s, 'USD', 'USD', %s, "
            "'Visa •••• 4242', now(), now()) RETURNING id",
            (client_id, f"DE2E{uuid.uuid4().hex[:8].upper()}", amount, status),
        ).fetchone()[0]


def complete_deposit(live_server, deposit_id: int) -> None:
    """`app.funding.deposits.complete_deposit` in a process of its own (Playwright holds this
    thread's event loop), against the live server's database."""
    env = {
        **os.environ,
        "DATABASE_URL": live_server.database_url,
        "SECRET_KEY": SECRET,
        "FXCRM_VAR_DIR": str(TEST_VAR),
    }
    env.pop("SMTP_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", COMPLETE, live_server.database_url, str(deposit_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def publish(live_server, topic: str, type_: str, **ids: object) -> None:
    """What `app.core.live.publish` sends, from outside the app."""
    payload = json.dumps({"topic": topic, "type": type_, "ids": ids, "origin": None})
    with db(live_server) as conn:
        conn.execute("SELECT pg_notify('fxcrm_live', %s)", (payload,))


def test_a_completed_deposit_changes_status_and_balance_on_the_open_wallet_page(new_context, live_server):
    email = unique_email("payer")
    client_id = insert_client(live_server, email, first_name="Wanda")
    deposit_id = insert_deposit(live_server, client_id, "250.00")

    portal = new_context(viewport=MOBILE).new_page()
    sign_in(portal, "/portal", email)
    expect(portal).to_have_url(re.compile(r"/portal$"))
    portal.click("nav.tabbar >> text=Wallet")
    expect(portal).to_have_url(re.compile(r"/portal/wallet$"))
    row = portal.locator(f"#movement-deposit-{deposit_id}")
    expect(row.locator("[data-status-label]")).to_have_text("Processing")
    expect(portal.locator("#no-wallets")).to_be_visible()
    expect(portal.locator(".live-dot")).to_have_class(re.compile(r"\bon\b"))
    assert has_no_horizontal_scroll(portal, MOBILE["width"]), "the wallet page scrolls sideways at 390 px"
    portal.evaluate("window.__marker = 1")

    complete_deposit(live_server, deposit_id)
    expect(row.locator("[data-status-label]")).to_have_text("Completed", timeout=LIVE_WITHIN_MS)
    balances = portal.locator("#wallet-balances [data-currency=USD]")
    expect(balances.locator("[data-figure=available]")).to_have_text("250.00", timeout=LIVE_WITHIN_MS)
    expect(balances.locator("[data-figure=total]")).to_have_text("250.00")

    # A movement the page has never shown arrives in the list by itself, newest first.
    second = insert_deposit(live_server, client_id, "75.00")
    publish(live_server, f"client:{client_id}", "funding.deposit", deposit_id=second, client_id=client_id)
    expect(portal.locator("#movements > li").first).to_have_id(
        f"movement-deposit-{second}", timeout=LIVE_WITHIN_MS
    )
    expect(portal.locator(f"#movement-deposit-{second} [data-status-label]")).to_have_text("Processing")
    expect(portal.locator(f"#movement-deposit-{deposit_id} [data-status-label]")).to_have_text("Completed")

    assert portal.evaluate("window.__marker") == 1, "the wallet page was reloaded"
    screenshot(portal, "funding-wallet-live-mobile")
