"""Staff › Accounts › Sync: each trading server's sync health for ops, and "sync now".

Whoever enters the accounts section sees it (dealing, finance, administrators); starting a sync is
for dealing and administrators (the service checks again). The page polls its partial every 5 s.
"""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.auth.guards import requires_roles
from app.core.web import actor_of, is_fragment_request, principal, redirect, render
from app.staff.navigation import section_guard
from app.trading import sync_ops

PAGE = "/staff/accounts/sync"


class SyncOps(Controller):
    path = "/accounts/sync"
    guards = [section_guard("accounts")]

    @get("/")
    async def index(self, request: Request) -> Template:
        context = {**await sync_ops.overview(principal(request)), "message": ""}
        return render(request, "trading/staff_sync.html", context, partial="trading/_staff_sync.html")

    @post("/{server_id:int}/now", guards=[requires_roles(*sync_ops.SYNC_ROLES)])
    async def sync_now(self, request: Request, server_id: int) -> Response:
        p = principal(request)
        message = await sync_ops.request_sync(p, server_id, actor_of(request))
        if is_fragment_request(request):
            context = {**await sync_ops.overview(p), "message": message}
            return Template("trading/_staff_sync.html", context=context)
        return redirect(request, PAGE)
