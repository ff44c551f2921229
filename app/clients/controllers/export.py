"""The client list as a file: the same query string as the list, every row of it, audited."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.response import Stream

from app.clients import export
from app.clients.filters import ClientFilters
from app.core.web import actor_of, principal
from app.staff.navigation import section_guard


class ClientExport(Controller):
    path = "/clients"
    guards = [section_guard("clients")]

    async def _export(self, request: Request, fmt: str) -> Stream:
        params = request.query_params
        filters = ClientFilters.parse({k: params.getall(k) for k in set(params.keys())})
        result = await export.export_clients(principal(request), filters, fmt, actor_of(request))
        return Stream(
            result.chunks,
            media_type=result.media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{result.filename}"',
                "Cache-Control": "no-store",
                "X-Export-Rows": str(result.rows),
            },
        )

    @get("/export.csv")
    async def csv(self, request: Request) -> Stream:
        return await self._export(request, "csv")

    @get("/export.xlsx")
    async def xlsx(self, request: Request) -> Stream:
        return await self._export(request, "xlsx")
