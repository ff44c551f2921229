"""Clients in the staff console (the full workbench arrives with the clients issue)."""

from __future__ import annotations

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


class StaffClients(Controller):
    path = "/clients"
    guards = [section_guard("clients")]

    @get("/")
    async def index(self, request: Request) -> Template:
        params = request.query_params
        filters = ClientFilters.parse({k: params.getall(k) for k in set(params.keys())})
        page = await services.list_clients_for(principal(request), filters)
        p = principal(request)
        choices = {} if is_fragment_request(request) else await services.list_choices()
        return render(
            request,
            "clients/staff_list.html",
            {
                **page,
                **choices,
                "f": filters,
                "stages": STAGES,
                "columns": COLUMNS,
                "sorts": SORTS,
                "views": await saved_views.views_for(p),
                "view_errors": {},
            },
            partial="clients/_staff_rows.html",
        )

    @post("/views")
    async def save_view(self, request: HTMXRequest) -> Response:
        data = await form_data(request)
        query = data.get("query", "")
        try:
            await saved_views.save_view(
                principal(request), data.get("name", ""), query, data.get("shared") == "on", actor_of(request)
            )
        except FormErrors as exc:
            params = parse_qs(query, keep_blank_values=True)
            filters = ClientFilters.parse(params)
            page = await services.list_clients_for(principal(request), filters)
            return render(
                request,
                "clients/staff_list.html",
                {
                    **page,
                    **await services.list_choices(),
                    "f": filters,
                    "stages": STAGES,
                    "columns": COLUMNS,
                    "sorts": SORTS,
                    "views": await saved_views.views_for(principal(request)),
                    "view_errors": exc.errors,
                    "view_name": data.get("name", ""),
                },
                status_code=422,
            )
        return redirect(request, "/staff/clients?" + ClientFilters.parse(parse_qs(query)).query())

    @post("/views/{view_id:int}/delete")
    async def delete_view(self, request: HTMXRequest, view_id: int) -> Response:
        await saved_views.delete_view(principal(request), view_id, actor_of(request))
        return redirect(request, "/staff/clients")

    @get("/{client_id:int}")
    async def detail(self, request: Request, client_id: int) -> Template:
        p = principal(request)
        panel = await lifecycle.stage_panel_for(p, client_id)
        msgs = await services.messages_for(p, client_id)
        referred = await attribution.attribution_of(p, client_id)
        return Template(
            "clients/staff_detail.html",
            context={**panel, "messages": msgs, "errors": {}, "values": {}, "attribution": referred},
        )

    @get("/{client_id:int}/stage")
    async def stage_panel(self, request: Request, client_id: int) -> Template:
        p = principal(request)
        panel = await lifecycle.stage_panel_for(p, client_id)
        msgs = [] if is_fragment_request(request) else await services.messages_for(p, client_id)
        return render(
            request,
            "clients/staff_detail.html",
            {**panel, "messages": msgs, "errors": {}, "values": {}},
            partial="clients/_stage_panel.html",
        )

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
            panel = await lifecycle.stage_panel_for(p, client_id)
            msgs = [] if is_fragment_request(request) else await services.messages_for(p, client_id)
            return render(
                request,
                "clients/staff_detail.html",
                {
                    **panel,
                    "stage_errors": exc.errors,
                    "stage_values": data,
                    "messages": msgs,
                    "errors": {},
                    "values": {},
                },
                partial="clients/_stage_panel.html",
                status_code=422,
            )
        if request.htmx:
            panel = await lifecycle.stage_panel_for(p, client_id)
            return render(
                request,
                "clients/staff_detail.html",
                {**panel, "stage_moved": True, "messages": [], "errors": {}, "values": {}},
                partial="clients/_stage_panel.html",
            )
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
            panel = await lifecycle.stage_panel_for(p, client_id)
            msgs = await services.messages_for(p, client_id)
            return render(
                request,
                "clients/staff_detail.html",
                {**panel, "messages": msgs, "errors": exc.errors, "values": data},
                partial="clients/_message_panel.html",
                status_code=422,
            )
        if request.htmx:
            client = await services.get_client_for(p, client_id)
            msgs = await services.messages_for(p, client_id)
            return render(
                request,
                "clients/staff_detail.html",
                {"client": client, "messages": msgs, "errors": {}, "values": {}, "sent": True},
                partial="clients/_message_panel.html",
            )
        return redirect(request, f"/staff/clients/{client_id}")
