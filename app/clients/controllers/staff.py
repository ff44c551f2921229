"""Clients in the staff console (the full workbench arrives with the clients issue)."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.clients import lifecycle, services
from app.clients.tables import STAGES
from app.core.auth.guards import requires_roles
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, is_fragment_request, principal, redirect, render
from app.partners import attribution
from app.staff.navigation import section_guard


class StaffClients(Controller):
    path = "/clients"
    guards = [section_guard("clients")]

    @get("/")
    async def index(self, request: Request, q: str = "", stage: str = "") -> Template:
        rows = await services.list_clients_for(principal(request), q=q, stage=stage)
        return render(
            request,
            "clients/staff_list.html",
            {"clients": rows, "q": q, "stage": stage, "stages": STAGES},
            partial="clients/_staff_rows.html",
        )

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
