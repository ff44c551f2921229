"""What a KYC upload may be, decided by its content alone.

Never by the file name or the content type the browser sends: those are the client's claims.
A file is accepted when its first bytes say JPEG, PNG, WebP or PDF *and* it really decodes as
that. Images are then re-encoded from their pixels (EXIF and GPS, comments, ICC profiles,
trailing bytes and anything smuggled after the image end are gone); a PDF is refused if it carries
JavaScript, launch actions, embedded files, forms with XFA, or is damaged or encrypted, and is
then rewritten page by page, which drops the document catalogue's extras and the annotations.

Every refusal is a `RejectedUpload` with a message written for the client who sent the file.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError, PyPdfError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject

KINDS = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "pdf": "application/pdf"}
_PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}

MAX_PIXELS = 40_000_000  # a 40-megapixel phone photo; more is a decompression bomb, not a document
MIN_SIDE = 200  # smaller than this nobody can read a document on it
MAX_PDF_PAGES = 30
MAX_PDF_OBJECTS = 50_000

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a cut-off upload is refused, never half-decoded
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# Keys and action types that make a PDF do something when opened (or carry another file).
_PDF_FORBIDDEN_KEYS = {
    "/JavaScript",
    "/JS",
    "/EmbeddedFiles",
    "/EmbeddedFile",
    "/RichMedia",
    "/XFA",
    "/Launch",
}
_PDF_FORBIDDEN_ACTIONS = {
    "/JavaScript",
    "/Launch",
    "/ImportData",
    "/SubmitForm",
    "/GoToE",
    "/RichMediaExecute",
}
_EOF_TAIL = re.compile(rb"%%EOF\s*$")


class RejectedUpload(ValueError):
    """The file was refused; `message` says why, in words for the person who sent it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class CleanFile:
    kind: str  # jpeg | png | webp | pdf
    content: bytes  # what is stored: re-encoded image, rewritten PDF
    received_sha256: str  # of the bytes the client sent (for the audit trail)
    stored_sha256: str
    width: int = 0
    height: int = 0
    pages: int = 0

    @property
    def mime(self) -> str:
        return KINDS[self.kind]


def sniff(data: bytes) -> str | None:
    """The kind the magic bytes claim (only the four we accept), or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"%PDF-"):
        return "pdf"
    return None


def clean_upload(data: bytes, *, max_bytes: int) -> CleanFile:
    if not data:
        raise RejectedUpload("The file is empty. Take the photo again or choose another file.")
    if len(data) > max_bytes:
        raise RejectedUpload(
            f"The file is {len(data) / 1_048_576:.1f} MB; the limit is {max_bytes / 1_048_576:.0f} MB. "
            "A photo from your phone's camera is well under it."
        )
    kind = sniff(data)
    if kind is None:
        raise RejectedUpload(
            "This file is not a JPEG, PNG, WebP image or a PDF (whatever its name says). "
            "Upload a photo or a PDF scan of the document."
        )
    received = hashlib.sha256(data).hexdigest()
    if kind == "pdf":
        content, pages = _clean_pdf(data)
        return CleanFile(kind, content, received, hashlib.sha256(content).hexdigest(), pages=pages)
    content, width, height = _reencode(data, kind)
    return CleanFile(kind, content, received, hashlib.sha256(content).hexdigest(), width, height)


def _reencode(data: bytes, kind: str) -> tuple[bytes, int, int]:
    damaged = RejectedUpload(
        f"The image could not be read: it looks damaged or incomplete ({kind.upper()}). Upload it again."
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[kind]]) as img:
                if img.format != _PIL_FORMAT[kind]:
                    raise damaged
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise _too_big(width, height)
                img.seek(0)  # an animated PNG or WebP: its first frame only
                img.load()
                pixels = ImageOps.exif_transpose(img)  # keep the photo upright once EXIF is gone
    except RejectedUpload:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_big(0, 0) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise damaged from None
    if min(pixels.size) < MIN_SIDE:
        raise RejectedUpload(
            f"The image is only {pixels.size[0]}×{pixels.size[1]} pixels: too small to read the document. "
            f"Upload a photo at least {MIN_SIDE} pixels on each side."
        )
    out = io.BytesIO()
    if kind == "jpeg":
        pixels.convert("RGB").save(out, "JPEG", quality=90, optimize=True)
    elif kind == "png":
        mode = "RGBA" if pixels.mode in ("RGBA", "LA", "P", "PA") else "RGB"
        pixels.convert(mode).save(out, "PNG", optimize=True)
    else:
        mode = "RGBA" if pixels.mode in ("RGBA", "LA", "P", "PA") else "RGB"
        pixels.convert(mode).save(out, "WEBP", quality=90)
    return out.getvalue(), pixels.size[0], pixels.size[1]


def _too_big(width: int, height: int) -> RejectedUpload:
    size = f" ({width}×{height} pixels)" if width else ""
    return RejectedUpload(
        f"The image is too large to process{size}; the limit is {MAX_PIXELS // 1_000_000} megapixels."
    )


def _clean_pdf(data: bytes) -> tuple[bytes, int]:
    damaged = RejectedUpload(
        "The PDF is damaged or incomplete and cannot be opened. Export or scan it again."
    )
    tail = data[-2048:]
    if not _EOF_TAIL.search(tail):
        # Bytes after the last %%EOF: a cut-off file, or another file glued on (a polyglot).
        raise (
            damaged
            if b"%%EOF" not in data
            else RejectedUpload(
                "The PDF has unexpected data after its end. Export or scan the document again."
            )
        )
    try:
        reader = PdfReader(io.BytesIO(data), strict=True)
        if reader.is_encrypted:
            raise RejectedUpload("The PDF is password-protected. Upload a copy without a password.")
        _refuse_active_content(reader)
        pages = len(reader.pages)
        if pages == 0:
            raise damaged
        if pages > MAX_PDF_PAGES:
            raise RejectedUpload(f"The PDF has {pages} pages; upload at most {MAX_PDF_PAGES}.")
        writer = PdfWriter()
        for page in reader.pages:
            writer.add_page(page)
        writer.remove_annotations(subtypes=None)  # links, form widgets and their actions
        out = io.BytesIO()
        writer.write(out)
    except RejectedUpload:
        raise
    except (
        PdfReadError,
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RecursionError,
        OSError,
    ):
        raise damaged from None
    return out.getvalue(), pages


def _refuse_active_content(reader: PdfReader) -> None:
    """Walk every object reachable from the trailer; refuse scripts, launches and embedded files."""
    active = RejectedUpload(
        "The PDF contains scripts, embedded files or actions, which we cannot accept. "
        "Print it to a new PDF or upload a photo of the document instead."
    )
    seen: set[tuple[int, int]] = set()
    stack: list[object] = [reader.trailer]
    visited = 0
    while stack:
        obj = stack.pop()
        if isinstance(obj, IndirectObject):
            ref = (obj.idnum, obj.generation)
            if ref in seen:
                continue
            seen.add(ref)
            obj = obj.get_object()
        visited += 1
        if visited > MAX_PDF_OBJECTS:
            raise RejectedUpload("The PDF is too complex to check. Upload a simpler scan or a photo.")
        if isinstance(obj, DictionaryObject):  # streams are dictionaries too
            if _PDF_FORBIDDEN_KEYS & set(obj.keys()):
                raise active
            if obj.get("/S") in _PDF_FORBIDDEN_ACTIONS or obj.get("/Type") == NameObject("/EmbeddedFile"):
                raise active
            stack.extend(v for k, v in obj.items() if k != "/Parent")
        elif isinstance(obj, ArrayObject):
            stack.extend(obj)
