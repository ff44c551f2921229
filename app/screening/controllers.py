"""Staff › KYC › Sanctions screening: the open cases (decide them), the loaded lists (upload one),
and the re-screening progress. Compliance and administrators only (the KYC section's guard, and
each service checks again)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.response import Template

import app.screening.live  # noqa: F401  (registers the screening page's live renderers)
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, is_fragment_request, principal, redirect, render
from app.screening import lists, runs, services
from app.staff.navigation import section_guard

MAX_UPLOAD = 64 * 1024 * 1024  # the largest official file is ~25 MB; bigger: `fxcrm screening load`
PAGE = "/staff/kyc/screening"


async def _cases_context(request: Request, client_id: int | None = None, **extra: Any) -> dict[str, Any]:
    p = principal(request)
    context: dict[str, Any] = {
        "cases": await services.open_cases_for(p, client_id=client_id),
        "client_filter": client_id,
        "run": await runs.latest(),
        "case_errors": {},
        "case_values": {},
        "decisions": list(services.DECISIONS.items()),
        "threshold": services.threshold(),
    }
    if not is_fragment_request(request):
        context["active_lists"] = await lists.active_lists()
        context["recent"] = await services.recent_decisions_for(p)
    return {**context, **extra}


def _case_context(
    case: dict[str, Any], errors: dict[str, str] | None = None, values: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "case": case,
        "errors": errors or {},
        "values": values or {},
        "decisions": list(services.DECISIONS.items()),
    }


def _client_param(request: Request) -> int | None:
    raw = request.query_params.get("client", "")
    return int(raw) if raw.isdigit() and len(raw) < 12 else None


class ScreeningConsole(Controller):
    path = "/kyc/screening"
    guards = [section_guard("kyc")]

    @get("/")
    async def cases(self, request: Request) -> Template:
        context = await _cases_context(request, _client_param(request))
        return render(request, "screening/cases.html", context, partial="screening/_cases.html")

    @post("/cases/{case_id:int}/decide")
    async def decide(self, request: Request, case_id: int) -> Response:
        p = principal(request)
        data = await form_data(request)
        try:
            case = await services.decide(
                p, case_id, data.get("decision", ""), data.get("reason", ""), actor_of(request)
            )
        except FormErrors as exc:
            if is_fragment_request(request):
                case = await services.case_for(p, case_id)
                return Template(
                    "screening/_case.html", context=_case_context(case, exc.errors, data), status_code=422
                )
            context = await _cases_context(
                request, case_errors={case_id: exc.errors}, case_values={case_id: data}
            )
            return Template("screening/cases.html", context=context, status_code=422)
        if is_fragment_request(request):
            return Template("screening/_case.html", context=_case_context(case))
        return redirect(request, PAGE)

    @get("/progress")
    async def progress(self, request: Request) -> Template:
        """The progress bar alone (htmx polls it when the live channel is down); a browser gets the page."""
        if is_fragment_request(request):
            return Template("screening/_progress.html", context={"run": await runs.latest()})
        return Template("screening/cases.html", context=await _cases_context(request))

    @get("/lists")
    async def lists_page(self, request: Request) -> Template:
        context = {**await lists.lists_for(principal(request)), "errors": {}, "values": {}}
        return render(request, "screening/lists.html", context, partial="screening/_lists.html")

    @post("/lists", request_max_body_size=MAX_UPLOAD + 256 * 1024)
    async def upload(self, request: Request) -> Response:
        p = principal(request)
        form = await request.form()
        file = form.get("file")
        values = {"format": str(form.get("format") or "")}
        try:
            if not isinstance(file, UploadFile) or not file.filename:
                raise FormErrors({"file": "Choose a list file to upload."})
            data = await file.read()
            await lists.upload_list(p, file.filename, data, values["format"], actor_of(request))
        except FormErrors as exc:
            context = {**await lists.lists_for(p), "errors": exc.errors, "values": values}
            return render(
                request, "screening/lists.html", context, partial="screening/_lists.html", status_code=422
            )
        return redirect(request, f"{PAGE}/lists")
