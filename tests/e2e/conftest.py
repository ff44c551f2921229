"""Headless Chromium (Debian's, never Playwright's download) against the real `live_server`.

The browser is package-scoped on purpose. Playwright's sync API leaves its own event loop
marked as running in the main thread between calls, so while a browser is open no asyncio
fixture or test can run. Package scope closes it when the e2e tests end, before the async
tests of other packages; inside this package keep tests and fixtures sync.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from app.core.auth.passwords import hash_password
from tests.conftest import SECRET, TEST_VAR

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = TEST_VAR / "screenshots"
PASSWORD = "Browser-pass-2026"  # noqa: S105 (a test account)
MOBILE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}

expect.set_options(timeout=10_000)


@pytest.fixture(scope="package")
def browser(live_server) -> Iterator[Browser]:
    # Depends on live_server so that the server (and its async template database) is up
    # before Playwright takes over the event loop.
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_context(browser: Browser, live_server) -> Iterator[Callable[..., BrowserContext]]:
    """Open isolated browser contexts (separate cookie jars: separate people)."""
    opened: list[BrowserContext] = []

    def open_context(viewport: dict[str, int] = DESKTOP) -> BrowserContext:
        ctx = browser.new_context(base_url=live_server.url, viewport=viewport)
        ctx.set_default_timeout(10_000)
        opened.append(ctx)
        return ctx

    yield open_context
    for ctx in opened:
        ctx.close()


@pytest.fixture
def page(new_context) -> Page:
    return new_context().new_page()


def unique_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def has_no_horizontal_scroll(page: Page, width: int) -> bool:
    return page.evaluate(f"document.documentElement.scrollWidth <= {width}")


def db(live_server) -> psycopg.Connection:
    return psycopg.connect(live_server.database_url, autocommit=True)


def insert_client(
    live_server, email: str, *, first_name: str = "Bianca", partner_code: str | None = None
) -> int:
    """A client (optionally with partner status) written straight into the live database."""
    with db(live_server) as conn:
        client_id = conn.execute(
            "INSERT INTO clients (email, first_name, last_name, phone, country, language, password_hash,"
            " email_verified_at, stage, stage_changed_at, is_active, totp_enabled, totp_last_step, created_at)"
            " VALUES (%s, %s, 'Browser', '', 'DE', 'en', %s, now(), 'active', now(), true, false, 0, now()) RETURNING id",
            (email, first_name, hash_password(PASSWORD)),
        ).fetchone()[0]
        if partner_code:
            conn.execute(
                "INSERT INTO partners (client, code, status, created_at) VALUES (%s, %s, 'active', now())",
                (client_id, partner_code),
            )
    return client_id


def insert_staff(live_server, email: str, roles: tuple[str, ...] = ("admin",)) -> str:
    """A staff user with 2FA already enrolled; returns their TOTP secret."""
    secret = pyotp.random_base32()
    with db(live_server) as conn:
        conn.execute(
            "INSERT INTO staff_users (email, name, password_hash, roles, is_active, totp_secret, totp_enabled,"
            " totp_last_step, created_at) VALUES (%s, 'Ada Admin', %s, %s, true, %s, true, 0, now())",
            (email, hash_password(PASSWORD), list(roles), secret),
        )
    return secret


def create_staff_with_cli(live_server, email: str, roles: str = "admin") -> None:
    env = {
        **os.environ,
        "DATABASE_URL": live_server.database_url,
        "SECRET_KEY": SECRET,
        "FXCRM_VAR_DIR": str(TEST_VAR),
    }
    env.pop("SMTP_URL", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "createstaff",
            "--email",
            email,
            "--password",
            PASSWORD,
            "--roles",
            roles,
            "--name",
            "Ada Admin",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert email in done.stdout


def next_code(secret: str) -> str:
    """The next time step's code: never the one already spent in this step (codes are single-use)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def sign_in(page: Page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.fill("#f-email", email)
    page.fill("#f-password", password)
    page.click("button[type=submit]")


def pass_second_factor(page: Page, secret: str) -> None:
    expect(page).to_have_url(re.compile(r"/staff/2fa\b"))
    expect(page.locator("h1")).to_have_text("Two-factor authentication")
    page.fill("#f-code", next_code(secret))
    page.click("button[type=submit]")
