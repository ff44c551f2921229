"""Staff › KYC › a stored document file, for compliance and administrators (each view audited).

Everyone else on the staff gets a 404, exactly as for a file that does not exist: the section's
role guard would answer 403 and so confirm the file is there. The response is made so a browser
can only show the file, never run it: its stored type (decided by content at upload), no sniffing,
no caching, and a sandbox that gives an HTML or SVG smuggled past us nothing to act with.
"""

from __future__ import annotations

from litestar import Controller, Request, Response, get

from app.core.web import actor_of, principal
from app.kyc import documents

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "application/pdf": "pdf"}


def file_response(content: bytes, mime: str, file_id: int) -> Response:
    """A decrypted document as the browser should get it, from either portal."""
    ext = EXTENSIONS.get(mime, "bin")
    return Response(
        content=content,
        media_type=mime,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'inline; filename="document-{file_id}.{ext}"',
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )


class KycFiles(Controller):
    path = "/kyc/files"

    @get("/{file_id:int}")
    async def file(self, request: Request, file_id: int) -> Response:
        content, mime = await documents.file_for(principal(request), file_id, actor_of(request))
        return file_response(content, mime, file_id)
