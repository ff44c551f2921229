"""Staff › Clients › Import: upload, map and preview, start, watch, download the rejected rows.

Admin and sales only (the people who bring leads in); a run is seen by whoever started it and by
admins, everyone else gets a 404.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.response import Stream, Template

from app.core.auth.guards import requires_roles
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.imports import reading, services

MAX_REQUEST = reading.MAX_BYTES + 256 * 1024  # the file and the multipart envelope around it


def _upload_options() -> dict[str, Any]:
    return {
        "encodings": list(reading.ENCODINGS.items()),
        "delimiters": [("", "Detect (comma, semicolon, tab or pipe)")]
        + [(d, name.capitalize()) for d, name in reading.DELIMITERS.items()],
        "max_mb": reading.MAX_BYTES // 1_048_576,
    }


async def _upload_context(request: Request, **extra: Any) -> dict[str, Any]:
    return {
        "runs": await services.runs_for(principal(request)),
        "values": {"encoding": "utf-8", "delimiter": ""},
        "errors": {},
        **_upload_options(),
        **extra,
    }


async def _run_context(
    request: Request, run_id: int, form: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    p = principal(request)
    run = await services.get_run_for(p, run_id)
    context: dict[str, Any] = {
        "run": services.progress(run),
        "errors": {},
        "may_start": run["created_by"] == p.id,
    }
    if run["status"] == "uploaded":
        context.update(await services.mapping_for(p, run, form))
        context["preview"] = await services.preview(p, run_id, context["values"])
    else:
        context["rejections"] = await services.rejections_for(p, run_id)
    return {**context, **extra}


class ClientImports(Controller):
    path = "/clients/import"
    guards = [requires_roles(*services.ROLES)]

    @get("/")
    async def index(self, request: Request) -> Template:
        return Template("imports/upload.html", context=await _upload_context(request))

    @post("/", request_max_body_size=MAX_REQUEST)
    async def upload(self, request: Request) -> Response:
        form = await request.form()
        file = form.get("file")
        values = {
            "encoding": str(form.get("encoding") or "utf-8"),
            "delimiter": str(form.get("delimiter") or ""),
        }
        try:
            if not isinstance(file, UploadFile) or not file.filename:
                raise FormErrors({"file": "Choose a CSV file to upload."})
            data = await file.read()
            run_id = await services.upload(
                principal(request),
                file.filename,
                data,
                actor_of(request),
                encoding=values["encoding"],
                delimiter=values["delimiter"],
            )
        except FormErrors as exc:
            context = await _upload_context(request, errors=exc.errors, values=values)
            return Template("imports/upload.html", context=context, status_code=422)
        return redirect(request, f"/staff/clients/import/{run_id}")

    @get("/{import_id:int}")
    async def run(self, request: Request, import_id: int) -> Template:
        return Template("imports/run.html", context=await _run_context(request, import_id))

    @post("/{import_id:int}/preview")
    async def preview(self, request: Request, import_id: int) -> Response:
        """The mapping form asks for this on every change (htmx); without JavaScript, its button."""
        data = await form_data(request)
        context = await _run_context(request, import_id, data)
        if "preview" not in context:  # started meanwhile (another tab): show the run
            return redirect(request, f"/staff/clients/import/{import_id}")
        return render(request, "imports/run.html", context, partial="imports/_preview.html")

    @post("/{import_id:int}/start")
    async def start(self, request: Request, import_id: int) -> Response:
        data = await form_data(request)
        try:
            await services.start(principal(request), import_id, data, actor_of(request))
        except FormErrors as exc:
            context = await _run_context(request, import_id, data, errors=exc.errors)
            return render(
                request, "imports/run.html", context, partial="imports/_mapping.html", status_code=422
            )
        return redirect(request, f"/staff/clients/import/{import_id}")

    @get("/{import_id:int}/progress")
    async def progress(self, request: Request, import_id: int) -> Template:
        context = await _run_context(request, import_id)
        return render(request, "imports/run.html", context, partial="imports/_progress.html")

    @get("/{import_id:int}/rejected.csv")
    async def rejected(self, request: Request, import_id: int) -> Stream:
        filename, chunks = await services.rejected_csv(principal(request), import_id)
        return Stream(
            chunks,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )
