"""Clients in the staff console: the list and the client page with its panels."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from litestar import Controller, Request, Response, get, post
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.clients import bulk, bulk_runs, lifecycle, services, tags
from app.clients.filters import COLUMNS, SORTS, ClientFilters
from app.clients.tables import STAGES
from app.core.auth.guards import requires_roles
from app.core.auth.principal import Principal
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, is_fragment_request, principal, redirect, render
from app.imports import services as import_services
from app.partners import attribution
from app.screening import services as screening
from app.staff.navigation import section_guard
from app.views import services as saved_views


async def _list_context(request: Request, filters: ClientFilters, **extra: Any) -> dict[str, Any]:
    """Everything the list page (or its rows partial) shows, built in one place."""
    p = principal(request)
    page = await services.list_clients_for(p, filters)
    choices = {} if is_fragment_request(request) else await services.list_choices(p)
    if not is_fragment_request(request):
        choices["tag_suggestions"] = await tags.suggestions_for(p)
        choices["bulk_runs"] = await bulk_runs.recent_runs_for(p)
        choices["can_import"] = p.has_role(*import_services.ROLES)
    return {
        **page,
        **choices,
        **await bulk.form_context(p),
        "bulk_errors": {},
        "bulk_values": {},
        "bulk_ids": (),
        "f": filters,
        "stages": STAGES,
        "columns": COLUMNS,
        "sorts": SORTS,
        "views": await saved_views.views_for(p),
        "share_options": await saved_views.share_options(p),
        "view_errors": {},
        **extra,
    }


async def _client_context(request: Request, client_id: int, **extra: Any) -> dict[str, Any]:
    """Everything the client page shows, for the page and for each of its panels.

    The stage panel's data also proves access (404 to outsiders) before anything else is read."""
    p = principal(request)
    context: dict[str, Any] = {**await lifecycle.stage_panel_for(p, client_id), "errors": {}, "values": {}}
    context["messages"] = await services.messages_for(p, client_id)
    if not is_fragment_request(request):
        context["attribution"] = await attribution.attribution_of(p, client_id)
        context["sanctions"] = await screening.status_for(client_id, p)
    return {**context, **extra}


async def _tags_context(p: Principal, client_id: int, **extra: Any) -> dict[str, Any]:
    """The tags panel (its data also proves access: 404 to outsiders)."""
    client_tags = await tags.tags_for(p, client_id)
    have = {t["tag"] for t in client_tags}
    return {
        "tags": client_tags,
        "tag_suggestions": [t for t in await tags.suggestions_for(p) if t not in have],
        "tag_errors": {},
        "tag_values": {},
        **extra,
    }


async def _tags_panel(request: Request, client_id: int, status_code: int = 200, **extra: Any) -> Template:
    """The fragment for htmx; for a browser without it, the whole client page with the panel filled in."""
    p = principal(request)
    context = await _tags_context(p, client_id, **extra)
    if is_fragment_request(request):
        context["client"] = await services.get_client_for(p, client_id)
    else:
        context = await _client_context(request, client_id, **context)
    return render(
        request,
        "clients/staff_detail.html",
        context,
        partial="clients/_tags_panel.html",
        status_code=status_code,
    )


def _bulk_form(form: Any) -> bulk.BulkForm:
    def one(name: str) -> str:
        value = form.get(name, "")
        return value if isinstance(value, str) else ""

    return bulk.BulkForm(
        action=one("action"),
        ids=tuple(v for v in form.getall("ids", []) if isinstance(v, str)),
        all_matching=one("all") == "on",
        query=one("query"),
        owner=one("owner"),
        tag=one("tag"),
        stage=one("stage"),
        reason=one("reason"),
    )


class StaffClients(Controller):
    path = "/clients"
    guards = [section_guard("clients")]

    @get("/")
    async def index(self, request: Request) -> Template:
        params = request.query_params
        filters = ClientFilters.parse({k: params.getall(k) for k in set(params.keys())})
        return render(
            request,
            "clients/staff_list.html",
            await _list_context(request, filters),
            partial="clients/_staff_rows.html",
        )

    @post("/views")
    async def save_view(self, request: HTMXRequest) -> Response:
        data = await form_data(request)
        query = data.get("query", "")
        try:
            await saved_views.save_view(
                principal(request), data.get("name", ""), query, data.get("share", ""), actor_of(request)
            )
        except FormErrors as exc:
            filters = ClientFilters.parse(parse_qs(query, keep_blank_values=True))
            context = await _list_context(
                request,
                filters,
                view_errors=exc.errors,
                view_name=data.get("name", ""),
                view_share=data.get("share", ""),
            )
            return render(request, "clients/staff_list.html", context, status_code=422)
        return redirect(request, "/staff/clients?" + ClientFilters.parse(parse_qs(query)).query())

    @post("/views/{view_id:int}/delete")
    async def delete_view(self, request: HTMXRequest, view_id: int) -> Response:
        await saved_views.delete_view(principal(request), view_id, actor_of(request))
        return redirect(request, "/staff/clients")

    @get("/{client_id:int}")
    async def detail(self, request: Request, client_id: int) -> Template:
        return Template("clients/staff_detail.html", context=await _client_context(request, client_id))

    @get("/{client_id:int}/stage")
    async def stage_panel(self, request: Request, client_id: int) -> Template:
        context = await _client_context(request, client_id)
        return render(request, "clients/staff_detail.html", context, partial="clients/_stage_panel.html")

    @post("/{client_id:int}/stage", guards=[requires_roles(*lifecycle.MANUAL_ROLES)])
    async def change_stage(self, request: HTMXRequest, client_id: int) -> Response:
        p = principal(request)
        data = await form_data(request)
        await services.get_client_for(p, client_id)
        try:
            await lifecycle.change_stage(
                client_id,
                data.get("stage", ""),
                actor_of(request),
                reason=data.get("reason", ""),
                manual_by=p,
            )
        except FormErrors as exc:
            context = await _client_context(request, client_id, stage_errors=exc.errors, stage_values=data)
            return render(
                request,
                "clients/staff_detail.html",
                context,
                partial="clients/_stage_panel.html",
                status_code=422,
            )
        if request.htmx:
            context = await _client_context(request, client_id, stage_moved=True)
            return render(request, "clients/staff_detail.html", context, partial="clients/_stage_panel.html")
        return redirect(request, f"/staff/clients/{client_id}")

    @post("/{client_id:int}/messages")
    async def send_message(self, request: HTMXRequest, client_id: int) -> Response:
        p = principal(request)
        data = await form_data(request)
        try:
            await services.send_message(
                p, client_id, data.get("subject", ""), data.get("body", ""), actor_of(request)
            )
        except FormErrors as exc:
            context = await _client_context(request, client_id, errors=exc.errors, values=data)
            return render(
                request,
                "clients/staff_detail.html",
                context,
                partial="clients/_message_panel.html",
                status_code=422,
            )
        if request.htmx:
            context = await _client_context(request, client_id, sent=True)
            return render(
                request, "clients/staff_detail.html", context, partial="clients/_message_panel.html"
            )
        return redirect(request, f"/staff/clients/{client_id}")

    @get("/{client_id:int}/tags")
    async def tags_panel(self, request: Request, client_id: int) -> Template:
        return await _tags_panel(request, client_id)

    @post("/{client_id:int}/tags")
    async def add_tag(self, request: HTMXRequest, client_id: int) -> Response:
        data = await form_data(request)
        try:
            tag = await tags.add_tag(principal(request), client_id, data.get("tag", ""), actor_of(request))
        except FormErrors as exc:
            return await _tags_panel(request, client_id, 422, tag_errors=exc.errors, tag_values=data)
        if request.htmx:
            return await _tags_panel(request, client_id, tag_flash=f"Tag “{tag}” added.")
        return redirect(request, f"/staff/clients/{client_id}")

    @post("/{client_id:int}/tags/remove")
    async def remove_tag(self, request: HTMXRequest, client_id: int) -> Response:
        data = await form_data(request)
        try:
            tag = await tags.remove_tag(principal(request), client_id, data.get("tag", ""), actor_of(request))
        except FormErrors as exc:
            return await _tags_panel(request, client_id, 422, tag_errors=exc.errors)
        if request.htmx:
            return await _tags_panel(request, client_id, tag_flash=f"Tag “{tag}” removed.")
        return redirect(request, f"/staff/clients/{client_id}")

    @get("/bulk/count")
    async def bulk_count(self, request: Request) -> Response:
        """How many clients "all matching this filter" means, loaded by the bulk form on demand
        (counting a large book is slow, the list itself must not wait for it). It is part of the
        list page: a browser asking for it directly is sent to that list."""
        params = request.query_params
        filters = ClientFilters.parse({k: params.getall(k) for k in set(params.keys())})
        if not is_fragment_request(request):
            query = filters.query()
            return redirect(request, "/staff/clients" + (f"?{query}" if query else ""))
        count = await bulk.count_matching(principal(request), filters)
        return Template("clients/_bulk_count.html", context={"count": count, "f": filters})

    @post("/bulk")
    async def start_bulk(self, request: HTMXRequest) -> Response:
        p = principal(request)
        form = _bulk_form(await request.form())
        try:
            run_id = await bulk.start_run(p, form, actor_of(request))
        except FormErrors as exc:
            if request.htmx:
                return Template(
                    "clients/_bulk_errors.html", context={"bulk_errors": exc.errors}, status_code=422
                )
            filters = ClientFilters.parse(parse_qs(form.query, keep_blank_values=True))
            context = await _list_context(
                request, filters, bulk_errors=exc.errors, bulk_values=form.values(), bulk_ids=set(form.ids)
            )
            return Template("clients/staff_list.html", context=context, status_code=422)
        if request.htmx:
            run = await bulk_runs.run_for(p, run_id)
            # A run done in the request changed rows on screen: the list reloads them (same filters).
            headers = {"HX-Trigger": "bulk-done"} if run["status"] == "finished" else {}
            return Template("clients/_bulk_progress.html", context={"run": run}, headers=headers)
        return redirect(request, f"/staff/clients/bulk/{run_id}")

    @get("/bulk/{run_id:int}")
    async def bulk_run(self, request: Request, run_id: int) -> Template:
        run = await bulk_runs.run_for(principal(request), run_id)
        return render(request, "clients/bulk_run.html", {"run": run}, partial="clients/_bulk_progress.html")
