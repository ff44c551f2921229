"""The staff workbench on a client: notes with @mentions, tasks, and the client's timeline.

Every function takes the acting Principal and goes through `get_client_for`, so a viewer who may
not see the client gets the same 404 as for a client that does not exist. Clients (even about
themselves) never see staff notes, tasks or the timeline.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

from app.clients.scoping import staff_who_may_see, visible_client_sql
from app.clients.services import get_client_for
from app.core import audit, db, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.staff.tables import StaffUser
from app.workbench.tables import Mention, Note, Task
from app.workbench.timeline import record_event

MAX_NOTE = 5000
MAX_TITLE = 200
TIMELINE_PAGE = 50
MENTION_RE = re.compile(r"(?<![\w.@])@([A-Za-z0-9][\w.\-]*)")


async def client_for_staff(viewer: Principal, client_id: int) -> dict[str, Any]:
    if not viewer.is_staff:
        raise NotFound("client")
    return await get_client_for(viewer, client_id)


def _excerpt(text: str, n: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


# --- mentions -----------------------------------------------------------------------------------


async def _refuse_colleagues_who_cannot_see(
    client_id: int, staff_ids: list[int], field: str, why: str
) -> None:
    """Naming a client to a colleague who may not open it would leak it (desk scoping): refuse."""
    seeing = await staff_who_may_see(client_id, staff_ids)
    blind = [sid for sid in staff_ids if sid not in seeing]
    if blind:
        names = (
            await StaffUser.select(StaffUser.name).where(StaffUser.id.is_in(blind)).order_by(StaffUser.name)
        )
        raise FormErrors({field: ", ".join(n["name"] for n in names) + f" {why}."})


def _handles(staff: dict[str, Any]) -> set[str]:
    """What colleagues may type after @ to name this person: e-mail local part, or the name without spaces."""
    name = staff["name"].strip().lower()
    handles = {staff["email"].split("@", 1)[0].lower()}
    if name:
        handles |= {name.replace(" ", ""), name.replace(" ", "."), name.replace(" ", "_")}
    return handles


async def mentioned_staff(body: str) -> list[int]:
    """Active staff named by @handle in `body`, in order of first mention."""
    tokens = [t.rstrip(".-").lower() for t in MENTION_RE.findall(body)]
    if not tokens:
        return []
    staff = await StaffUser.select(StaffUser.id, StaffUser.name, StaffUser.email).where(
        StaffUser.is_active.eq(True)
    )
    found: list[int] = []
    for token in tokens:
        for s in staff:
            if token in _handles(s) and s["id"] not in found:
                found.append(int(s["id"]))
    return found


async def add_note(viewer: Principal, client_id: int, body: str, actor: Actor) -> int:
    """Save the note, mention the named colleagues and tell each of them live, all in one transaction."""
    await client_for_staff(viewer, client_id)
    body = body.strip()
    if not body:
        raise FormErrors({"note": "Write the note."})
    if len(body) > MAX_NOTE:
        raise FormErrors({"note": f"Keep the note under {MAX_NOTE:,} characters."})
    mentioned = [sid for sid in await mentioned_staff(body) if sid != viewer.id]
    await _refuse_colleagues_who_cannot_see(
        client_id, mentioned, "note", "cannot see this client: remove the @mention"
    )
    now = datetime.now(UTC)
    async with transaction():
        note = Note(client=client_id, author=viewer.id, body=body, created_at=now)
        await note.save()
        for staff_id in mentioned:
            await Mention(note=note.id, staff=staff_id).save()
        await audit.record(
            actor,
            "client.note_added",
            "client",
            client_id,
            after={"note_id": note.id, "mentions": mentioned},
        )
        await record_event(
            client_id, "note", f"Note by {viewer.name}: {_excerpt(body)}", "note", note.id, at=now
        )
        for staff_id in mentioned:
            await live.publish(f"staff:user:{staff_id}", "mention.created", note_id=note.id)
        await live.publish(f"staff:client:{client_id}", "client_page.notes", client_id=client_id)
    return int(note.id)


async def notes_for(viewer: Principal, client_id: int, limit: int = 100) -> list[dict[str, Any]]:
    await client_for_staff(viewer, client_id)
    return await (
        Note.select(Note.id, Note.body, Note.created_at, Note.author.name.as_alias("author_name"))
        .where(Note.client == client_id)
        .order_by(Note.id, ascending=False)
        .limit(limit)
    )


async def unread_mentions(staff_id: int) -> int:
    return await Mention.count().where((Mention.staff == staff_id) & Mention.seen_at.is_null())


_MENTION_SQL = (
    "SELECT m.id, m.seen_at, n.id AS note_id, n.body, n.created_at, n.client AS client_id, "
    "c.first_name, c.last_name, s.name AS author_name "
    "FROM note_mentions m JOIN client_notes n ON n.id = m.note "
    "JOIN clients c ON c.id = n.client JOIN staff_users s ON s.id = n.author "
    "WHERE m.staff = {} AND "
)


async def mentions_for(viewer: Principal, limit: int = 100) -> list[dict[str, Any]]:
    if not viewer.is_staff:
        raise NotFound("mentions")
    scope, args = visible_client_sql(viewer)  # a colleague since moved off the desk sees no excerpt
    return await db.fetch(
        _MENTION_SQL + scope + " ORDER BY n.created_at DESC, m.id DESC LIMIT {}", viewer.id, *args, limit
    )


async def mention_for(viewer: Principal, note_id: int) -> dict[str, Any] | None:
    """The viewer's own mention in this note, or None (someone else's mention is nobody's business)."""
    if not viewer.is_staff:
        return None
    scope, args = visible_client_sql(viewer)
    rows = await db.fetch(_MENTION_SQL + scope + " AND n.id = {} LIMIT 1", viewer.id, *args, note_id)
    return rows[0] if rows else None


async def mark_mentions_seen(viewer: Principal) -> int:
    if not viewer.is_staff:
        raise NotFound("mentions")
    rows = (
        await Mention.update({Mention.seen_at: datetime.now(UTC)}, use_auto_update=False)
        .where((Mention.staff == viewer.id) & Mention.seen_at.is_null())
        .returning(Mention.id)
    )
    return len(rows)


# --- tasks --------------------------------------------------------------------------------------


def parse_due(value: str | datetime) -> datetime | None:
    """A datetime-local value ("2026-12-01T14:30", read as UTC) or a bare date (the end of that day)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    value = value.strip()
    if not value:
        return None
    try:
        if "T" in value or " " in value:
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        day = datetime.fromisoformat(value).date()
        return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)
    except ValueError:
        return None


async def active_staff() -> list[dict[str, Any]]:
    return await (
        StaffUser.select(StaffUser.id, StaffUser.name, StaffUser.email)
        .where(StaffUser.is_active.eq(True))
        .order_by(StaffUser.name)
    )


async def add_task(
    viewer: Principal,
    client_id: int,
    title: str,
    due_at: str | datetime,
    assignee_id: int | str | None,
    actor: Actor,
) -> int:
    await client_for_staff(viewer, client_id)
    title = " ".join(title.split())
    errors: dict[str, str] = {}
    if not title:
        errors["title"] = "Say what needs doing."
    elif len(title) > MAX_TITLE:
        errors["title"] = f"Keep the title under {MAX_TITLE} characters."
    due = parse_due(due_at)
    if due is None:
        errors["due_at"] = "Choose a due date."
    try:
        assignee = int(assignee_id) if assignee_id not in (None, "") else viewer.id
    except (TypeError, ValueError):
        assignee = 0
    if not await StaffUser.exists().where((StaffUser.id == assignee) & StaffUser.is_active.eq(True)):
        errors["assignee"] = "Choose an active colleague."
    elif not await staff_who_may_see(client_id, [assignee]):
        errors["assignee"] = (
            "This colleague cannot see this client (not on its desk): choose someone who can."
        )
    if errors:
        raise FormErrors(errors)
    assert due is not None
    now = datetime.now(UTC)
    async with transaction():
        task = Task(
            client=client_id,
            title=title,
            due_at=due,
            assignee=assignee,
            created_by=viewer.id,
            created_at=now,
        )
        await task.save()
        await audit.record(
            actor,
            "client.task_added",
            "client",
            client_id,
            after={"task_id": task.id, "title": title, "due_at": due.isoformat(), "assignee": assignee},
        )
        await record_event(client_id, "task", f"Task for {due:%Y-%m-%d}: {title}", "task", task.id, at=now)
        await live.publish(f"staff:client:{client_id}", "client_page.tasks", client_id=client_id)
    return int(task.id)


async def complete_task(viewer: Principal, client_id: int, task_id: int, actor: Actor) -> bool:
    """Mark the task done; False when it already was (a double click changes nothing)."""
    await client_for_staff(viewer, client_id)
    async with transaction():
        rows = (
            await Task.update({Task.done_at: datetime.now(UTC)}, use_auto_update=False)
            .where((Task.id == task_id) & (Task.client == client_id) & Task.done_at.is_null())
            .returning(Task.id, Task.title)
        )
        if not rows:
            if not await Task.exists().where((Task.id == task_id) & (Task.client == client_id)):
                raise NotFound("task")
            return False
        await audit.record(actor, "client.task_done", "client", client_id, after={"task_id": task_id})
        await record_event(
            client_id, "task", f"Task done by {viewer.name}: {rows[0]['title']}", "task", task_id
        )
        await live.publish(f"staff:client:{client_id}", "client_page.tasks", client_id=client_id)
    return True


def _with_overdue(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    for r in rows:
        r["overdue"] = r["done_at"] is None and r["due_at"] < now
    return rows


async def tasks_for(viewer: Principal, client_id: int) -> list[dict[str, Any]]:
    """Open tasks first (soonest due first), then the most recently done."""
    await client_for_staff(viewer, client_id)
    rows = await db.fetch(
        "SELECT t.id, t.title, t.due_at, t.done_at, t.created_at, a.name AS assignee_name "
        "FROM client_tasks t JOIN staff_users a ON a.id = t.assignee WHERE t.client = {} "
        "ORDER BY t.done_at IS NOT NULL, t.due_at, t.done_at DESC, t.id LIMIT 200",
        client_id,
    )
    return _with_overdue(rows)


async def my_tasks(viewer: Principal, limit: int = 200) -> list[dict[str, Any]]:
    """Open tasks assigned to the viewer: overdue first, then by due date (on clients they may see)."""
    if not viewer.is_staff:
        raise NotFound("tasks")
    scope, args = visible_client_sql(viewer)
    rows = await db.fetch(
        "SELECT t.id, t.title, t.due_at, t.done_at, t.client AS client_id, c.first_name, c.last_name "
        "FROM client_tasks t JOIN clients c ON c.id = t.client "
        f"WHERE t.assignee = {{}} AND t.done_at IS NULL AND {scope} ORDER BY t.due_at, t.id LIMIT {{}}",
        viewer.id,
        *args,
        limit,
    )
    return _with_overdue(rows)


# --- timeline -----------------------------------------------------------------------------------


async def timeline_for(
    viewer: Principal, client_id: int, before: int | None = None, limit: int = TIMELINE_PAGE
) -> dict[str, Any]:
    """Newest first, one page; `older` is the cursor (an event id) for the next page, or None.

    Keyset on (occurred_at, id): a page costs the same however deep it is.
    """
    await client_for_staff(viewer, client_id)
    limit = max(1, min(limit, 200))
    sql = "SELECT id, occurred_at, kind, summary, ref_type, ref_id FROM client_timeline WHERE client = {} "
    args: list[Any] = [client_id]
    if before is not None:
        sql += "AND (occurred_at, id) < (SELECT occurred_at, id FROM client_timeline WHERE id = {} AND client = {}) "
        args += [before, client_id]
    sql += "ORDER BY occurred_at DESC, id DESC LIMIT {}"
    rows = await db.fetch(sql, *args, limit + 1)
    older = rows[limit - 1]["id"] if len(rows) > limit else None
    return {"events": rows[:limit], "older": older}


def default_due() -> str:
    """Tomorrow, for the task form's date field."""
    return (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
