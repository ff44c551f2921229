"""Funding › Reconciliation (finance): the stored runs, one run's differences, and "run now".

The runs list follows a run in progress (or one queued for the worker) by asking for itself every
two seconds until it has ended; the rules live in `app.funding.reconcile_runs`.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.auth.guards import requires_roles
from app.core.web import actor_of, is_fragment_request, principal, redirect, render
from app.funding import reconcile_runs

BASE = "/staff/funding/reconciliation"


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) <= 9 else None


class Reconciliation(Controller):
    path = "/funding/reconciliation"
    guards = [requires_roles("finance")]

    async def _runs(
        self, request: Request, page: int = 1, *, after: int | None = None, **extra: Any
    ) -> Template:
        """`after`: a run was queued when the newest was this one; follow the list until a newer shows."""
        context = await reconcile_runs.list_runs(principal(request), page)
        newest = context["runs"][0]["id"] if context["runs"] else 0
        context["waiting_after"] = after if after is not None and page == 1 and newest <= after else None
        context.update(extra)
        return render(request, "funding/reconcile.html", context, partial="funding/_reconcile_runs.html")

    @get("/")
    async def index(self, request: Request) -> Template:
        return await self._runs(
            request, max(1, _int_param(request, "page") or 1), after=_int_param(request, "after")
        )

    @get("/{run_id:int}")
    async def run(self, request: Request, run_id: int) -> Template:
        check = request.query_params.get("check", "")[:64]
        context = await reconcile_runs.get_run(principal(request), run_id, check=check)
        return render(request, "funding/reconcile_run.html", context, partial="funding/_reconcile_run.html")

    @post("/run")
    async def run_now(self, request: Request) -> Response:
        started = await reconcile_runs.run_now(principal(request), actor_of(request))
        if not is_fragment_request(request):
            if started.state == "done" and started.run_id is not None:
                return redirect(request, f"{BASE}/{started.run_id}")
            return redirect(request, BASE)
        return await self._runs(request, 1, after=started.newest_before, started=started)


PORTAL: tuple[Any, ...] = ()
STAFF: tuple[Any, ...] = (Reconciliation,)
API: tuple[Any, ...] = ()
