"""The client page, live, in a real browser: two colleagues have the same client open; one moves
the client's stage, and the other's stage panel and timeline change without a reload."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DESKTOP, insert_client, insert_staff, pass_second_factor, sign_in, unique_email

pytestmark = pytest.mark.browser


def test_a_stage_change_appears_on_a_colleagues_open_client_page_without_a_reload(new_context, live_server):
    client_id = insert_client(live_server, unique_email("carla"), first_name="Carla")  # stage: active
    admin_email = unique_email("admin")
    admin_secret = insert_staff(live_server, admin_email, roles=("admin",))
    officer_email = unique_email("officer")
    officer_secret = insert_staff(live_server, officer_email, roles=("compliance",))

    watcher = new_context(viewport=DESKTOP).new_page()
    sign_in(watcher, "/staff", officer_email)
    pass_second_factor(watcher, officer_secret)
    watcher.goto(f"/staff/clients/{client_id}")
    expect(watcher.locator("body")).to_have_attribute(
        "ws-connect", f"/live?watch=client:{client_id}&watch=accounts:{client_id}"
    )
    expect(watcher.locator(".live-dot")).to_have_class(re.compile(r"\bon\b"))
    expect(watcher.locator("#current-stage")).to_have_text("active")
    expect(watcher.locator("#timeline-panel")).not_to_contain_text("Loading")
    watcher.fill("#notes-panel textarea[name=note]", "A draft nobody else may wipe")
    watcher.evaluate("window.__marker = 1")
    url_before = watcher.url

    actor = new_context(viewport=DESKTOP).new_page()
    sign_in(actor, "/staff", admin_email)
    pass_second_factor(actor, admin_secret)
    actor.goto(f"/staff/clients/{client_id}")
    actor.select_option("#stage-panel select[name=stage]", "churned")
    actor.fill("#stage-panel textarea[name=reason]", "Closed all accounts by phone")
    actor.click("#stage-panel button[type=submit]")
    expect(actor.locator("#stage-panel")).to_contain_text("Stage changed.")

    expect(watcher.locator("#current-stage")).to_have_text("churned", timeout=5_000)
    expect(watcher.locator("#stage-history")).to_contain_text("Closed all accounts by phone")
    expect(watcher.locator("#timeline")).to_contain_text("Stage: active → churned")
    # The page was not reloaded, and the panel the watcher was typing in was left alone.
    assert watcher.url == url_before
    assert watcher.evaluate("window.__marker") == 1, "the page was reloaded"
    expect(watcher.locator("#notes-panel textarea[name=note]")).to_have_value("A draft nobody else may wipe")

    # A note by the colleague lands in the list under the draft, which is still there.
    actor.fill("#notes-panel textarea[name=note]", "Wants the final statement by post")
    actor.click("#notes-panel button[type=submit]")
    expect(watcher.locator("#note-list")).to_contain_text("Wants the final statement by post", timeout=5_000)
    expect(watcher.locator("#notes-panel textarea[name=note]")).to_have_value("A draft nobody else may wipe")
    assert watcher.evaluate("window.__marker") == 1
