from __future__ import annotations

from litestar import Controller, Request, get
from litestar.response import Template

from app.core import jobs, mail
from app.core.errors import NotFound
from app.core.web import render
from app.staff.navigation import section_guard


class SystemPages(Controller):
    """Settings › Background jobs and Outbox (admins)."""

    path = "/settings"
    guards = [section_guard("settings")]

    @get("/jobs")
    async def jobs(self, request: Request) -> Template:
        return render(
            request, "staff/jobs.html", {"health": await jobs.health()}, partial="staff/_jobs_health.html"
        )

    @get("/outbox")
    async def outbox(self, request: Request) -> Template:
        return render(
            request, "staff/outbox.html", {"emails": await mail.recent()}, partial="staff/_outbox_rows.html"
        )

    @get("/outbox/{email_id:int}")
    async def email(self, email_id: int) -> Template:
        row = await mail.get(email_id)
        if row is None:
            raise NotFound("e-mail")
        return Template("staff/email.html", context={"email": row})
