"""The staff client page, live: when a client's stage, owner, notes, tasks or IB change, every
colleague who has that client's page open sees the panel change without a reload.

A page asks to watch its client (`/live?watch=client:42`); the socket hears `staff:client:42`
only if the viewer may see that client when it connects. Each renderer checks again, because
access can change while the page is open (a lead moved to another desk), and renders the panel's
own partial for that viewer. Nobody else receives anything about the client.

Panels with a form someone may be typing into (notes, tasks) get only their list replaced, so a
colleague's half-written note is never wiped by someone else's.
"""

from __future__ import annotations

import re
from typing import Any

from app.clients import lifecycle, tags
from app.clients.services import get_client_for
from app.core.auth.principal import Principal
from app.core.errors import NotFound
from app.core.live import Event, render_template, renderer
from app.core.live_socket import csrf_token, watcher
from app.partners import reattribution
from app.routing import services as routing
from app.workbench import services as workbench


def topic_for(client_id: int) -> str:
    return f"staff:client:{client_id}"


@watcher("client")
async def watch_client(viewer: Principal, ref: str) -> str | None:
    """Staff who may see the client hear about changes to their page; anyone else, nothing."""
    if not viewer.is_staff or not ref.isdigit() or len(ref) > 12:
        return None
    try:
        await get_client_for(viewer, int(ref))
    except NotFound:
        return None
    return topic_for(int(ref))


def _client_id(viewer: Principal, event: Event) -> int | None:
    """The client the event is about, if it came on that client's page topic to a staff viewer."""
    if not viewer.is_staff:
        return None
    try:
        client_id = int(event.ids["client_id"])
    except (KeyError, TypeError, ValueError):
        return None
    return client_id if event.topic == topic_for(client_id) else None


async def _visible_client(viewer: Principal, event: Event) -> dict[str, Any] | None:
    client_id = _client_id(viewer, event)
    if client_id is None:
        return None
    try:
        return await get_client_for(viewer, client_id)
    except NotFound:
        return None


def _render(template: str, **context: Any) -> str:
    """A partial as the page would render it; its forms carry this browser's CSRF token."""
    return render_template(template, csrf_token=csrf_token, **context)


def _panel(panel_id: str, inner: str) -> str:
    """Replace the content of the card `panel_id` (the card itself, and its place, stay)."""
    return f'<div id="{panel_id}" hx-swap-oob="innerHTML">{inner}</div>'


def _element(html: str, element_id: str) -> str | None:
    """The element with this id, whole, out of a rendered partial, marked to replace its twin.

    Counting tags is sound here: the markup is our own template's and every value in it is
    escaped, so no text can open or close a tag."""
    start = re.search(rf'<([a-z][a-z0-9]*)\b[^>]*\sid="{re.escape(element_id)}"', html)
    if start is None:
        return None
    tag = start.group(1)
    depth = 0
    for m in re.compile(rf"<(/?){tag}\b[^>]*>").finditer(html, start.start()):
        depth += -1 if m.group(1) else 1
        if depth == 0:
            whole = html[start.start() : m.end()]
            return f'<{tag} hx-swap-oob="true"' + whole[len(tag) + 1 :]
    return None


async def _timeline(viewer: Principal, client: dict[str, Any]) -> str:
    page = await workbench.timeline_for(viewer, client["id"])
    html = _render(
        "workbench/_timeline_panel.html",
        client=client,
        timeline=page["events"],
        timeline_older=page["older"],
        timeline_before=None,
    )
    return _panel("timeline-panel", html)


@renderer("client_page.stage")
async def stage_panel(viewer: Principal, event: Event) -> str | None:
    client_id = _client_id(viewer, event)
    if client_id is None:
        return None
    try:
        context = await lifecycle.stage_panel_for(viewer, client_id)  # proves access, too
    except NotFound:
        return None
    html = _render("clients/_stage_panel.html", **context)
    return _panel("stage-panel", html) + await _timeline(viewer, context["client"])


@renderer("client_page.assignment")
async def assignment_panel(viewer: Principal, event: Event) -> str | None:
    client = await _visible_client(viewer, event)
    if client is None:
        return None
    context = await routing.assignment_panel_for(viewer, client["id"])
    html = _render("routing/_assignment_panel.html", client=client, assignment_errors={}, **context)
    return _panel("assignment-panel", html)


@renderer("client_page.notes")
async def notes_list(viewer: Principal, event: Event) -> str | None:
    client = await _visible_client(viewer, event)
    if client is None:
        return None
    notes = await workbench.notes_for(viewer, client["id"])
    html = _render("workbench/_notes_panel.html", client=client, notes=notes, note_errors={}, note_values={})
    return (_element(html, "note-list") or "") + await _timeline(viewer, client)


@renderer("client_page.tasks")
async def tasks_list(viewer: Principal, event: Event) -> str | None:
    client = await _visible_client(viewer, event)
    if client is None:
        return None
    tasks = await workbench.tasks_for(viewer, client["id"])
    html = _render(
        "workbench/_tasks_panel.html",
        client=client,
        tasks=tasks,
        task_errors={},
        task_values={},
        assignee_options=[],
    )
    return (_element(html, "task-list") or "") + await _timeline(viewer, client)


@renderer("client_page.attribution")
async def attribution_panel(viewer: Principal, event: Event) -> str | None:
    client_id = _client_id(viewer, event)
    if client_id is None:
        return None
    try:
        context = await reattribution.attribution_panel_for(viewer, client_id)  # proves access, too
    except NotFound:
        return None
    html = _render("partners/_attribution.html", **context)
    return _panel("attribution-panel", html) + await _timeline(viewer, context["client"])


@renderer("client_page.tags")
async def tags_list(viewer: Principal, event: Event) -> str | None:
    """Only the list of tags: a colleague's half-typed new tag stays in its input."""
    client = await _visible_client(viewer, event)
    if client is None:
        return None
    client_tags = await tags.tags_for(viewer, client["id"])
    html = _render(
        "clients/_tags_panel.html",
        client=client,
        tags=client_tags,
        tag_suggestions=[],
        tag_errors={},
        tag_values={},
        tag_flash=None,
    )
    return (_element(html, "tag-list") or "") + await _timeline(viewer, client)
