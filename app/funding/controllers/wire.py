"""Bank wire: the client's deposit page with our bank details and the receipt upload (portal), and
finance's bank statement import, matching and receipts (console)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.response import Template

from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.core.live import Event, render_template, renderer
from app.core.web import actor_of, form_data, is_fragment_request, principal, redirect, render
from app.funding import reconcile_suspense, statements, wire
from app.funding.statement_csv import StatementError
from app.kyc.controllers.files import file_response
from app.kyc.levels import RightDenied
from app.settings import get_settings
from app.staff.navigation import section_guard

MAX_RECEIPT_REQUEST = get_settings().kyc.max_upload_bytes + 256 * 1024
MAX_STATEMENT_REQUEST = statements.MAX_FILE_BYTES + 256 * 1024


async def _file_from(form: Any) -> tuple[str, bytes]:
    for value in form.getall("file", []):
        if isinstance(value, UploadFile) and value.filename:
            return value.filename, await value.read()
    return "", b""


# --- portal ----------------------------------------------------------------------------------------


class WireDeposit(Controller):
    path = "/deposit/wire"

    async def _page(self, request: Request, *, status_code: int = 200, **extra: Any) -> Template:
        p = principal(request)
        methods = await wire.methods_for(p.id)
        values = extra.pop("values", None) or {}
        context = {
            "methods": methods,
            "values": {"method_id": str(methods[0]["id"]) if methods else "", **values},
            "errors": {},
            "idempotency_key": uuid.uuid4().hex,
            "deposits": await wire.wire_deposits_of(p.id),
            **extra,
        }
        return render(
            request,
            "funding/wire_deposit.html",
            context,
            partial="funding/_wire_form.html",
            status_code=status_code,
        )

    async def _detail(
        self, request: Request, deposit_id: int, *, status_code: int = 200, **extra: Any
    ) -> Template:
        row = await wire.get_wire_for(principal(request), deposit_id)
        context = {
            "d": row,
            "bank": await wire.instructions(row),
            "errors": {},
            "max_upload_bytes": get_settings().kyc.max_upload_bytes,
            **extra,
        }
        return render(
            request,
            "funding/wire_detail.html",
            context,
            partial="funding/_wire_detail.html",
            status_code=status_code,
        )

    @get("/")
    async def index(self, request: Request) -> Template:
        return await self._page(request)

    @post("/")
    async def create(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            row = await wire.start_wire(actor_of(request), principal(request), data)
        except FormErrors as exc:
            return await self._page(request, values=data, errors=exc.errors, status_code=422)
        except RightDenied as exc:
            return await self._page(request, values=data, errors={"__all__": exc.message}, status_code=422)
        return redirect(request, f"/portal/deposit/wire/{row['id']}")

    @get("/{deposit_id:int}")
    async def detail(self, request: Request, deposit_id: int) -> Template:
        return await self._detail(request, deposit_id, uploaded=request.query_params.get("uploaded") == "1")

    @post("/{deposit_id:int}/receipt", request_max_body_size=MAX_RECEIPT_REQUEST)
    async def upload(self, request: Request, deposit_id: int) -> Response:
        p = principal(request)
        await wire.get_wire_for(p, deposit_id)  # 404 before reading anything for someone else's
        form = await request.form()
        _, data = await _file_from(form)
        try:
            if not data:
                raise FormErrors({"file": "Take a photo of the receipt or choose the file."})
            await wire.upload_receipt(actor_of(request), p, deposit_id, data)
        except FormErrors as exc:
            return await self._detail(request, deposit_id, errors=exc.errors, status_code=422)
        if not is_fragment_request(request):
            return redirect(request, f"/portal/deposit/wire/{deposit_id}?uploaded=1")
        return await self._detail(request, deposit_id, uploaded=True)

    @get("/{deposit_id:int}/receipt")
    async def receipt(self, request: Request, deposit_id: int) -> Response:
        content, mime = await wire.receipt_for(principal(request), deposit_id, actor_of(request))
        return file_response(content, mime, deposit_id)


@renderer("funding.deposit")
async def wire_changed(viewer: Principal, event: Event) -> str | None:
    """The client's wire list and wire page follow the deposit (matched by finance: completed)."""
    if not getattr(viewer, "is_client", False):
        return None
    try:
        d = await wire.get_wire_for(viewer, int(event.ids.get("deposit_id", 0)))
    except (NotFound, TypeError, ValueError):
        return None
    return render_template("funding/_wire_item.html", d=d, oob=True) + render_template(
        "funding/_wire_state.html", d=d, oob=True
    )


# --- console ---------------------------------------------------------------------------------------


class Statements(Controller):
    path = "/funding/statements"
    guards = [section_guard("funding")]

    async def _page(self, request: Request, *, status_code: int = 200, **extra: Any) -> Template:
        status = request.query_params.get("status", "unmatched")
        import_id = request.query_params.get("import")
        context = {
            "status": status,
            "imports": await statements.recent_imports(),
            "lines": await statements.lines(
                status=status, import_id=int(import_id) if import_id and import_id.isdigit() else None
            ),
            "counts": await statements.counts(),
            "suspense": await reconcile_suspense.summary(),
            "result": None,
            "import_errors": [],
            "values": {},
            **extra,
        }
        return render(
            request,
            "funding/wire_statements.html",
            context,
            partial="funding/_wire_statements.html",
            status_code=status_code,
        )

    @get("/")
    async def index(self, request: Request) -> Template:
        return await self._page(request)

    @post("/import", request_max_body_size=MAX_STATEMENT_REQUEST)
    async def upload(self, request: Request) -> Template:
        form = await request.form()
        filename, data = await _file_from(form)
        currency = str(form.get("currency") or "")[:8]
        if not data:
            return await self._page(
                request, import_errors=["Choose the statement file (CSV)."], status_code=422
            )
        try:
            result = await statements.import_statement(
                actor_of(request), principal(request), filename, data, default_currency=currency
            )
        except StatementError as exc:
            return await self._page(
                request, import_errors=exc.errors, values={"currency": currency}, status_code=422
            )
        return await self._page(request, result=result)

    async def _line(
        self, request: Request, line_id: int, *, status_code: int = 200, **extra: Any
    ) -> Template:
        line = await statements.get_line(principal(request), line_id)
        search = request.query_params.get("q", "")
        context = {
            "line": line,
            "candidates": await statements.open_wire_deposits(search),
            "q": search,
            "errors": {},
            "values": {},
            **extra,
        }
        return render(
            request,
            "funding/wire_line.html",
            context,
            partial="funding/_wire_line.html",
            status_code=status_code,
        )

    @get("/lines/{line_id:int}")
    async def line(self, request: Request, line_id: int) -> Template:
        return await self._line(request, line_id, done=request.query_params.get("done", ""))

    @post("/lines/{line_id:int}/match")
    async def match(self, request: Request, line_id: int) -> Response:
        data = await form_data(request)
        try:
            deposit_id = int(data.get("deposit_id", ""))
        except ValueError:
            return await self._line(
                request, line_id, errors={"deposit_id": "Choose a deposit."}, values=data, status_code=422
            )
        try:
            await statements.match_line(
                actor_of(request), principal(request), line_id, deposit_id, data.get("note", "")
            )
        except FormErrors as exc:
            return await self._line(request, line_id, errors=exc.errors, values=data, status_code=422)
        return redirect(request, f"/staff/funding/statements/lines/{line_id}?done=matched")

    @post("/lines/{line_id:int}/ignore")
    async def ignore(self, request: Request, line_id: int) -> Response:
        data = await form_data(request)
        try:
            await statements.ignore_line(
                actor_of(request), principal(request), line_id, data.get("reason", "")
            )
        except FormErrors as exc:
            return await self._line(request, line_id, errors=exc.errors, values=data, status_code=422)
        return redirect(request, f"/staff/funding/statements/lines/{line_id}?done=ignored")


class WireReceipts(Controller):
    path = "/funding/wire"
    guards = [section_guard("funding")]

    @get("/")
    async def index(self, request: Request) -> Template:
        """Wire deposits waiting for their money, with the client's receipt when there is one."""
        q = request.query_params.get("q", "")
        context = {"deposits": await statements.open_wire_deposits(q, limit=200), "q": q}
        return render(request, "funding/wire_pending.html", context, partial="funding/_wire_pending.html")

    @get("/{deposit_id:int}/receipt")
    async def receipt(self, request: Request, deposit_id: int) -> Response:
        content, mime = await wire.receipt_for(principal(request), deposit_id, actor_of(request))
        return file_response(content, mime, deposit_id)


PORTAL: tuple[Any, ...] = (WireDeposit,)
STAFF: tuple[Any, ...] = (Statements, WireReceipts)
API: tuple[Any, ...] = ()
