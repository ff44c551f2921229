"""Accounts › Servers (administrators) and Accounts › Account types (dealing, administrators)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.auth.guards import requires_roles
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.trading import account_types, servers
from app.trading.tables import PLATFORMS

NEW_SERVER = {
    "platform": "mt5",
    "use_tls": True,
    "verify_tls": True,
    "timeout_seconds": 10,
    "pool_size": 2,
    "active": True,
}
NEW_TYPE = {"active": True, "leverages": "30,100,200", "default_leverage": "100"}


class TradingServers(Controller):
    path = "/accounts/servers"
    guards = [requires_roles()]  # administrators only

    def _form(self, *, status_code: int = 200, **context: Any) -> Template:
        ctx = {"platforms": PLATFORMS, "errors": {}, "server": None, **context}
        return Template("trading/staff_server_form.html", context=ctx, status_code=status_code)

    @get("/")
    async def index(self, request: Request) -> Template:
        context = {"servers": await servers.list_servers()}
        return render(
            request, "trading/staff_servers.html", context, partial="trading/_staff_servers_table.html"
        )

    @get("/new")
    async def new(self) -> Template:
        return self._form(values=NEW_SERVER)

    @post("/new")
    async def create(self, request: Request) -> Response:
        form = servers.ServerForm.from_form(await form_data(request))
        try:
            server_id = await servers.create_server(principal(request), form, actor_of(request))
        except FormErrors as exc:
            return self._form(values=form.values(), errors=exc.errors, status_code=422)
        return redirect(request, f"/staff/accounts/servers/{server_id}?saved=1")

    @get("/{server_id:int}")
    async def edit(self, request: Request, server_id: int) -> Template:
        server = await servers.get_server(server_id)
        return self._form(server=server, values=server, saved=request.query_params.get("saved") == "1")

    @post("/{server_id:int}")
    async def update(self, request: Request, server_id: int) -> Response:
        server = await servers.get_server(server_id)
        form = servers.ServerForm.from_form(await form_data(request))
        try:
            await servers.update_server(principal(request), server_id, form, actor_of(request))
        except FormErrors as exc:
            return self._form(server=server, values=form.values(), errors=exc.errors, status_code=422)
        return redirect(request, f"/staff/accounts/servers/{server_id}?saved=1")

    @post("/{server_id:int}/test")
    async def test(self, request: Request, server_id: int) -> Template:
        check = await servers.check_connection(principal(request), server_id, actor_of(request))
        server = await servers.get_server(server_id)
        return render(
            request,
            "trading/staff_server_form.html",
            {"platforms": PLATFORMS, "errors": {}, "server": server, "values": server, "check": check},
            partial="trading/_server_check.html",
        )


class AccountTypes(Controller):
    path = "/accounts/types"
    guards = [requires_roles("dealing")]

    async def _form(self, *, status_code: int = 200, **context: Any) -> Template:
        ctx = {
            "server_choices": await servers.server_choices(active_only=False),
            "errors": {},
            "account_type": None,
            **context,
        }
        return Template("trading/staff_type_form.html", context=ctx, status_code=status_code)

    @get("/")
    async def index(self, request: Request) -> Template:
        return render(request, "trading/staff_types.html", {"types": await account_types.list_types()})

    @get("/new")
    async def new(self) -> Template:
        return await self._form(values=NEW_TYPE)

    @post("/new")
    async def create(self, request: Request) -> Response:
        form = account_types.TypeForm.from_form(await form_data(request))
        try:
            type_id, note = await account_types.create_type(principal(request), form, actor_of(request))
        except FormErrors as exc:
            return await self._form(values=form.values(), errors=exc.errors, status_code=422)
        return redirect(
            request, f"/staff/accounts/types/{type_id}?saved=1" + ("&unchecked=1" if note else "")
        )

    @get("/{type_id:int}")
    async def edit(self, request: Request, type_id: int) -> Template:
        row = await account_types.get_type(type_id)
        values = {**row, "server": str(row["server"])}
        flags = {k: request.query_params.get(k) == "1" for k in ("saved", "unchecked")}
        return await self._form(account_type=row, values=values, **flags)

    @post("/{type_id:int}")
    async def update(self, request: Request, type_id: int) -> Response:
        row = await account_types.get_type(type_id)
        form = account_types.TypeForm.from_form(await form_data(request))
        try:
            note = await account_types.update_type(principal(request), type_id, form, actor_of(request))
        except FormErrors as exc:
            return await self._form(
                account_type=row, values=form.values(), errors=exc.errors, status_code=422
            )
        return redirect(
            request, f"/staff/accounts/types/{type_id}?saved=1" + ("&unchecked=1" if note else "")
        )
