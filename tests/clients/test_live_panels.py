"""The staff client page, live: a colleague's change to a client's stage, owner, notes, tasks or
IB re-renders that panel on every open page of the client, for viewers who may see the client,
and for nobody else (a desk-scoped agent never gets HTML about a client off their desk)."""

from __future__ import annotations

import asyncio
import contextlib
import re

import pytest
import uvicorn
from websockets.asyncio.client import connect

from app.clients import lifecycle, live_panels, tags
from app.core import live, live_socket
from app.core.auth.principal import Principal
from app.core.live import Event, render_for
from app.partners import reattribution
from app.routing import services as routing
from app.workbench import services as workbench
from tests.personas import principal_of, session_for
from tests.servers import free_port

as_principal = principal_of  # the shared persona-to-Principal helper


@pytest.fixture
def cast(personas):
    return {name: as_principal(p) for name, p in personas.items() if p.kind != "anonymous"}


def actor(p: Principal):
    return p.actor("127.0.0.1", "pytest")


def page_event(client_id: int, type: str) -> Event:
    return Event(topic=f"staff:client:{client_id}", type=type, ids={"client_id": client_id})


async def rendered(viewer: Principal, event: Event) -> str:
    return "".join(await render_for(viewer, event))


# --- who may watch a client page -----------------------------------------------------------------


async def test_only_staff_who_may_see_the_client_may_watch_its_page(personas, cast):
    a, b = personas["client_a"].id, personas["client_b"].id
    assert await live_socket.watched_topics(cast["admin"], [f"client:{b}"]) == {live_panels.topic_for(b)}
    assert await live_socket.watched_topics(cast["sales"], [f"client:{a}"]) == {f"staff:client:{a}"}
    assert await live_socket.watched_topics(cast["sales"], [f"client:{b}"]) == set()  # off their desk
    assert await live_socket.watched_topics(cast["client_a"], [f"client:{a}"]) == set()  # clients: never
    for junk in ("client:", "client:abc", "client:-1", "client:99999999", "account:1", "nonsense", ""):
        assert await live_socket.watched_topics(cast["admin"], [junk]) == set(), junk


async def test_a_socket_watches_a_few_pages_at_most(personas, cast):
    ids = [personas[n].id for n in ("client_a", "client_b", "ib", "sub_ib")]
    many = [f"client:{i}" for i in ids] * 3
    assert len(await live_socket.watched_topics(cast["admin"], many)) == len(ids)
    assert len(await live_socket.watched_topics(cast["admin"], many[::-1][:2])) == 2


# --- the renderers ------------------------------------------------------------------------------


async def test_a_stage_change_renders_the_stage_panel_and_timeline_for_an_allowed_viewer_only(
    app, personas, cast
):
    a, b = personas["client_a"].id, personas["client_b"].id
    await lifecycle.change_stage(a, "kyc_pending", actor(cast["admin"]), reason="documents uploaded")
    html = await rendered(cast["sales"], page_event(a, "client_page.stage"))
    assert '<div id="stage-panel" hx-swap-oob="innerHTML">' in html
    assert re.search(r'id="current-stage">kyc pending<', html)
    assert '<div id="timeline-panel" hx-swap-oob="innerHTML">' in html and "documents uploaded" in html
    await lifecycle.change_stage(b, "kyc_pending", actor(cast["admin"]), reason="secret")
    # A scoped agent off the client's desk, a client, and a mismatched topic: nothing at all.
    assert await render_for(cast["sales"], page_event(b, "client_page.stage")) == []
    assert await render_for(cast["client_b"], page_event(b, "client_page.stage")) == []
    forged = Event(topic=f"staff:client:{a}", type="client_page.stage", ids={"client_id": b})
    assert await render_for(cast["admin"], forged) == []
    assert await render_for(cast["admin"], Event("staff:all", "client_page.stage", {"client_id": a})) == []


async def test_the_stage_panel_form_carries_the_sockets_csrf_token(app, personas, cast):
    a = personas["client_a"].id
    for stage in ("kyc_pending", "kyc_approved", "funded", "active"):
        await lifecycle.change_stage(a, stage, actor(cast["admin"]))
    token = live_socket._csrf.set("the-browsers-token")
    try:
        html = await rendered(cast["compliance"], page_event(a, "client_page.stage"))
    finally:
        live_socket._csrf.reset(token)
    assert f'action="/staff/clients/{a}/stage"' in html
    assert 'name="_csrf_token" value="the-browsers-token"' in html


async def test_an_owner_change_renders_the_assignment_panel_only_where_allowed(app, personas, cast):
    a, b = personas["client_a"].id, personas["client_b"].id
    await routing.reassign(a, personas["sales"].id, actor(cast["admin"]), cast["admin"])
    html = await rendered(cast["dealing"], page_event(a, "client_page.assignment"))
    assert '<div id="assignment-panel" hx-swap-oob="innerHTML">' in html
    assert re.search(r'id="assignment-owner">Sales<', html)
    assert "Reassign to" not in html  # only admins get the form, live as on the page
    assert "Reassign to" in await rendered(cast["admin"], page_event(a, "client_page.assignment"))
    assert await render_for(cast["sales"], page_event(b, "client_page.assignment")) == []


async def test_a_new_note_replaces_only_the_note_list_so_a_draft_survives(app, personas, cast):
    a, b = personas["client_a"].id, personas["client_b"].id
    await workbench.add_note(cast["admin"], a, "Called <b>twice</b>, no answer", actor(cast["admin"]))
    html = await rendered(cast["sales"], page_event(a, "client_page.notes"))
    assert html.startswith('<ul hx-swap-oob="true" class="list" id="note-list">')
    assert "Called &lt;b&gt;twice&lt;/b&gt;, no answer" in html
    assert "<form" not in html.split('<div id="timeline-panel"')[0]  # the note form is left alone
    assert '<div id="timeline-panel" hx-swap-oob="innerHTML">' in html
    await workbench.add_note(cast["admin"], b, "Not for the desk", actor(cast["admin"]))
    assert await render_for(cast["sales"], page_event(b, "client_page.notes")) == []


async def test_a_tag_change_replaces_only_the_tag_list_where_allowed(app, personas, cast):
    a, b = personas["client_a"].id, personas["client_b"].id
    await tags.add_tag(cast["admin"], a, "VIP gold", actor(cast["admin"]))
    html = await rendered(cast["sales"], page_event(a, "client_page.tags"))
    assert html.startswith('<ul hx-swap-oob="true" class="tag-list" id="tag-list">'), html[:80]
    assert ">vip gold</span>" in html
    assert 'id="f-tag"' not in html  # the add-a-tag input keeps what a colleague is typing
    assert '<div id="timeline-panel" hx-swap-oob="innerHTML">' in html
    await tags.add_tag(cast["admin"], b, "elsewhere", actor(cast["admin"]))
    assert await render_for(cast["sales"], page_event(b, "client_page.tags")) == []


async def test_a_new_or_finished_task_replaces_only_the_task_list(app, personas, cast):
    a, b = personas["client_a"].id, personas["client_b"].id
    task = await workbench.add_task(
        cast["admin"], a, "Send the swap table", "2031-01-02", None, actor(cast["admin"])
    )
    html = await rendered(cast["sales"], page_event(a, "client_page.tasks"))
    assert html.startswith('<table hx-swap-oob="true" class="data" id="task-list">')
    assert "Send the swap table" in html and f"/tasks/{task}/done" in html
    await workbench.complete_task(cast["admin"], a, task, actor(cast["admin"]))
    html = await rendered(cast["sales"], page_event(a, "client_page.tasks"))
    assert "badge-green" in html.split('<div id="timeline-panel"')[0]
    await workbench.add_task(cast["admin"], b, "Hidden", "2031-01-02", None, actor(cast["admin"]))
    assert await render_for(cast["sales"], page_event(b, "client_page.tasks")) == []


async def test_an_ib_change_renders_the_attribution_block_only_where_allowed(app, personas, cast):
    a, b = personas["client_a"].id, personas["client_b"].id
    await reattribution.reattribute(cast["admin"], a, "IBTEST", "signed at the expo", actor(cast["admin"]))
    html = await rendered(cast["sales"], page_event(a, "client_page.attribution"))
    assert '<div id="attribution-panel" hx-swap-oob="innerHTML">' in html
    assert "Referred by IB <strong>IBTEST</strong>" in html and "signed at the expo" in html
    assert "Save IB" not in html  # sales may see it, not change it
    assert "Save IB" in await rendered(cast["compliance"], page_event(a, "client_page.attribution"))
    await reattribution.reattribute(cast["admin"], b, "IBTEST", "expo", actor(cast["admin"]))
    assert await render_for(cast["sales"], page_event(b, "client_page.attribution")) == []


async def test_an_agent_taken_off_the_desk_stops_getting_the_page_they_still_have_open(app, personas, cast):
    a = personas["client_a"].id
    assert await rendered(cast["sales"], page_event(a, "client_page.notes"))
    from app.routing.tables import DeskMember

    await DeskMember.update({DeskMember.active: False}).where(DeskMember.staff == personas["sales"].id)
    assert await render_for(cast["sales"], page_event(a, "client_page.notes")) == []


async def test_each_change_publishes_to_the_client_page_topic(app, personas, cast, monkeypatch):
    published: list[tuple[str, str]] = []

    async def capture(topic: str, type: str, **ids) -> None:
        published.append((topic, type))

    monkeypatch.setattr(live, "publish", capture)
    a = personas["client_a"].id
    admin = cast["admin"]
    await lifecycle.change_stage(a, "kyc_pending", actor(admin))
    await routing.reassign(a, personas["sales"].id, actor(admin), admin)
    await routing.mark_contacted(a, actor(admin))
    await workbench.add_note(admin, a, "hello", actor(admin))
    task = await workbench.add_task(admin, a, "call", "2031-01-01", None, actor(admin))
    await workbench.complete_task(admin, a, task, actor(admin))
    await reattribution.reattribute(admin, a, "IBTEST", "expo", actor(admin))
    mine = [t for topic, t in published if topic == f"staff:client:{a}"]
    assert mine == [
        "client_page.stage",
        "client_page.assignment",
        "client_page.assignment",
        "client_page.notes",
        "client_page.tasks",
        "client_page.tasks",
        "client_page.attribution",
    ]


# --- over a real socket -------------------------------------------------------------------------


class _InProcessServer(uvicorn.Server):
    def capture_signals(self):  # pytest owns the signals
        return contextlib.nullcontext()


@pytest.fixture
async def served(app):
    server = _InProcessServer(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", ws="websockets-sansio")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started
    try:
        yield f"127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


def socket_to(host: str, key: str, watch: str):
    return connect(
        f"ws://{host}/live?watch={watch}",
        origin=f"http://{host}",  # type: ignore[arg-type]
        additional_headers={"Cookie": f"fxsid={key}; fxcsrf=browser-csrf"},
        open_timeout=10,
    )


async def nothing_arrives(ws, seconds: float) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), timeout=seconds)
    except TimeoutError:
        return True
    return False


async def test_open_pages_of_a_client_get_its_stage_change_and_an_agent_off_the_desk_gets_nothing(
    served, personas, cast
):
    a, b = personas["client_a"].id, personas["client_b"].id
    admin_key = await session_for(personas["admin"])
    sales_key = await session_for(personas["sales"])
    async with (
        socket_to(served, admin_key, f"client:{b}") as admin_on_b,
        socket_to(served, sales_key, f"client:{b}") as sales_on_b,  # tries to watch a client off-desk
        socket_to(served, sales_key, f"client:{a}") as sales_on_a,
    ):
        await lifecycle.change_stage(b, "kyc_pending", actor(cast["admin"]), reason="passport in")
        html = await asyncio.wait_for(admin_on_b.recv(), timeout=10)
        assert '<div id="stage-panel" hx-swap-oob="innerHTML">' in html and "passport in" in html
        assert await nothing_arrives(sales_on_b, 1.0)
        assert await nothing_arrives(sales_on_a, 0.2)  # another client's page hears nothing of b
        await lifecycle.change_stage(a, "kyc_pending", actor(cast["admin"]), reason="selfie in")
        html = await asyncio.wait_for(sales_on_a.recv(), timeout=10)
        assert "selfie in" in html and "passport in" not in html
        assert await nothing_arrives(admin_on_b, 0.5)
