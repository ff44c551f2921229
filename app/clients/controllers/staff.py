"""Clients in the staff console: the list and the client page with its panels."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from litestar import Controller, Request, Response, get, post
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.clients import lifecycle, services
from app.clients.filters import COLUMNS, SORTS, ClientFilters
from app.clients.tables import STAGES
from app.core.auth.guards import requires_roles
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, is_fragment_request, principal, redirect, render
from app.partners import attribution
from app.staff.navigation import section_guard
from app.views import services as saved_views


async def _list_context(request: Request, filters: ClientFilters, **extra: Any) -> dict[str, Any]:
    """Everything the list page (or its rows partial) shows, built in one place."""
    p = principal(request)
    page = await services.list_clients_for(p, filters)
    choices = {} if is_fragment_request(request) else await services.list_choices()
    return {
        **page,
        **choices,
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
    return {**context, **extra}


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
