"""The workbench in the staff console: a client's notes, tasks and timeline panels, "my tasks", mentions."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.clients import lifecycle
from app.clients import services as client_services
from app.core.auth.principal import Principal
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, is_fragment_request, principal, render
from app.staff.navigation import section_guard
from app.workbench import services


async def notes_context(p: Principal, client_id: int, **extra: Any) -> dict[str, Any]:
    return {"notes": await services.notes_for(p, client_id), "note_errors": {}, "note_values": {}, **extra}


async def tasks_context(p: Principal, client_id: int, **extra: Any) -> dict[str, Any]:
    staff = await services.active_staff()
    return {
        "tasks": await services.tasks_for(p, client_id),
        "task_errors": {},
        "task_values": {"due_at": services.default_due(), "assignee": str(p.id)},
        "assignee_options": [(str(s["id"]), s["name"]) for s in staff],
        **extra,
    }


async def timeline_context(p: Principal, client_id: int, before: int | None = None) -> dict[str, Any]:
    page = await services.timeline_for(p, client_id, before=before)
    return {"timeline": page["events"], "timeline_older": page["older"], "timeline_before": before}


async def page_context(p: Principal, client_id: int, **extra: Any) -> dict[str, Any]:
    """The whole client page with every workbench panel filled in (for requests without htmx)."""
    ctx: dict[str, Any] = {
        **await lifecycle.stage_panel_for(p, client_id),
        "messages": await client_services.messages_for(p, client_id),
        "errors": {},
        "values": {},
        **await notes_context(p, client_id),
        **await tasks_context(p, client_id),
        **await timeline_context(p, client_id),
    }
    ctx.update(extra)
    return ctx


async def _panel(
    request: Request, client_id: int, partial: str, ctx: dict[str, Any], status_code: int = 200
) -> Template:
    p = principal(request)
    if is_fragment_request(request):
        client = await services.client_for_staff(p, client_id)
        return Template(partial, context={"client": client, **ctx}, status_code=status_code)
    return Template(
        "clients/staff_detail.html", context=await page_context(p, client_id, **ctx), status_code=status_code
    )


class ClientWorkbench(Controller):
    """Panels of the client page; each is a fragment for htmx and the whole page otherwise."""

    path = "/clients"
    guards = [section_guard("clients")]

    @get("/{client_id:int}/notes")
    async def notes(self, request: Request, client_id: int) -> Template:
        return await _panel(
            request,
            client_id,
            "workbench/_notes_panel.html",
            await notes_context(principal(request), client_id),
        )

    @post("/{client_id:int}/notes")
    async def add_note(self, request: Request, client_id: int) -> Response:
        p = principal(request)
        data = await form_data(request)
        try:
            await services.add_note(p, client_id, data.get("note", ""), actor_of(request))
        except FormErrors as exc:
            ctx = await notes_context(p, client_id, note_errors=exc.errors, note_values=data)
            return await _panel(request, client_id, "workbench/_notes_panel.html", ctx, status_code=422)
        ctx = await notes_context(p, client_id, note_saved=True)
        return await _panel(request, client_id, "workbench/_notes_panel.html", ctx)

    @get("/{client_id:int}/tasks")
    async def tasks(self, request: Request, client_id: int) -> Template:
        return await _panel(
            request,
            client_id,
            "workbench/_tasks_panel.html",
            await tasks_context(principal(request), client_id),
        )

    @post("/{client_id:int}/tasks")
    async def add_task(self, request: Request, client_id: int) -> Response:
        p = principal(request)
        data = await form_data(request)
        try:
            await services.add_task(
                p,
                client_id,
                data.get("title", ""),
                data.get("due_at", ""),
                data.get("assignee"),
                actor_of(request),
            )
        except FormErrors as exc:
            ctx = await tasks_context(p, client_id, task_errors=exc.errors, task_values=data)
            return await _panel(request, client_id, "workbench/_tasks_panel.html", ctx, status_code=422)
        ctx = await tasks_context(p, client_id, task_saved=True)
        return await _panel(request, client_id, "workbench/_tasks_panel.html", ctx)

    @post("/{client_id:int}/tasks/{task_id:int}/done")
    async def complete_task(self, request: Request, client_id: int, task_id: int) -> Response:
        p = principal(request)
        await services.complete_task(p, client_id, task_id, actor_of(request))
        return await _panel(
            request, client_id, "workbench/_tasks_panel.html", await tasks_context(p, client_id)
        )

    @get("/{client_id:int}/timeline")
    async def timeline(self, request: Request, client_id: int, before: int | None = None) -> Template:
        ctx = await timeline_context(principal(request), client_id, before)
        return await _panel(request, client_id, "workbench/_timeline_panel.html", ctx)


class MyWork(Controller):
    """Every staff member's own tasks and mentions, whatever their desk."""

    path = "/"

    @get("/tasks")
    async def my_tasks(self, request: Request) -> Template:
        rows = await services.my_tasks(principal(request))
        return render(request, "workbench/my_tasks.html", {"tasks": rows}, partial="workbench/_my_tasks.html")

    @get("/mentions")
    async def mentions(self, request: Request) -> Template:
        """Opening the list marks every mention seen, so the counter resets."""
        p = principal(request)
        rows = await services.mentions_for(p)
        await services.mark_mentions_seen(p)
        return render(
            request,
            "workbench/mentions.html",
            {"mentions": rows, "mention_count": 0},
            partial="workbench/_mention_list.html",
        )

    @get("/mentions/unread")
    async def unread(self, request: Request) -> Template:
        """The top bar's counter, loaded lazily by every console page."""
        count = await services.unread_mentions(principal(request).id)
        return Template("workbench/_mention_counter.html", context={"count": count, "oob": False})
