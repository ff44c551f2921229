"""Clients in the staff console (the full workbench arrives with the clients issue)."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from app.clients import services
from app.clients.tables import STAGES
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
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
        client = await services.get_client_for(p, client_id)
        msgs = await services.messages_for(p, client_id)
        return Template(
            "clients/staff_detail.html",
            context={"client": client, "messages": msgs, "errors": {}, "values": {}},
        )

    @post("/{client_id:int}/messages")
    async def send_message(self, request: HTMXRequest, client_id: int) -> Response:
        p = principal(request)
        data = await form_data(request)
        try:
            await services.send_message(
                p, client_id, data.get("subject", ""), data.get("body", ""), actor_of(request)
            )
        except FormErrors as exc:
            client = await services.get_client_for(p, client_id)
            msgs = await services.messages_for(p, client_id)
            return render(
                request,
                "clients/staff_detail.html",
                {"client": client, "messages": msgs, "errors": exc.errors, "values": data},
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
