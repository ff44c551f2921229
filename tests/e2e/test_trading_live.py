"""Trading accounts, live, in a real browser against real processes: the web app, its worker
(running the sync loop) and an MT5 simulator. A client opens a demo account in the portal, keeps
the accounts page open; a deposit made directly on the MT5 server (as a third party would, not
through the CRM) appears on that page, and on a dealer's open client page, without a reload."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.trading import credentials
from app.trading.mt5.platform import MT5Platform
from app.trading.platform import BalanceType
from tests.e2e.conftest import (
    DESKTOP,
    MOBILE,
    db,
    has_no_horizontal_scroll,
    insert_client,
    insert_staff,
    pass_second_factor,
    screenshot,
    sign_in,
    unique_email,
)
from tests.trading.conftest import MANAGER_LOGIN, MANAGER_PASSWORD, Sim, start_sim

pytestmark = pytest.mark.browser

LIVE_WITHIN_MS = 5_000  # the issue asks for ~2 s; the sync loop reads states every 1.5 s


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    s = start_sim(tmp_path / "e2e-sim.sqlite3", trade_rate=0.0)
    try:
        yield s
    finally:
        s.stop()


def trading_server(live_server, sim: Sim) -> tuple[int, int]:
    """A server row for the simulator and a demo account type on it, in the live database."""
    name = f"E2E sim {sim.port}"
    with db(live_server) as conn:
        server_id = conn.execute(
            "INSERT INTO trading_servers (name, platform, address, use_tls, verify_tls, manager_login, password_enc, "
            "active, timeout_seconds, pool_size, created_at, updated_at) "
            "VALUES (%s, 'mt5', %s, false, false, %s, %s, true, 10, 2, now(), now()) RETURNING id",
            (name, sim.address, MANAGER_LOGIN, credentials.encrypt(MANAGER_PASSWORD, name)),
        ).fetchone()[0]
        type_id = conn.execute(
            "INSERT INTO trading_account_types (name, server, group_name, currency, leverages, default_leverage, "
            "is_demo, active, description, created_at, updated_at) "
            "VALUES (%s, %s, 'demo\\forex-usd', 'USD', '100,500', 100, true, true, '', now(), now()) RETURNING id",
            (f"Demo {sim.port}", server_id),
        ).fetchone()[0]
    return server_id, type_id


def wait_for_sync(live_server, server_id: int, timeout: float = 30) -> None:
    """The worker's sync loop has read account states from this server at least once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db(live_server) as conn:
            row = conn.execute(
                "SELECT states_synced_at FROM trading_sync_state WHERE server = %s", (server_id,)
            ).fetchone()
        if row and row[0] is not None:
            return
        time.sleep(0.3)
    raise AssertionError(f"the worker's sync loop did not read server {server_id} within {timeout}s")


def deposit_on_mt5(sim: Sim, login: int, amount: Decimal) -> int:
    """A balance operation sent straight to the MT5 server (a thread of its own: Playwright holds
    this thread's event loop)."""
    result: list[int | BaseException] = []

    async def send() -> int:
        platform = MT5Platform(sim.address, MANAGER_LOGIN, MANAGER_PASSWORD, tls=False, verify_tls=False,
                               timeout=10, pool_size=1)  # fmt: skip
        try:
            return await platform.balance_operation(login, BalanceType.BALANCE, amount, "bank wire 4711")
        finally:
            await platform.close()

    def run() -> None:
        try:
            result.append(asyncio.run(send()))
        except BaseException as exc:  # noqa: BLE001 (handed to the test thread)
            result.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(30)
    assert result, "the deposit did not finish"
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def test_a_deposit_made_on_mt5_appears_live_in_the_portal_and_on_the_client_page(
    new_context, live_server, sim
):
    server_id, type_id = trading_server(live_server, sim)
    email = unique_email("trader")
    client_id = insert_client(live_server, email, first_name="Tara")
    admin_email = unique_email("dealer")
    admin_secret = insert_staff(live_server, admin_email, roles=("dealing",))
    try:
        # The client opens a demo account in the portal (phone-sized screen).
        portal = new_context(viewport=MOBILE).new_page()
        sign_in(portal, "/portal", email)
        expect(portal).to_have_url(re.compile(r"/portal$"))
        portal.goto(f"/portal/accounts/new?type={type_id}")
        portal.select_option("#f-leverage", "500")
        portal.click("#open-account button[type=submit]")
        expect(portal.locator("#new-login")).to_have_text(re.compile(r"^\d+$"))
        login = int(portal.locator("#new-login").inner_text())
        assert len(portal.locator("#pw-main").input_value()) == 12
        screenshot(portal, "trading-account-opened-mobile")

        portal.goto("/portal/accounts")
        card = portal.locator(f"section.account-card:has([data-login]:text-is('{login}'))")
        expect(card.locator("[data-figure=balance]")).to_have_text("0.00")
        expect(card.locator("[data-figure=equity]")).to_have_text("0.00")
        expect(portal.locator(".live-dot")).to_have_class(re.compile(r"\bon\b"))
        assert has_no_horizontal_scroll(portal, MOBILE["width"]), (
            "the accounts page scrolls sideways at 390 px"
        )
        portal.evaluate("window.__marker = 1")

        # A dealer has the client's page open in the console.
        staff = new_context(viewport=DESKTOP).new_page()
        sign_in(staff, "/staff", admin_email)
        pass_second_factor(staff, admin_secret)
        staff.goto(f"/staff/clients/{client_id}")
        panel = staff.locator("#accounts-panel")
        expect(panel.locator("[data-figure=balance]")).to_have_text("0.00")
        expect(staff.locator(".live-dot")).to_have_class(re.compile(r"\bon\b"))

        wait_for_sync(live_server, server_id)
        started = time.monotonic()
        deposit_on_mt5(sim, login, Decimal("1234.56"))
        expect(card.locator("[data-figure=balance]")).to_have_text("1,234.56", timeout=LIVE_WITHIN_MS)
        seen_after = time.monotonic() - started
        expect(card.locator("[data-figure=equity]")).to_have_text("1,234.56")
        expect(card.locator("[data-figure=margin_free]")).to_have_text("1,234.56")
        expect(panel.locator("[data-figure=balance]")).to_have_text("1,234.56", timeout=LIVE_WITHIN_MS)
        assert portal.evaluate("window.__marker") == 1, "the portal page was reloaded"
        print(f"deposit on MT5 → visible in the portal after {seen_after:.2f}s")
        screenshot(portal, "trading-accounts-live-mobile")
        screenshot(staff, "trading-client-page-panel")
    finally:
        with db(live_server) as conn:  # the worker's sync loop for this server ends with it
            conn.execute("UPDATE trading_servers SET active = false WHERE id = %s", (server_id,))
