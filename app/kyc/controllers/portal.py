"""Portal › Documents: the client's checklist as cards, one upload per document side, and the
client's own files back.

Each side is its own request (a failed back never costs the front). An htmx upload is answered
with the whole card, re-rendered from the database (the header `HX-Retarget` is read when the
answer arrives, so it finds the card even if a live update replaced it meanwhile); a form post
without JavaScript is redirected back to the page, or gets the page with the error.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.response import Template

from app.core.errors import FormErrors
from app.core.web import actor_of, is_fragment_request, principal, redirect, render
from app.kyc import documents, progress
from app.kyc.controllers.files import file_response
from app.settings import get_settings

# The app refuses bodies over 1 MB; an upload may be as large as the KYC limit plus the multipart
# envelope (two file fields, the token, type and side). Read when the controller is first imported,
# which create_app does after installing its settings.
MAX_REQUEST = get_settings().kyc.max_upload_bytes + 256 * 1024
PAGE = "kyc/portal_documents.html"
PARTIAL = "kyc/_portal_documents.html"


async def _upload_from(form: Any) -> bytes:
    """The chosen file: the camera input or the file picker, whichever was used."""
    for value in form.getall("file", []):
        if isinstance(value, UploadFile) and value.filename:
            data = await value.read()
            if data:
                return data
            raise FormErrors({"file": "The file is empty. Take the photo again or choose another file."})
    raise FormErrors({"file": "Take a photo or choose a file to upload."})


def _first_error(errors: dict[str, str]) -> str:
    return errors.get("file") or errors.get("side") or errors.get("doc_type") or next(iter(errors.values()))


class PortalDocuments(Controller):
    path = "/documents"

    @get("/")
    async def index(self, request: Request) -> Template:
        context = await progress.page_for(principal(request))
        return render(request, PAGE, context, partial=PARTIAL)

    @post("/upload", request_max_body_size=MAX_REQUEST)
    async def upload(self, request: Request) -> Response:
        form = await request.form()
        type_code = str(form.get("type") or "")[:40]
        side = str(form.get("side") or "")[:8]
        p = principal(request)
        status_code = 200
        error = None
        try:
            data = await _upload_from(form)
            await documents.upload_side(p, type_code, side, data, actor_of(request))
        except FormErrors as exc:
            status_code = 422
            error = progress.UploadError(type_code, side, _first_error(exc.errors))
        if error is None and not is_fragment_request(request):
            return redirect(request, "/portal/documents")
        context = await progress.page_for(p, chosen=type_code, error=error)
        if not is_fragment_request(request):
            return Template(PAGE, context=context, status_code=status_code)
        card = next((c for c in context["cards"] if c.error or (type_code and c.chosen == type_code)), None)
        if card is None:  # nothing to re-render in place: the whole list
            return Template(
                PARTIAL,
                context=context,
                status_code=status_code,
                headers={"HX-Retarget": "#kyc-documents", "HX-Reswap": "outerHTML"},
            )
        return Template(
            "kyc/_portal_card_answer.html",
            context={**context, "card": card},
            status_code=status_code,
            headers={"HX-Retarget": f"#card-{card.category}", "HX-Reswap": "outerHTML"},
        )

    @get("/files/{file_id:int}")
    async def file(self, request: Request, file_id: int) -> Response:
        content, mime = await documents.file_for(principal(request), file_id, actor_of(request))
        return file_response(content, mime, file_id)
