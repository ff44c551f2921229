from __future__ import annotations

from litestar import Controller, Request, get
from litestar.response import Template

from app.core import audit_query
from app.core.web import render
from app.staff.navigation import section_guard


class AuditLog(Controller):
    """The audit trail, filterable (admin and compliance)."""

    path = "/audit"
    guards = [section_guard("audit")]

    @get("/")
    async def index(self, request: Request) -> Template:
        filters = audit_query.AuditFilters.from_query(request.query_params)
        page = await audit_query.search(filters)
        return render(
            request, "staff/audit.html", {"page": page, "filters": filters}, partial="staff/_audit_rows.html"
        )
