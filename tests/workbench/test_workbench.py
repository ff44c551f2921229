"""The staff workbench on a client: notes that mention colleagues live, tasks and "my tasks",
and a timeline of everything that happened to the client, paged by keyset.

Only staff who may see the client use any of it; a client (even about themselves) gets the 404
an unknown client gets.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from app.clients import lifecycle
from app.clients import services as client_services
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.core.live import Event, render_for
from app.core.tables import AuditEvent
from app.leads.services import LeadData, capture_lead
from app.routing.tables import DeskMember
from app.staff.tables import StaffUser
from app.workbench import services
from app.workbench.tables import Mention, Note, Task, TimelineEvent
from app.workbench.timeline import record_event
from tests.conftest import post_form
from tests.personas import Persona, principal_of, put_on_desk, sign_in

as_principal = principal_of  # the shared persona-to-Principal helper


def actor_of(p: Persona):
    return as_principal(p).actor("127.0.0.1", "pytest")


@pytest.fixture
def cast(personas):
    return {name: as_principal(p) for name, p in personas.items() if p.kind != "anonymous"}


async def audit_actions(client_id: int) -> list[str]:
    rows = await AuditEvent.select(AuditEvent.action).where(
        (AuditEvent.subject_type == "client") & (AuditEvent.subject_id == str(client_id))
    )
    return [r["action"] for r in rows]


# --- notes and mentions -------------------------------------------------------------------------


async def test_a_note_mentioning_colleagues_creates_one_mention_each_and_is_audited(personas, cast):
    a = personas["client_a"].id
    note_id = await services.add_note(
        cast["admin"],
        a,
        "Called the client. @sales please follow up, cc @Compliance and @sales again; @nobody, @admin.",
        actor_of(personas["admin"]),
    )
    mentioned = await Mention.select(Mention.staff).where(Mention.note == note_id).order_by(Mention.staff)
    assert {m["staff"] for m in mentioned} == {personas["sales"].id, personas["compliance"].id}
    assert len(mentioned) == 2  # @sales twice is one mention; the author's own @admin is none
    assert await services.unread_mentions(personas["sales"].id) == 1
    assert await services.unread_mentions(personas["finance"].id) == 0
    assert "client.note_added" in await audit_actions(a)
    event = await TimelineEvent.select().where(TimelineEvent.ref_id == note_id).first()
    assert event["kind"] == "note" and event["client"] == a and "Called the client" in event["summary"]


async def test_an_inactive_colleague_is_not_mentioned(personas, cast):
    await StaffUser.update({StaffUser.is_active: False}).where(StaffUser.id == personas["dealing"].id)
    note_id = await services.add_note(
        cast["admin"], personas["client_a"].id, "@dealing?", actor_of(personas["admin"])
    )
    assert await Mention.count().where(Mention.note == note_id) == 0


async def test_an_empty_note_is_refused_and_nothing_is_stored(personas, cast):
    with pytest.raises(FormErrors) as refused:
        await services.add_note(cast["sales"], personas["client_a"].id, "   ", actor_of(personas["sales"]))
    assert "note" in refused.value.errors
    assert await Note.count() == 0 and await TimelineEvent.count().where(TimelineEvent.kind == "note") == 0


async def test_the_live_renderer_sends_the_counter_only_to_the_mentioned_colleague(app, personas, cast):
    note_id = await services.add_note(
        cast["admin"], personas["client_a"].id, "Big deposit expected, @sales.", actor_of(personas["admin"])
    )
    event = Event(
        topic=f"staff:user:{personas['sales'].id}", type="mention.created", ids={"note_id": note_id}
    )
    html = "".join(await render_for(cast["sales"], event))
    assert re.search(r'<span id="mention-counter" class="counter" hx-swap-oob="true">1</span>', html)
    assert 'hx-swap-oob="afterbegin:#mention-list"' in html and "Big deposit expected" in html
    # Everyone else who might see this event renders nothing: other staff, the author, a client.
    for other in ("finance", "admin", "client_a"):
        assert await render_for(cast[other], event) == [], other
    # A forged event to a colleague who is not mentioned in that note renders nothing either.
    forged = Event(
        topic=f"staff:user:{personas['finance'].id}", type="mention.created", ids={"note_id": note_id}
    )
    assert await render_for(cast["finance"], forged) == []


async def test_the_mentions_page_lists_them_and_marks_them_seen(client, personas, cast):
    await services.add_note(
        cast["admin"], personas["client_a"].id, "Check KYC @sales", actor_of(personas["admin"])
    )
    await sign_in(client, personas["sales"])
    r = await client.get("/staff/mentions/unread")
    assert r.status_code == 200 and ">1</span>" in r.text
    page = await client.get("/staff/mentions")
    assert page.status_code == 200 and "Check KYC" in page.text and 'id="mention-list"' in page.text
    assert "<html" in page.text.lower()
    assert await services.unread_mentions(personas["sales"].id) == 0
    fragment = await client.get("/staff/mentions", headers={"HX-Request": "true"})
    assert "Check KYC" in fragment.text and "<html" not in fragment.text.lower()
    r = await client.get("/staff/mentions/unread")
    assert re.search(r'<span id="mention-counter" class="counter"></span>', r.text)


async def test_posting_a_note_through_the_page_swaps_the_notes_panel(client, personas):
    a = personas["client_a"].id
    await sign_in(client, personas["dealing"])
    r = await post_form(
        client, f"/staff/clients/{a}/notes", {"note": "Asked about spreads @finance"}, htmx=True
    )
    assert r.status_code == 200
    assert "Asked about spreads" in r.text and "Note added." in r.text and "<html" not in r.text.lower()
    assert await services.unread_mentions(personas["finance"].id) == 1
    bad = await post_form(client, f"/staff/clients/{a}/notes", {"note": ""}, htmx=True)
    assert bad.status_code == 422 and "Write the note." in bad.text and 'id="e-note"' in bad.text
    plain = await post_form(client, f"/staff/clients/{a}/notes", {"note": "Without htmx"})
    assert plain.status_code == 200 and "Without htmx" in plain.text and 'id="stage-panel"' in plain.text


# --- tasks --------------------------------------------------------------------------------------


async def test_my_tasks_lists_only_my_open_tasks_overdue_first(client, personas, cast):
    a, b = personas["client_a"].id, personas["client_b"].id
    await put_on_desk(personas["sales"], personas["client_b"])  # tasks go to colleagues who see the client
    now = datetime.now(UTC)
    admin, act = cast["admin"], actor_of(personas["admin"])
    later = await services.add_task(
        admin, a, "Send welcome pack", now + timedelta(days=3), personas["sales"].id, act
    )
    overdue = await services.add_task(
        admin, b, "Call back about deposit", now - timedelta(days=2), personas["sales"].id, act
    )
    soon = await services.add_task(
        admin, a, "Chase documents", now + timedelta(hours=2), personas["sales"].id, act
    )
    done = await services.add_task(
        admin, b, "Already done", now - timedelta(days=5), personas["sales"].id, act
    )
    await services.add_task(admin, a, "Someone else's", now - timedelta(days=9), personas["finance"].id, act)
    assert await services.complete_task(admin, b, done, act) is True
    assert await services.complete_task(admin, b, done, act) is False  # a second click changes nothing

    mine = await services.my_tasks(cast["sales"])
    assert [t["id"] for t in mine] == [overdue, soon, later]
    assert [t["overdue"] for t in mine] == [True, False, False]

    await sign_in(client, personas["sales"])
    page = await client.get("/staff/tasks")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert page.text.index("Call back about deposit") < page.text.index("Chase documents")
    assert page.text.count('class="badge badge-red">overdue') == 1
    assert "Someone else" not in page.text and "Already done" not in page.text
    fragment = await client.get("/staff/tasks", headers={"HX-Request": "true"})
    assert "Call back about deposit" in fragment.text and "<html" not in fragment.text.lower()
    actions = await audit_actions(b)
    assert actions.count("client.task_added") == 2 and actions.count("client.task_done") == 1


async def test_the_tasks_panel_adds_completes_and_shows_errors_beside_fields(client, personas):
    a = personas["client_a"].id
    await sign_in(client, personas["sales"])
    panel = await client.get(f"/staff/clients/{a}/tasks", headers={"HX-Request": "true"})
    assert panel.status_code == 200 and 'name="assignee"' in panel.text and "<html" not in panel.text.lower()
    assert "Compliance" in panel.text  # active colleagues are offered as assignees
    bad = await post_form(
        client,
        f"/staff/clients/{a}/tasks",
        {"title": "", "due_at": "not a date", "assignee": "999999"},
        htmx=True,
    )
    assert bad.status_code == 422
    for message in ("Say what needs doing.", "Choose a due date.", "Choose an active colleague."):
        assert message in bad.text
    assert await Task.count() == 0
    ok = await post_form(
        client,
        f"/staff/clients/{a}/tasks",
        {"title": "Verify address", "due_at": "2020-01-01", "assignee": str(personas["compliance"].id)},
        htmx=True,
    )
    assert ok.status_code == 200 and "Verify address" in ok.text and "overdue" in ok.text
    task = await Task.select().first()
    assert task["assignee"] == personas["compliance"].id and task["created_by"] == personas["sales"].id
    done = await post_form(
        client, f"/staff/clients/{a}/tasks/{task['id']}/done", {}, page=f"/staff/clients/{a}", htmx=True
    )
    assert done.status_code == 200 and 'badge-green">done' in done.text
    assert (await Task.select(Task.done_at).first())["done_at"] is not None
    # A task of one client cannot be completed through another client's URL.
    b = personas["client_b"].id
    other = await post_form(
        client, f"/staff/clients/{b}/tasks/{task['id']}/done", {}, page=f"/staff/clients/{a}"
    )
    assert other.status_code == 404


# --- timeline -----------------------------------------------------------------------------------


async def test_the_timeline_has_every_fact_newest_first_with_keyset_paging(client, personas, cast):
    a = personas["client_a"].id
    admin, act = cast["admin"], actor_of(personas["admin"])
    await client_services.send_message(admin, a, "Welcome aboard", "Hello.", act)
    await lifecycle.change_stage(a, "kyc_pending", act)
    await services.add_note(admin, a, "First call done", act)
    task = await services.add_task(admin, a, "Collect ID", datetime.now(UTC) + timedelta(days=1), None, act)
    await services.complete_task(admin, a, task, act)
    await capture_lead(
        LeadData.from_mapping({"email": personas["client_a"].email, "first_name": "A", "last_name": "A"}),
        channel="form",
        api_key_id=None,
        actor=act,
    )
    await services.add_note(admin, personas["client_b"].id, "Not about A", act)  # B: outside sales' desks

    page = await services.timeline_for(admin, a)
    kinds = [e["kind"] for e in page["events"]]
    assert kinds == ["lead", "task", "task", "note", "stage", "message", "email"]  # the message's e-mail
    assert "registered → kyc pending" in page["events"][4]["summary"]
    assert "Welcome aboard" in page["events"][5]["summary"]
    assert "New message: Welcome aboard" in page["events"][6]["summary"]
    assert page["older"] is None

    first = await services.timeline_for(admin, a, limit=4)
    assert [e["kind"] for e in first["events"]] == kinds[:4] and first["older"] == first["events"][-1]["id"]
    second = await services.timeline_for(admin, a, before=first["older"], limit=4)
    assert [e["kind"] for e in second["events"]] == kinds[4:] and second["older"] is None


async def test_timeline_events_at_the_same_instant_page_without_loss_or_repeat(personas, cast):
    a = personas["client_a"].id
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    async with transaction():
        ids = [await record_event(a, "email", f"e{n}", at=moment) for n in range(7)]
    seen: list[int] = []
    before = None
    while True:
        page = await services.timeline_for(cast["admin"], a, before=before, limit=3)
        seen += [e["id"] for e in page["events"]]
        if page["older"] is None:
            break
        before = page["older"]
    assert seen == sorted(ids, reverse=True)


async def test_a_colleague_who_cannot_see_the_client_is_neither_mentioned_nor_given_a_task(personas, cast):
    b = personas["client_b"].id  # outside the sales agent's desk
    admin, act = cast["admin"], actor_of(personas["admin"])
    with pytest.raises(FormErrors) as refused:
        await services.add_note(admin, b, "Please call @sales and @compliance", act)
    assert refused.value.errors == {"note": "Sales cannot see this client: remove the @mention."}
    with pytest.raises(FormErrors) as refused:
        await services.add_task(admin, b, "Call", datetime.now(UTC), personas["sales"].id, act)
    assert "cannot see this client" in refused.value.errors["assignee"]
    assert await Note.count() == 0 and await Task.count() == 0
    await services.add_note(admin, b, "Please call @compliance", act)  # compliance sees every client
    assert await Mention.count() == 1


async def test_a_colleague_taken_off_the_desk_no_longer_sees_its_mentions_and_tasks(personas, cast):
    a = personas["client_a"].id
    admin, act = cast["admin"], actor_of(personas["admin"])
    note_id = await services.add_note(admin, a, "Over to you @sales", act)
    await services.add_task(admin, a, "Welcome call", datetime.now(UTC), personas["sales"].id, act)
    assert len(await services.mentions_for(cast["sales"])) == 1
    assert len(await services.my_tasks(cast["sales"])) == 1
    await DeskMember.update({DeskMember.active: False}).where(DeskMember.staff == personas["sales"].id)
    assert await services.mentions_for(cast["sales"]) == []
    assert await services.mention_for(cast["sales"], note_id) is None
    assert await services.my_tasks(cast["sales"]) == []


async def test_record_event_refuses_to_run_outside_a_transaction(personas):
    with pytest.raises(RuntimeError):
        await record_event(personas["client_a"].id, "note", "stray")


async def test_the_timeline_panel_as_fragment_and_as_page(client, personas, cast):
    a = personas["client_a"].id
    async with transaction():
        for n in range(55):
            await record_event(
                a, "email", f"Mail number {n}", at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n)
            )
    await sign_in(client, personas["finance"])
    fragment = await client.get(f"/staff/clients/{a}/timeline", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text.lower()
    assert "Mail number 54" in fragment.text and "Mail number 4 <" not in fragment.text
    older = re.search(r'hx-get="(/staff/clients/\d+/timeline\?before=\d+)"', fragment.text)
    assert older
    rest = await client.get(older.group(1), headers={"HX-Request": "true"})
    assert (
        "Mail number 4 <" in rest.text and "Mail number 54" not in rest.text and "?before=" not in rest.text
    )
    page = await client.get(f"/staff/clients/{a}/timeline")
    assert page.status_code == 200 and "<html" in page.text.lower() and 'id="timeline-panel"' in page.text
    assert 'id="notes-panel"' in page.text and 'id="tasks-panel"' in page.text
    # The client page itself loads each panel as a fragment.
    detail = await client.get(f"/staff/clients/{a}")
    for panel in ("notes", "tasks", "timeline"):
        assert f'hx-get="/staff/clients/{a}/{panel}" hx-trigger="load"' in detail.text
    assert 'hx-get="/staff/mentions/unread"' in detail.text


# --- who may use it ------------------------------------------------------------------------------


async def test_a_client_gets_404_from_every_workbench_service_even_about_themselves(personas, cast):
    a = personas["client_a"].id
    me = cast["client_a"]
    act = actor_of(personas["client_a"])
    calls = [
        services.add_note(me, a, "hi @admin", act),
        services.notes_for(me, a),
        services.add_task(me, a, "x", "2030-01-01", None, act),
        services.tasks_for(me, a),
        services.complete_task(me, a, 1, act),
        services.timeline_for(me, a),
        services.my_tasks(me),
        services.mentions_for(me),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            await call
    assert await Note.count() == 0 and await Task.count() == 0


async def test_an_unknown_client_is_404_for_staff_too(client, personas):
    await sign_in(client, personas["admin"])
    for panel in ("notes", "tasks", "timeline"):
        for headers in ({}, {"HX-Request": "true"}):
            r = await client.get(f"/staff/clients/999999/{panel}", headers=headers)
            assert r.status_code == 404, (panel, headers)
    r = await post_form(client, "/staff/clients/999999/notes", {"note": "x"}, page="/staff/tasks")
    assert r.status_code == 404 and await Note.count() == 0


async def test_the_whole_workbench_writes_audit_rows(personas, cast):
    a = personas["client_a"].id
    act = actor_of(personas["sales"])
    before = await AuditEvent.count()
    await services.add_note(cast["sales"], a, "n", act)
    t = await services.add_task(cast["sales"], a, "t", "2030-01-01", None, act)
    await services.complete_task(cast["sales"], a, t, act)
    assert await AuditEvent.count() == before + 3
    rows = (
        await AuditEvent.select(AuditEvent.action, AuditEvent.actor_id)
        .order_by(AuditEvent.seq, ascending=False)
        .limit(3)
    )
    assert {r["action"] for r in rows} == {"client.note_added", "client.task_added", "client.task_done"}
    assert {r["actor_id"] for r in rows} == {str(personas["sales"].id)}


async def test_a_timeline_event_rolls_back_with_the_fact_it_records(personas):
    a = personas["client_a"].id
    with pytest.raises(ZeroDivisionError):
        async with transaction():
            await lifecycle.record_history(a, "registered", "kyc_pending", actor_of(personas["admin"]))
            assert await TimelineEvent.count().where(TimelineEvent.client == a) == 1
            1 / 0  # noqa: B018
    assert await TimelineEvent.count().where(TimelineEvent.client == a) == 0


# --- live, on the real server ---------------------------------------------------------------------


async def test_a_mention_raises_the_colleagues_counter_over_the_websocket(live_server):
    from tests.core.test_live import (
        browser,
        live_client,
        live_staff,
        open_socket,
        post_with_csrf,
    )

    author_id, author_key = live_staff(live_server, ("sales",))
    _, colleague_key = live_staff(live_server, ("compliance",))
    _, bystander_key = live_staff(live_server, ("finance",))
    client_id, _ = live_client(live_server)
    with psycopg.connect(live_server.database_url, autocommit=True) as conn:  # desk scoping: the author's
        conn.execute(
            "INSERT INTO routing_assignments (client, desk, owner, assigned_at, first_contact_due_at,"
            " last_touched_at) VALUES (%s, NULL, %s, now(), now() + interval '1 hour', now())",
            (client_id, author_id),
        )
    async with browser(live_server, colleague_key) as colleague:
        handle = (await colleague.get("/staff/mentions")).text
        handle = re.search(r"(staff-[0-9a-f]{8})@staff\.test", handle).group(1)  # their e-mail in the top bar
    async with (
        open_socket(live_server, colleague_key) as ws_colleague,
        open_socket(live_server, bystander_key) as ws_bystander,
        browser(live_server, author_key) as author,
    ):
        r = await post_with_csrf(
            author,
            f"/staff/clients/{client_id}",
            f"/staff/clients/{client_id}/notes",
            {"note": f"Client asked for a call back, @{handle} can you take it?"},
        )
        assert r.status_code == 200, r.text[:300]

        async def counter_arrives() -> str:
            while True:
                html = await ws_colleague.recv()
                if 'id="mention-counter"' in html:
                    return str(html)

        html = await asyncio.wait_for(counter_arrives(), timeout=10)
        assert re.search(r'<span id="mention-counter" class="counter" hx-swap-oob="true">1</span>', html)
        assert "Client asked for a call back" in html
        # The other colleague's socket gets no counter (other desks' live events may come and go).
        with pytest.raises(TimeoutError):
            while True:
                assert 'id="mention-counter"' not in await asyncio.wait_for(ws_bystander.recv(), timeout=1.0)
