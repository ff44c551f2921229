"""Bulk actions on the client list: ticked rows or every client matching the filter, re-checked
against the acting staff member's scope; small runs in the request, large ones in a job with
live progress; one audit record per client changed and one for the run; refusals reported."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime

import pytest

from app.clients import bulk, bulk_runs, tags
from app.clients.jobs import resume_stalled_bulk_runs, run_client_bulk
from app.clients.tables import Client, ClientBulkRun, ClientTag
from app.core import db, jobs
from app.core.auth.principal import Principal
from app.core.errors import FormErrors
from app.core.live import Event, hub, render_for
from app.core.tables import AuditEvent
from app.routing.tables import Assignment
from tests.conftest import post_form
from tests.personas import Persona, make_staff, principal_of, put_on_desk, sign_in

as_principal = principal_of  # the shared persona-to-Principal helper


def act(p: Principal):
    return p.actor("127.0.0.1", "pytest")


async def make_clients(n: int, *, prefix: str = "bulk", stage: str = "lead") -> list[int]:
    rows = await db.fetch(
        "INSERT INTO clients (email, first_name, last_name, stage, stage_changed_at, created_at) "
        "SELECT {} || g || '@example.com', 'Bulk', 'Client ' || g, {}, now(), now() "
        "FROM generate_series(1, {}) g RETURNING id",
        prefix,
        stage,
        n,
    )
    return sorted(r["id"] for r in rows)


async def tagged(tag: str) -> list[int]:
    rows = await ClientTag.select(ClientTag.client).where(ClientTag.tag == tag).order_by(ClientTag.client)
    return [r["client"] for r in rows]


async def actions(action: str) -> list[dict]:
    return await AuditEvent.select(AuditEvent.subject_type, AuditEvent.subject_id, AuditEvent.after).where(
        AuditEvent.action == action
    )


async def run_row(run_id: int) -> dict:
    row = await ClientBulkRun.select().where(ClientBulkRun.id == run_id).output(load_json=True).first()
    assert row is not None
    return row


async def stage_of(client_id: int) -> str:
    row = await Client.select(Client.stage).where(Client.id == client_id).first()
    return row["stage"]


def run_id_in(r) -> int:
    m = re.search(r'id="bulk-run-(\d+)"', r.text) or re.search(
        r"/staff/clients/bulk/(\d+)", r.headers.get("location", "")
    )
    assert m, r.text[:500]
    return int(m.group(1))


@pytest.fixture
async def queue(database):
    """A real SAQ queue on the test database, so the request's enqueue-after-commit really enqueues."""
    jobs.load_job_modules()
    q = await jobs.connect(database)
    try:
        yield q
    finally:
        await jobs.disconnect()


# --- small selections: in the request -----------------------------------------------------------


async def test_an_inline_run_tags_the_ticked_clients_and_audits_each_change(client, personas):
    a, b = personas["client_a"].id, personas["client_b"].id
    await sign_in(client, personas["admin"])
    r = await post_form(
        client,
        "/staff/clients/bulk",
        {"action": "add_tag", "tag": " Promo 2026 ", "ids": [str(a), str(b)]},
        page="/staff/clients",
        htmx=True,
    )
    assert r.status_code == 200 and "<html" not in r.text
    run_id = run_id_in(r)
    assert "finished" in r.text and "2 of 2 handled" in r.text and "<strong>2</strong> done" in r.text
    assert r.headers["HX-Trigger"] == "bulk-done"  # the list reloads its rows
    assert await tagged("promo 2026") == [a, b]
    added = await actions("client.tag_added")
    assert sorted(int(x["subject_id"]) for x in added) == [a, b]
    run_audit = await actions("clients.bulk_run")
    assert [(x["subject_type"], x["subject_id"]) for x in run_audit] == [("client_bulk_run", str(run_id))]
    row = await run_row(run_id)
    assert (row["status"], row["total"], row["done"], row["failed"]) == ("finished", 2, 2, 0)
    assert row["finished_at"] is not None

    # The same run again changes nothing (the tag is there): counted as done, no second audit record.
    r = await post_form(
        client,
        "/staff/clients/bulk",
        {"action": "add_tag", "tag": "PROMO 2026", "ids": [str(a)]},
        page="/staff/clients",
    )
    assert r.status_code == 303
    again = run_id_in(r)
    assert r.headers["location"] == f"/staff/clients/bulk/{again}"
    assert len(await actions("client.tag_added")) == 2
    page = await client.get(f"/staff/clients/bulk/{again}")
    assert page.status_code == 200 and "<html" in page.text and "1 of 1 handled" in page.text


async def test_removing_a_tag_in_bulk_audits_only_the_clients_that_had_it(client, personas):
    admin = as_principal(personas["admin"])
    a, b = personas["client_a"].id, personas["client_b"].id
    await tags.add_tag(admin, a, "stale", act(admin))
    run_id = await bulk.start_run(
        admin, bulk.BulkForm(action="remove_tag", tag="Stale", ids=(str(a), str(b))), act(admin)
    )
    row = await run_row(run_id)
    assert (row["done"], row["failed"]) == (2, 0)
    assert await tagged("stale") == []
    assert [int(x["subject_id"]) for x in await actions("client.tag_removed")] == [a]


async def test_stage_refusals_are_counted_and_reported_without_stopping_the_run(client, personas):
    active = await make_clients(2, prefix="act", stage="active")
    dormant = await make_clients(1, prefix="dor", stage="dormant")
    lead = await make_clients(1, prefix="led", stage="lead")
    funded = await make_clients(1, prefix="fun", stage="funded")
    everyone = active + dormant + lead + funded
    await sign_in(client, personas["compliance"])
    data = {
        "action": "change_stage",
        "stage": "churned",
        "reason": "Asked to close",
        "ids": [str(i) for i in everyone],
    }
    r = await post_form(client, "/staff/clients/bulk", data, page="/staff/clients", htmx=True)
    assert r.status_code == 200
    run_id = run_id_in(r)
    row = await run_row(run_id)
    assert (row["status"], row["total"], row["done"], row["failed"]) == ("finished", 5, 3, 2)
    for cid in active + dormant:
        assert await stage_of(cid) == "churned"
    assert await stage_of(lead[0]) == "lead" and await stage_of(funded[0]) == "funded"
    failures = {f["client_id"]: f["reason"] for f in row["failures"]}
    assert failures[lead[0]] == "A client cannot move from lead to churned."
    assert failures[funded[0]].startswith("A client cannot move from funded to churned")
    assert (
        "Refusals (2)" in r.text
        and f"client #{lead[0]}</a>: A client cannot move from lead to churned." in r.text
    )
    changed = await actions("client.stage_changed")
    assert sorted(int(x["subject_id"]) for x in changed) == sorted(active + dormant)
    assert all(json.loads(x["after"])["manual"] is True for x in changed)


async def test_a_stage_change_needs_a_reason_and_a_stage_staff_may_choose(client, personas):
    await sign_in(client, personas["admin"])
    a = str(personas["client_a"].id)
    for data, message in (
        (
            {"action": "change_stage", "stage": "churned", "reason": "  ", "ids": [a]},
            "Give a reason for the change.",
        ),
        (
            {"action": "change_stage", "stage": "funded", "reason": "x", "ids": [a]},
            "Choose the stage to move the clients to.",
        ),
        ({"action": "add_tag", "tag": "", "ids": [a]}, "Enter the tag."),
        ({"action": "add_tag", "tag": "ok"}, "Tick at least one client"),
        ({"action": "", "ids": [a]}, "Choose what to do with the selected clients."),
    ):
        r = await post_form(client, "/staff/clients/bulk", data, page="/staff/clients", htmx=True)
        assert r.status_code == 422 and message in r.text and "<html" not in r.text, data
    assert await ClientBulkRun.count() == 0 and await actions("clients.bulk_run") == []


async def test_a_refused_form_without_htmx_shows_the_list_with_the_input_kept(client, personas):
    await sign_in(client, personas["admin"])
    a = str(personas["client_a"].id)
    data = {
        "action": "change_stage",
        "stage": "churned",
        "reason": "",
        "ids": [a],
        "query": "stage=registered",
    }
    r = await post_form(client, "/staff/clients/bulk", data, page="/staff/clients")
    assert r.status_code == 422 and "<html" in r.text
    assert "Give a reason for the change." in r.text
    assert (
        '<option value="change_stage" selected>' in r.text
        and f'value="{a}" form="bulk-form" aria-label' in r.text
    )
    assert re.search(rf'value="{a}" form="bulk-form" aria-label="[^"]+" checked', r.text)
    assert await ClientBulkRun.count() == 0


async def test_roles_decide_which_bulk_actions_exist(client, personas):
    a = str(personas["client_a"].id)
    await sign_in(client, personas["finance"])
    page = await client.get("/staff/clients")
    assert (
        'value="add_tag"' in page.text
        and 'value="change_stage"' not in page.text
        and 'value="assign_owner"' not in page.text
    )
    for data in (
        {"action": "change_stage", "stage": "churned", "reason": "x", "ids": [a]},
        {"action": "assign_owner", "owner": "none", "ids": [a]},
    ):
        r = await post_form(client, "/staff/clients/bulk", data, page="/staff/clients")
        assert r.status_code == 403
    await sign_in(client, personas["sales"])
    r = await post_form(
        client,
        "/staff/clients/bulk",
        {"action": "assign_owner", "owner": "none", "ids": [a]},
        page="/staff/clients",
    )
    assert r.status_code == 403  # as on the assignment panel, only administrators reassign
    assert await ClientBulkRun.count() == 0


async def test_an_admin_assigns_an_owner_through_the_routing_service(client, personas):
    a, b = personas["client_a"].id, personas["client_b"].id
    await sign_in(client, personas["admin"])
    page = await client.get("/staff/clients")
    owners = re.search(r'<select class="bulk-field for-owner" name="owner".*?</select>', page.text, re.S)
    assert owners and f'<option value="{personas["sales"].id}">Sales</option>' in owners.group(0)  # on a desk
    assert f'<option value="{personas["finance"].id}">' not in owners.group(0)  # on no desk
    r = await post_form(
        client,
        "/staff/clients/bulk",
        {"action": "assign_owner", "owner": str(personas["finance"].id), "ids": [str(a)]},
        page="/staff/clients",
        htmx=True,
    )
    assert r.status_code == 422 and "Choose an active member of an active desk" in r.text
    r = await post_form(
        client,
        "/staff/clients/bulk",
        {"action": "assign_owner", "owner": str(personas["sales"].id), "ids": [str(a), str(b)]},
        page="/staff/clients",
        htmx=True,
    )
    assert r.status_code == 200 and "Assign owner: Sales" in r.text
    owners = {r["client"]: r["owner"] for r in await Assignment.select(Assignment.client, Assignment.owner)}
    assert owners[a] == owners[b] == personas["sales"].id
    assert sorted(int(x["subject_id"]) for x in await actions("lead.reassigned")) == [a, b]


# --- scope: never a client the viewer may not see -----------------------------------------------


async def test_a_sales_agents_select_all_never_touches_clients_outside_their_scope(client, personas):
    others = await make_clients(3, prefix="other")
    await sign_in(client, personas["sales"])
    count = await client.get("/staff/clients/bulk/count", headers={"HX-Request": "true"})
    assert count.status_code == 200 and count.text.strip() == '<span id="bulk-count">1</span>'
    r = await post_form(
        client,
        "/staff/clients/bulk",
        {"action": "add_tag", "tag": "mine", "all": "on", "query": ""},
        page="/staff/clients",
        htmx=True,
    )
    assert r.status_code == 200
    assert await tagged("mine") == [personas["client_a"].id]
    row = await run_row(run_id_in(r))  # the selection itself was scoped: nothing else was even tried
    assert (row["total"], row["done"], row["failed"]) == (1, 1, 0)
    # Ticked ids outside the scope are "Not found." (as a missing id would be) and left alone.
    b = personas["client_b"].id
    ids = [str(personas["client_a"].id), str(b), str(others[0]), "99999999"]
    r = await post_form(
        client,
        "/staff/clients/bulk",
        {"action": "add_tag", "tag": "forged", "ids": ids},
        page="/staff/clients",
        htmx=True,
    )
    assert r.status_code == 200
    row = await run_row(run_id_in(r))
    assert (row["total"], row["done"], row["failed"]) == (4, 1, 3)
    assert {f["client_id"]: f["reason"] for f in row["failures"]} == {
        b: "Not found.",
        others[0]: "Not found.",
        99999999: "Not found.",
    }
    assert await tagged("forged") == [personas["client_a"].id]
    assert "client_b" not in r.text and personas["client_b"].email not in r.text


async def test_a_client_leaving_the_agents_scope_mid_run_is_not_touched(personas):
    sales = as_principal(personas["sales"])
    mine = await make_clients(60, prefix="desk")
    for cid in mine:
        await put_on_desk(personas["sales"], Persona("c", "client", cid))
    form = bulk.BulkForm(action="add_tag", tag="late", all_matching=True, query="q=desk")
    run_id = await bulk.start_run(sales, form, act(sales))  # 60 > 50: queued for the job
    assert (await run_row(run_id))["status"] == "queued"
    moved = mine[-1]
    await db.fetch("UPDATE routing_assignments SET desk = NULL WHERE client = {}", moved)  # off the desk
    await run_client_bulk({}, run_id=run_id)
    assert await tagged("late") == mine[:-1]
    row = await run_row(run_id)
    assert (row["total"], row["done"], row["failed"]) == (60, 59, 0)
    assert bulk_runs._present(row)["unmatched"] == 1


# --- large selections: a job with live progress -------------------------------------------------


async def test_a_large_selection_runs_as_a_job_that_reports_progress_live(client, personas, queue):
    admin = as_principal(personas["admin"])
    targets = await make_clients(60)
    await sign_in(client, personas["admin"])
    count = await client.get("/staff/clients/bulk/count?q=bulk", headers={"HX-Request": "true"})
    assert count.text.strip() == '<span id="bulk-count">60</span>'
    without = await client.get("/staff/clients/bulk/count?q=bulk")
    assert without.status_code == 303 and without.headers["location"] == "/staff/clients?q=bulk"
    r = await post_form(
        client,
        "/staff/clients/bulk",
        {"action": "add_tag", "tag": "campaign", "all": "on", "query": "q=bulk&sort=name&per=10"},
        page="/staff/clients",
        htmx=True,
    )
    assert r.status_code == 200 and "queued" in r.text and "0 of 60 handled" in r.text
    assert "HX-Trigger" not in r.headers  # nothing changed yet
    run_id = run_id_in(r)
    assert await tagged("campaign") == []  # nothing done in the request
    job = await queue.job(f"client-bulk-{run_id}")
    assert job is not None and job.function == "run_client_bulk" and job.kwargs == {"run_id": run_id}
    assert job.timeout == bulk.JOB_TIMEOUT

    listening = hub.subscribe({f"staff:user:{admin.id}"})
    try:
        result = await run_client_bulk({}, run_id=run_id)
        assert result == {"processed": 60}
        events = []
        while len(events) < 4:  # one per batch of 25 (3), then "finished"
            events.append(await asyncio.wait_for(listening.get(), timeout=5))
    finally:
        hub.unsubscribe(listening)
    assert {(e.type, e.ids["run_id"]) for e in events} == {("bulk.progress", run_id)}
    html = "".join(await render_for(admin, events[-1]))
    assert f'id="bulk-run-{run_id}" aria-live="polite" hx-swap-oob="true"' in html
    assert "60 of 60 handled" in html and "<strong>60</strong> done" in html and "finished" in html

    assert await tagged("campaign") == targets
    row = await run_row(run_id)
    assert (row["status"], row["total"], row["done"], row["failed"], row["position"]) == (
        "finished",
        60,
        60,
        0,
        targets[-1],
    )
    assert len(await actions("client.tag_added")) == 60 and len(await actions("clients.bulk_run")) == 1
    # A retried (or duplicated) job finds the run finished and does nothing.
    assert await run_client_bulk({}, run_id=run_id) == {"processed": 0}
    assert len(await actions("client.tag_added")) == 60
    # A reload of the list still shows the run.
    page = await client.get("/staff/clients")
    assert f'id="bulk-run-{run_id}"' in page.text


async def test_the_progress_renderer_shows_a_run_only_to_its_owner(app, personas):
    admin, sales = as_principal(personas["admin"]), as_principal(personas["sales"])
    run_id = await bulk.start_run(
        sales, bulk.BulkForm(action="add_tag", tag="x", ids=(str(personas["client_a"].id),)), act(sales)
    )
    own = Event(f"staff:user:{sales.id}", "bulk.progress", {"run_id": run_id})
    assert len(await render_for(sales, own)) == 1
    assert await render_for(admin, own) == []  # not the admin's topic
    forged = Event(f"staff:user:{admin.id}", "bulk.progress", {"run_id": run_id})
    assert await render_for(admin, forged) == []  # the admin's topic, but someone else's run
    compliance = as_principal(personas["compliance"])
    assert (
        await render_for(
            compliance, Event(f"staff:user:{compliance.id}", "bulk.progress", {"run_id": run_id})
        )
        == []
    )


async def test_a_job_that_died_half_way_resumes_after_its_position(personas):
    admin = as_principal(personas["admin"])
    targets = await make_clients(60)
    run_id = await bulk.start_run(
        admin, bulk.BulkForm(action="add_tag", tag="resume", all_matching=True, query="q=bulk"), act(admin)
    )
    # As if a worker had handled the first 30 and died: position and counts say so.
    await db.fetch(
        "UPDATE client_bulk_runs SET status = 'running', position = {}, done = 30, updated_at = {} WHERE id = {}",
        targets[29],
        datetime(2026, 1, 1, tzinfo=UTC),
        run_id,
    )
    assert await resume_stalled_bulk_runs({}) == 1  # the sweep picks up the stalled run
    assert await tagged("resume") == targets[30:]  # nothing before the position was redone
    row = await run_row(run_id)
    assert (row["status"], row["done"], row["failed"]) == ("finished", 60, 0)
    assert await resume_stalled_bulk_runs({}) == 0


async def test_a_run_of_a_deactivated_staff_member_stops(personas):
    agent = await make_staff("leaver", ["admin"])
    leaver = as_principal(agent)
    await make_clients(55)
    run_id = await bulk.start_run(
        leaver, bulk.BulkForm(action="add_tag", tag="gone", all_matching=True, query="q=bulk"), act(leaver)
    )
    await db.fetch("UPDATE staff_users SET is_active = false WHERE id = {}", agent.id)
    await run_client_bulk({}, run_id=run_id)
    row = await run_row(run_id)
    assert row["status"] == "finished" and row["done"] == 0 and await tagged("gone") == []
    assert "may no longer take this action" in row["failures"][0]["reason"]


async def test_an_empty_filter_selection_is_refused(personas):
    admin = as_principal(personas["admin"])
    with pytest.raises(FormErrors) as refused:
        await bulk.start_run(
            admin,
            bulk.BulkForm(action="add_tag", tag="x", all_matching=True, query="q=nobody-at-all"),
            act(admin),
        )
    assert refused.value.errors == {"__all__": "No clients match this filter."}


# --- the run page -------------------------------------------------------------------------------


async def test_a_run_is_shown_to_its_owner_and_to_admins_only(client, personas):
    sales = as_principal(personas["sales"])
    run_id = await bulk.start_run(
        sales, bulk.BulkForm(action="add_tag", tag="seen", ids=(str(personas["client_a"].id),)), act(sales)
    )
    for who, status in (("sales", 200), ("admin", 200), ("compliance", 404), ("finance", 404)):
        await sign_in(client, personas[who])
        page = await client.get(f"/staff/clients/bulk/{run_id}")
        assert page.status_code == status, who
        fragment = await client.get(f"/staff/clients/bulk/{run_id}", headers={"HX-Request": "true"})
        assert fragment.status_code == status, who
        if status == 200:
            assert "<html" in page.text and "Started by Sales" in page.text
            assert "<html" not in fragment.text and fragment.text.lstrip().startswith(
                f'<section class="bulk-run" id="bulk-run-{run_id}"'
            )
    await sign_in(client, personas["admin"])
    assert (await client.get("/staff/clients/bulk/999999")).status_code == 404
