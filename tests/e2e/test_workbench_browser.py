"""The staff workbench in a real browser: find a client by phone, write a note that mentions a
colleague, and the colleague's open console shows the mention without a reload."""

from __future__ import annotations

import random
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DESKTOP, db, insert_staff, pass_second_factor, sign_in, unique_email

pytestmark = pytest.mark.browser


def desk_with(live_server, *emails: str) -> int:
    """A desk with these agents on it: a mention reaches only colleagues who may see the client."""
    with db(live_server) as conn:
        desk_id = conn.execute(
            "INSERT INTO routing_desks (name, active) VALUES (%s, true) RETURNING id", (unique_email("desk"),)
        ).fetchone()[0]  # type: ignore[index]
        for email in emails:
            conn.execute(
                "INSERT INTO routing_desk_members (desk, staff, capacity, active) "
                "SELECT %s, id, 20, true FROM staff_users WHERE email = %s",
                (desk_id, email),
            )
    return desk_id


def insert_phoned_client(live_server, email: str, phone: str, owner_email: str, desk_id: int) -> int:
    """A lead with an E.164 phone, owned by the agent on their desk (so desk scoping lets them see it)."""
    with db(live_server) as conn:
        client_id = conn.execute(
            "INSERT INTO clients (email, first_name, last_name, phone, country, language, stage,"
            " stage_changed_at, is_active, totp_enabled, totp_last_step, created_at)"
            " VALUES (%s, 'Paula', 'Phoneman', %s, 'DE', 'de', 'lead', now(), true, false, 0, now()) RETURNING id",
            (email, phone),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO routing_assignments (client, desk, owner, assigned_at, first_contact_due_at,"
            " last_touched_at) SELECT %s, %s, id, now(), now() + interval '1 hour', now()"
            " FROM staff_users WHERE email = %s",
            (client_id, desk_id, owner_email),
        )
    return client_id


def test_an_agent_finds_a_client_by_phone_and_a_mentioned_colleague_sees_it_live(new_context, live_server):
    digits = f"{random.randrange(10**7, 10**8)}"  # noqa: S311 (a test phone number)
    phone = f"+49151{digits}"
    agent_email = unique_email("agent")
    agent_secret = insert_staff(live_server, agent_email, roles=("sales",))
    colleague_email = unique_email("colleague")
    colleague_secret = insert_staff(live_server, colleague_email, roles=("sales",))
    desk_id = desk_with(live_server, agent_email, colleague_email)
    client_id = insert_phoned_client(live_server, unique_email("paula"), phone, agent_email, desk_id)
    decoy_id = insert_phoned_client(
        live_server, unique_email("decoy"), f"+49152{digits}", agent_email, desk_id
    )

    colleague = new_context(viewport=DESKTOP).new_page()
    sign_in(colleague, "/staff", colleague_email)
    pass_second_factor(colleague, colleague_secret)
    expect(colleague).to_have_url(re.compile(r"/staff$"))
    expect(colleague.locator(".live-dot")).to_have_class(re.compile(r"\bon\b"))
    expect(colleague.locator("#mention-counter")).to_have_text("")
    colleague.evaluate("window.__marker = 1")
    url_before = colleague.url

    agent = new_context(viewport=DESKTOP).new_page()
    sign_in(agent, "/staff", agent_email)
    pass_second_factor(agent, agent_secret)
    agent.goto("/staff/clients")
    agent.fill("input[name=q]", f"+49 151 {digits[:4]} {digits[4:]}")  # as read out on the phone
    agent.press("input[name=q]", "Enter")
    expect(agent).to_have_url(re.compile(r"/staff/clients\?(.*&)?q=%2B49"))
    row_link = agent.locator(f"a[href='/staff/clients/{client_id}']")
    expect(row_link).to_have_text("Paula Phoneman")
    expect(agent.locator(f"a[href='/staff/clients/{decoy_id}']")).to_have_count(0)
    row_link.click()
    expect(agent).to_have_url(re.compile(rf"/staff/clients/{client_id}$"))

    handle = colleague_email.split("@", 1)[0]
    agent.locator("#notes-panel textarea[name=note]").fill(
        f"Wants a call back about swaps, @{handle} please."
    )
    agent.locator("#notes-panel button[type=submit]").click()
    expect(agent.locator("#notes-panel")).to_contain_text("Note added.")
    expect(agent.locator("#note-list")).to_contain_text(f"@{handle}")

    expect(colleague.locator("#mention-counter")).to_have_text("1", timeout=5_000)
    assert colleague.url == url_before
    assert colleague.evaluate("window.__marker") == 1, "the page was reloaded"
