"""Funding › Payment methods: finance configures the ways to deposit."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.auth.guards import allowed, requires_roles
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.funding import payment_methods
from app.staff.navigation import section_guard

NEW_METHOD = {"kind": "card", "kyc_level": "0", "sort_order": "0", "active": True}


class PaymentMethods(Controller):
    path = "/funding"
    guards = [section_guard("funding")]

    async def _form(self, request: Request, *, status_code: int = 200, **context: Any) -> Template:
        levels = await payment_methods.level_names()
        ctx = {
            "kinds": list(payment_methods.KINDS.items()),
            "level_choices": [(str(rank), f"{rank} · {name}") for rank, name in levels.items()]
            or [("0", "0")],
            "errors": {},
            "method": None,
            **context,
        }
        return render(
            request,
            "funding/staff_method_form.html",
            ctx,
            partial="funding/_staff_method_form.html",
            status_code=status_code,
        )

    @get("/")
    async def index(self, request: Request) -> Template:
        context = {
            "methods": await payment_methods.list_methods(),
            "levels": await payment_methods.level_names(),
            "kinds": payment_methods.KINDS,
            "may_edit": allowed(principal(request), "finance"),
        }
        return render(
            request, "funding/staff_methods.html", context, partial="funding/_staff_methods_table.html"
        )

    @get("/methods/new", guards=[requires_roles("finance")])
    async def new(self, request: Request) -> Template:
        return await self._form(request, values=NEW_METHOD)

    @post("/methods/new", guards=[requires_roles("finance")])
    async def create(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            method_id = await payment_methods.create(principal(request), data, actor_of(request))
        except FormErrors as exc:
            return await self._form(request, values=data, errors=exc.errors, status_code=422)
        return redirect(request, f"/staff/funding/methods/{method_id}?saved=1")

    @get("/methods/{method_id:int}", guards=[requires_roles("finance")])
    async def edit(self, request: Request, method_id: int) -> Template:
        method = await payment_methods.get_method(method_id)
        return await self._form(
            request,
            method=method,
            values=payment_methods.form_values(method),
            saved=request.query_params.get("saved") == "1",
        )

    @post("/methods/{method_id:int}", guards=[requires_roles("finance")])
    async def update(self, request: Request, method_id: int) -> Response:
        method = await payment_methods.get_method(method_id)
        data = await form_data(request)
        try:
            await payment_methods.update(principal(request), method_id, data, actor_of(request))
        except FormErrors as exc:
            return await self._form(request, method=method, values=data, errors=exc.errors, status_code=422)
        return redirect(request, f"/staff/funding/methods/{method_id}?saved=1")
