"""KYC in the staff console: the review queue, the review page with its decisions, and the KYC
panel of the client page."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.auth.principal import Principal
from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.kyc import dossier, queue, review
from app.staff.navigation import section_guard


async def _review_page(
    request: Request, p: Principal, document_id: int, *, status_code: int = 200, **extra: Any
) -> Template:
    context: dict[str, Any] = {
        **await dossier.review_page_for(p, document_id),
        "claim_errors": {},
        "approve_errors": {},
        "approve_values": {},
        "decline_errors": {},
        "decline_values": {},
        **extra,
    }
    return render(
        request, "kyc/staff_review.html", context, partial="kyc/_staff_review.html", status_code=status_code
    )


def _page_of(document_id: int) -> str:
    return f"/staff/kyc/documents/{document_id}"


class KycReview(Controller):
    path = "/kyc"
    guards = [section_guard("kyc")]

    @get("/")
    async def queue(self, request: Request) -> Template:
        params = {k: request.query_params.get(k, "") for k in ("level", "country", "category", "risk")}
        context = await queue.queue_for(principal(request), queue.QueueFilters.parse(params))
        return render(request, "kyc/staff_queue.html", context, partial="kyc/_staff_queue.html")

    @get("/documents/{document_id:int}")
    async def document(self, request: Request, document_id: int) -> Template:
        return await _review_page(request, principal(request), document_id)

    @post("/documents/{document_id:int}/claim")
    async def claim(self, request: Request, document_id: int) -> Response:
        p = principal(request)
        try:
            await review.claim(p, document_id, actor_of(request))
        except FormErrors as exc:
            return await _review_page(request, p, document_id, status_code=422, claim_errors=exc.errors)
        return redirect(request, _page_of(document_id))

    @post("/documents/{document_id:int}/release")
    async def release(self, request: Request, document_id: int) -> Response:
        p = principal(request)
        try:
            await review.release(p, document_id, actor_of(request))
        except FormErrors as exc:
            return await _review_page(request, p, document_id, status_code=422, claim_errors=exc.errors)
        return redirect(request, "/staff/kyc")

    @post("/documents/{document_id:int}/approve")
    async def approve(self, request: Request, document_id: int) -> Response:
        p = principal(request)
        data = await form_data(request)
        try:
            await review.approve(
                p,
                document_id,
                data.get("doc_number", ""),
                data.get("issuing_country", ""),
                data.get("expires_on", ""),
                actor_of(request),
            )
        except FormErrors as exc:
            errors = {k: v for k, v in exc.errors.items() if k != "__all__"}
            return await _review_page(
                request,
                p,
                document_id,
                status_code=422,
                approve_errors=errors,
                approve_values=data,
                claim_errors={"__all__": exc.errors["__all__"]} if "__all__" in exc.errors else {},
            )
        return redirect(request, _page_of(document_id))

    @post("/documents/{document_id:int}/reject")
    async def reject(self, request: Request, document_id: int) -> Response:
        return await self._decline(request, document_id, review.reject)

    @post("/documents/{document_id:int}/reupload")
    async def reupload(self, request: Request, document_id: int) -> Response:
        return await self._decline(request, document_id, review.request_reupload)

    async def _decline(self, request: Request, document_id: int, decide: Any) -> Response:
        p = principal(request)
        data = await form_data(request)
        try:
            await decide(p, document_id, data.get("reason_code", ""), data.get("note", ""), actor_of(request))
        except FormErrors as exc:
            errors = {k: v for k, v in exc.errors.items() if k != "__all__"}
            return await _review_page(
                request,
                p,
                document_id,
                status_code=422,
                decline_errors=errors,
                decline_values=data,
                claim_errors={"__all__": exc.errors["__all__"]} if "__all__" in exc.errors else {},
            )
        return redirect(request, _page_of(document_id))


class ClientKyc(Controller):
    """The KYC panel of the client page: whoever may see the client sees their level and documents."""

    path = "/clients"
    guards = [section_guard("clients")]

    @get("/{client_id:int}/kyc")
    async def panel(self, request: Request, client_id: int) -> Template:
        context = await dossier.client_panel_for(principal(request), client_id)
        return render(request, "kyc/staff_client.html", context, partial="kyc/_staff_client_panel.html")
