"""The portal's "Your details" page: what an individual client declares for KYC."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.kyc import personal

PAGE, PARTIAL = "kyc/portal_details.html", "kyc/_portal_details.html"


class PortalDetails(Controller):
    path = "/details"

    @get("/")
    async def index(self, request: Request) -> Template:
        context = await personal.details_for(principal(request))
        return render(request, PAGE, {**context, "errors": {}, "saved": False}, partial=PARTIAL)

    @post("/")
    async def save(self, request: Request) -> Response | Template:
        p = principal(request)
        data = await form_data(request)
        try:
            await personal.save_details(p, data, actor_of(request))
        except FormErrors as exc:
            context = await personal.details_for(p)
            context["values"] = {
                **context["values"],
                **{k: v for k, v in data.items() if k in context["values"]},
            }
            return render(
                request,
                PAGE,
                {**context, "errors": exc.errors, "saved": False},
                partial=PARTIAL,
                status_code=422,
            )
        if request.headers.get("hx-request"):
            context = await personal.details_for(p)
            return render(request, PAGE, {**context, "errors": {}, "saved": True}, partial=PARTIAL)
        return redirect(request, "/portal/details")
