"""KYC uploads are judged by their content: the bad-file corpus of issue 4, and storage at rest.

Pure functions: no database, no server. The corpus is built here, byte by byte, so each case
says exactly what makes it bad.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib

import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter

from app.kyc.files import MAX_PIXELS, RejectedUpload, clean_upload, sniff
from app.kyc.storage import DocumentStore, StorageError, derive_key, new_key, parse_key

LIMIT = 5 * 1_048_576


def photo(
    fmt: str = "JPEG", size=(800, 500), *, exif_gps: bool = False, orientation: int | None = None
) -> bytes:
    img = Image.new("RGB", size, (200, 180, 150))
    for x in range(0, size[0], 40):  # some structure, so re-encoding has something to keep
        img.paste((20, 20, 20), (x, 0, x + 5, size[1]))
    out = io.BytesIO()
    kwargs = {}
    if exif_gps or orientation:
        exif = Image.Exif()
        if exif_gps:
            exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}  # GPS IFD
            exif[0x010F] = "SpyCam Inc."  # Make
        if orientation:
            exif[0x0112] = orientation
        kwargs["exif"] = exif
    img.save(out, fmt, **kwargs)
    return out.getvalue()


def pdf(*, js: bool = False, attachment: bool = False, pages: int = 1, password: str | None = None) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(595, 842)
    if js:
        writer.add_js("app.alert('hello');")
    if attachment:
        writer.add_attachment("payload.exe", b"MZ\x90\x00 not really")
    if password:
        writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def png_bomb(side: int) -> bytes:
    """A valid PNG header claiming side×side pixels, with a tiny compressed body of zeros."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    body = zlib.compress(row * min(side, 64), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


# --- accepted files -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,kind", [("JPEG", "jpeg"), ("PNG", "png"), ("WEBP", "webp")])
def test_it_accepts_each_image_kind_by_content_and_re_encodes_it(fmt, kind):
    data = photo(fmt)
    clean = clean_upload(data, max_bytes=LIMIT)
    assert clean.kind == kind and clean.mime == f"image/{kind}"
    assert (clean.width, clean.height) == (800, 500)
    assert sniff(clean.content) == kind
    with Image.open(io.BytesIO(clean.content)) as img:
        assert img.format == fmt and img.size == (800, 500)
    assert len(clean.received_sha256) == 64 and len(clean.stored_sha256) == 64


def test_it_strips_exif_and_gps_and_keeps_the_photo_upright():
    data = photo(exif_gps=True, orientation=6)  # "rotate 90° clockwise to display"
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get(0x010F) == "SpyCam Inc."
    clean = clean_upload(data, max_bytes=LIMIT)
    with Image.open(io.BytesIO(clean.content)) as img:
        assert len(img.getexif()) == 0 and "exif" not in img.info
        assert img.size == (500, 800)  # turned as the camera said, then the tag is gone
    assert b"SpyCam" not in clean.content


def test_it_accepts_a_clean_pdf_and_rewrites_it():
    clean = clean_upload(pdf(pages=2), max_bytes=LIMIT)
    assert clean.kind == "pdf" and clean.pages == 2
    assert len(PdfReader(io.BytesIO(clean.content)).pages) == 2


def test_a_file_with_something_glued_after_the_image_is_stored_without_it():
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("evil.html", "<script>alert(1)</script>")
    clean = clean_upload(photo() + zipped.getvalue(), max_bytes=LIMIT)  # a JPEG/ZIP polyglot
    assert b"evil.html" not in clean.content and b"<script>" not in clean.content


# --- the bad-file corpus ---------------------------------------------------------------------------


def gif_named_jpg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 300)).save(out, "GIF")
    return out.getvalue()


def bmp() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 300)).save(out, "BMP")
    return out.getvalue()


def pdf_with_zip_tail() -> bytes:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("x.txt", "payload" * 100)
    return pdf() + zipped.getvalue()


def pdf_with_hidden_js() -> bytes:
    """JavaScript reached through an annotation's action, not the catalogue's name tree."""
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    from pypdf.generic import DictionaryObject, NameObject, TextStringObject

    action = DictionaryObject(
        {NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject("app.alert(1)")}
    )
    writer.pages[0][NameObject("/AA")] = DictionaryObject({NameObject("/O"): writer._add_object(action)})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


CORPUS = {
    "zero bytes": (b"", "The file is empty"),
    "text renamed to .jpg": (b"hello, I am a passport", "not a JPEG, PNG, WebP image or a PDF"),
    "html renamed to .png": (
        b"<html><script>alert(1)</script></html>",
        "not a JPEG, PNG, WebP image or a PDF",
    ),
    "GIF renamed to .jpg": (gif_named_jpg(), "not a JPEG, PNG, WebP image or a PDF"),
    "BMP": (bmp(), "not a JPEG, PNG, WebP image or a PDF"),
    "Windows executable": (b"MZ\x90\x00" + os.urandom(4000), "not a JPEG, PNG, WebP image or a PDF"),
    "truncated JPEG": (photo()[:3000], "looks damaged or incomplete"),
    "JPEG magic then noise": (b"\xff\xd8\xff\xe0" + os.urandom(5000), "looks damaged or incomplete"),
    "truncated PNG": (photo("PNG")[:400], "looks damaged or incomplete"),
    "corrupt WebP": (b"RIFF\x00\x10\x00\x00WEBPVP8 " + os.urandom(3000), "looks damaged or incomplete"),
    "PNG decompression bomb": (png_bomb(30_000), "too large to process"),
    "tiny image": (photo(size=(40, 30)), "too small to read"),
    "PDF with JavaScript": (pdf(js=True), "scripts, embedded files or actions"),
    "PDF with hidden JavaScript action": (pdf_with_hidden_js(), "scripts, embedded files or actions"),
    "PDF with an embedded file": (pdf(attachment=True), "scripts, embedded files or actions"),
    "PDF/ZIP polyglot": (pdf_with_zip_tail(), "unexpected data after its end"),
    "truncated PDF": (pdf()[:300], "damaged or incomplete"),
    "PDF header then garbage": (b"%PDF-1.7\n" + os.urandom(2000) + b"\n%%EOF\n", "damaged or incomplete"),
    "encrypted PDF": (pdf(password="secret"), "password-protected"),
    "PDF with too many pages": (pdf(pages=31), "has 31 pages"),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_each_bad_file_is_refused_with_a_clear_message(case):
    data, message = CORPUS[case]
    with pytest.raises(RejectedUpload) as refused:
        clean_upload(data, max_bytes=LIMIT)
    assert message in refused.value.message, refused.value.message


def test_an_oversized_file_is_refused_before_it_is_decoded():
    with pytest.raises(RejectedUpload) as refused:
        clean_upload(b"\xff\xd8\xff" + b"\x00" * (LIMIT + 1), max_bytes=LIMIT)
    assert "the limit is 5 MB" in refused.value.message


def test_the_pixel_limit_is_a_real_phone_photo_and_more():
    assert MAX_PIXELS >= 12_000_000 * 3  # a 12 MP photo passes with room; a bomb does not


# --- storage at rest ---------------------------------------------------------------------------------


def test_documents_are_encrypted_at_rest_under_random_names(tmp_path):
    store = DocumentStore(tmp_path / "documents", parse_key(new_key()))
    content = photo()
    name = store.write(content)
    path = tmp_path / "documents" / name[:2] / name
    assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
    raw = path.read_bytes()
    assert content not in raw and raw.startswith(b"FXD1")
    assert store.read(name) == content
    assert store.write(content) != name  # never the same name twice


def test_a_tampered_or_swapped_file_fails_its_integrity_check(tmp_path):
    store = DocumentStore(tmp_path, parse_key(new_key()))
    a, b = store.write(b"passport of A" * 100), store.write(b"passport of B" * 100)
    (tmp_path / a[:2] / a).write_bytes((tmp_path / b[:2] / b).read_bytes())  # B's file under A's name
    with pytest.raises(StorageError, match="integrity"):
        store.read(a)
    blob = bytearray((tmp_path / b[:2] / b).read_bytes())
    blob[-1] ^= 1
    (tmp_path / b[:2] / b).write_bytes(bytes(blob))
    with pytest.raises(StorageError, match="integrity"):
        store.read(b)


def test_another_key_cannot_read_a_document(tmp_path):
    name = DocumentStore(tmp_path, derive_key("x" * 40)).write(b"secret")
    with pytest.raises(StorageError):
        DocumentStore(tmp_path, derive_key("y" * 40)).read(name)
    assert DocumentStore(tmp_path, derive_key("x" * 40)).read(name) == b"secret"


@pytest.mark.parametrize("name", ["../../etc/passwd", "ABC", "0" * 31, "g" * 32])
def test_a_name_that_is_not_ours_never_reaches_the_file_system(tmp_path, name):
    with pytest.raises(StorageError):
        DocumentStore(tmp_path, derive_key("x" * 40)).read(name)


def test_a_document_key_must_be_32_bytes_of_base64():
    for bad in ("short", "!!!not base64!!!", new_key() + "AAAA"):
        with pytest.raises(StorageError):
            parse_key(bad)
