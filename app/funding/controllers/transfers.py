"""Transfers: the portal's transfer page and its live result (where the sender may cancel a
transfer to another client while it awaits approval), and finance's approval queue of client →
client transfers with the list of transfers in flight or failed."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.auth.guards import requires_roles
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, is_fragment_request, principal, redirect, render
from app.funding import client_transfers, transfer_views
from app.staff.navigation import section_guard


async def _form(request: Request, *, status_code: int = 200, **extra: Any) -> Template:
    p = principal(request)
    values = {"idempotency_key": uuid.uuid4().hex, **extra.pop("values", {})}
    context = {
        **await transfer_views.form_options(p.id),
        "recent": await transfer_views.list_for_client(p, limit=10),
        "errors": {},
        "values": values,
        **extra,
    }
    return render(
        request,
        "funding/transfer.html",
        context,
        partial="funding/_transfer_form.html",
        status_code=status_code,
    )


class PortalTransfers(Controller):
    path = "/"

    @get("/transfer")
    async def new(self, request: Request) -> Template:
        preset = {k: request.query_params.get(k, "")[:40] for k in ("from", "to")}
        return await _form(request, values={k: v for k, v in preset.items() if v})

    @post("/transfer")
    async def create(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            t = await transfer_views.submit(principal(request), data, actor_of(request))
        except FormErrors as exc:
            # the same key again: a corrected form is still one transfer, never two
            return await _form(request, status_code=422, errors=exc.errors, values=data)
        return redirect(request, f"/portal/transfers/{t['id']}")

    @get("/transfers/{transfer_id:int}")
    async def show(self, request: Request, transfer_id: int) -> Template:
        return await _status(request, transfer_id)

    @post("/transfers/{transfer_id:int}/cancel")
    async def cancel(self, request: Request, transfer_id: int) -> Response:
        try:
            await client_transfers.cancel(principal(request), transfer_id, actor_of(request))
        except FormErrors as exc:
            return await _status(request, transfer_id, errors=exc.errors, status_code=422)
        if not is_fragment_request(request):
            return redirect(request, f"/portal/transfers/{transfer_id}")
        return await _status(
            request, transfer_id, done="Transfer cancelled: the amount is back in your wallet."
        )


async def _status(request: Request, transfer_id: int, *, status_code: int = 200, **extra: Any) -> Template:
    p = principal(request)
    t = await transfer_views.get_transfer_for(p, transfer_id)
    context = {"t": t, "may_cancel": client_transfers.may_cancel(p, t), "errors": {}, "done": "", **extra}
    return render(
        request,
        "funding/transfer_status.html",
        context,
        partial="funding/_transfer_status.html",
        status_code=status_code,
    )


class StaffTransfers(Controller):
    path = "/funding/transfers"
    guards = [section_guard("funding")]

    async def _page(self, request: Request, *, status_code: int = 200, **extra: Any) -> Template:
        context = {
            "queue": await transfer_views.staff_queue(),
            "open": await transfer_views.staff_open(),
            "may_decide": client_transfers.may_decide(principal(request)),
            "errors": {},
            "error_id": None,
            "done": "",
            **extra,
        }
        return render(
            request,
            "funding/transfer_staff.html",
            context,
            partial="funding/_transfer_staff.html",
            status_code=status_code,
        )

    @get("/")
    async def index(self, request: Request) -> Template:
        return await self._page(request)

    @post("/{transfer_id:int}/approve", guards=[requires_roles("finance")])
    async def approve(self, request: Request, transfer_id: int) -> Response:
        try:
            await client_transfers.approve(principal(request), transfer_id, actor_of(request))
        except FormErrors as exc:
            return await self._page(request, status_code=422, errors=exc.errors, error_id=transfer_id)
        if not is_fragment_request(request):
            return redirect(request, "/staff/funding/transfers")
        return await self._page(request, done=f"Transfer {transfer_id} approved.")

    @post("/{transfer_id:int}/reject", guards=[requires_roles("finance")])
    async def reject(self, request: Request, transfer_id: int) -> Response:
        data = await form_data(request)
        try:
            await client_transfers.reject(
                principal(request), transfer_id, data.get("reason", ""), actor_of(request)
            )
        except FormErrors as exc:
            return await self._page(request, status_code=422, errors=exc.errors, error_id=transfer_id)
        if not is_fragment_request(request):
            return redirect(request, "/staff/funding/transfers")
        return await self._page(request, done=f"Transfer {transfer_id} rejected.")


PORTAL: tuple[Any, ...] = (PortalTransfers,)  # controllers under /portal (the client portal's guard)
STAFF: tuple[Any, ...] = (StaffTransfers,)  # controllers under /staff
API: tuple[Any, ...] = ()  # handlers/controllers under /api (no session; own auth)
