"""Read one published sanctions list release, in whichever official format it came.

A release is a set of files by name: one XML or CSV file, or OFAC's CSV trio (sdn.csv with
alt.csv and add.csv). It may arrive as paths (the CLI: a file, the trio's sdn.csv, or a folder) or
as one upload (the console: the file itself, or a zip of the trio). `detect` names the format from
the content, `parse` reads it, `fingerprint` identifies the release so a second load is a no-op.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

from app.screening.loaders import eu_csv, eu_xml, ofac_csv, ofac_xml, un_xml
from app.screening.loaders.common import (
    MAX_FILE_BYTES,
    ListFileError,
    ParsedEntry,
    ParsedList,
    refuse_doctype,
    root_name,
)

FORMATS: dict[str, str] = {
    "ofac-csv": "OFAC SDN, CSV files (sdn.csv with alt.csv and add.csv)",
    "ofac-xml": "OFAC SDN, XML (sdn.xml)",
    "un-xml": "UN Security Council consolidated list, XML",
    "eu-xml": "EU consolidated financial sanctions list, XML",
    "eu-csv": "EU consolidated financial sanctions list, CSV",
}
SOURCES = {"ofac": "OFAC SDN (US)", "un": "UN Security Council", "eu": "EU financial sanctions"}
MAX_ZIP_MEMBERS = 10

Files = dict[str, bytes]

__all__ = [
    "FORMATS",
    "SOURCES",
    "Files",
    "ListFileError",
    "ParsedEntry",
    "ParsedList",
    "detect",
    "fingerprint",
    "parse",
    "read_paths",
    "read_upload",
]


def _check_size(name: str, data: bytes) -> None:
    if len(data) > MAX_FILE_BYTES:
        raise ListFileError(f"{name} is larger than {MAX_FILE_BYTES // 1_048_576} MB; no official list is.")


def read_paths(paths: list[Path]) -> Files:
    """The release at these paths: a file, OFAC's sdn.csv (its alt/add/comments files are taken from
    beside it), a folder holding a release, or a zip."""
    files: Files = {}
    for path in paths:
        if path.is_dir():
            found = [p for p in sorted(path.iterdir()) if p.is_file() and p.name.lower() in ofac_csv.FILES]
            if not found:
                found = [p for p in sorted(path.iterdir()) if p.suffix.lower() in {".xml", ".csv", ".zip"}]
            if len(found) != 1 and not any(p.name.lower() == "sdn.csv" for p in found):
                raise ListFileError(f"{path} holds no single list file; name the file to load.")
            files.update(read_paths(found))
            continue
        if not path.is_file():
            raise ListFileError(f"{path}: no such file.")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ListFileError(
                f"{path.name} is larger than {MAX_FILE_BYTES // 1_048_576} MB; no official list is."
            )
        data = path.read_bytes()
        if data.startswith(b"PK\x03\x04"):
            files.update(read_upload(path.name, data))
            continue
        files[path.name.lower()] = data
        if path.name.lower() == "sdn.csv":
            for sibling in ofac_csv.FILES[1:]:
                candidate = path.with_name(sibling)
                if not candidate.exists():
                    candidate = path.with_name(sibling.upper())
                if candidate.is_file() and sibling not in files:
                    files[sibling] = candidate.read_bytes()
    return files


def read_upload(filename: str, data: bytes) -> Files:
    """One uploaded file; a zip is opened (list files only, sizes checked while reading)."""
    if not data.strip():
        raise ListFileError("The file is empty. Nothing was loaded.")
    _check_size(filename, data)
    if not data.startswith(b"PK\x03\x04"):
        return {(Path(filename).name or "list").lower(): data}
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ListFileError(f"{filename} is not a readable zip file ({exc}).") from exc
    members = [m for m in archive.infolist() if not m.is_dir()]
    if not members or len(members) > MAX_ZIP_MEMBERS:
        raise ListFileError(f"{filename} should hold one list release (at most {MAX_ZIP_MEMBERS} files).")
    files: Files = {}
    total = 0
    for m in members:
        if m.flag_bits & 0x1:
            raise ListFileError(f"{filename} is encrypted; upload the list files themselves.")
        name = Path(m.filename).name.lower()
        if not name.endswith((".csv", ".xml")):
            continue
        try:
            with archive.open(m) as fh:
                content = fh.read(MAX_FILE_BYTES + 1)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ListFileError(f"{filename}: {name} cannot be read ({exc}).") from exc
        total += len(content)
        if len(content) > MAX_FILE_BYTES or total > MAX_FILE_BYTES:
            raise ListFileError(f"{filename} unpacks to more than {MAX_FILE_BYTES // 1_048_576} MB; refused.")
        files[name] = content
    if not files:
        raise ListFileError(f"{filename} holds no .xml or .csv list file.")
    return files


def _looks_like_sdn_csv(data: bytes) -> bool:
    head = data[:8192].decode("utf-8", errors="replace").lstrip("\ufeff")
    first = next((line for line in head.splitlines() if line.strip()), "")
    try:
        row = next(csv.reader([first]), [])
    except csv.Error:
        return False
    return len(row) == ofac_csv.SDN_FIELDS and row[0].strip().isdigit()


def detect(files: Files) -> str:
    """The format of this release, read from its content (names only for OFAC's trio)."""
    if not files:
        raise ListFileError("No file was given.")
    if "sdn.csv" in files:
        return "ofac-csv"
    if len(files) != 1:
        raise ListFileError("Give one list file (or OFAC's sdn.csv with alt.csv and add.csv).")
    ((name, data),) = files.items()
    if not data.strip():
        raise ListFileError(f"{name} is empty. Nothing was loaded.")
    if b"\x00" in data[:65536]:
        raise ListFileError(
            f"{name} contains binary data (an image, a PDF?); list files are XML or CSV text."
        )
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<"):
        refuse_doctype(stripped)
        root = root_name(stripped)
        if root == "sdnList":
            return "ofac-xml"
        if root == "CONSOLIDATED_LIST":
            return "un-xml"
        if root == "export":
            return "eu-xml"
        if root == "Sanctions":
            raise ListFileError(
                "This is OFAC's advanced XML format (SDN_ADVANCED.XML), which is not read here: load sdn.xml "
                "or the CSV files (sdn.csv, alt.csv, add.csv) of the same release."
            )
        raise ListFileError(
            f"{name} is XML but not a list we read (root <{root or '?'}>): expected OFAC's sdn.xml, "
            "the UN consolidated list or the EU consolidated list."
        )
    if b"Entity_LogicalId" in data[:8192]:
        return "eu-csv"
    if _looks_like_sdn_csv(data):
        return "ofac-csv"
    raise ListFileError(
        f"{name} is not a sanctions list in a format we read. Expected one of: "
        + "; ".join(FORMATS.values())
        + "."
    )


PARSERS: dict[str, Callable[[bytes], ParsedList]] = {
    "ofac-xml": ofac_xml.parse,
    "un-xml": un_xml.parse,
    "eu-xml": eu_xml.parse,
    "eu-csv": eu_csv.parse,
}


def parse(files: Files, fmt: str | None = None) -> ParsedList:
    """The release as entries. With `fmt` given the content must still be that format."""
    for name, data in files.items():
        if not data.strip():
            raise ListFileError(f"{name} is empty. Nothing was loaded.")
        _check_size(name, data)
    found = detect(files)
    if fmt and fmt != found:
        if fmt not in FORMATS:
            raise ListFileError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
        raise ListFileError(f"You said {FORMATS[fmt]}, but the file is {FORMATS[found]}. Nothing was loaded.")
    if found == "ofac-csv":
        if "sdn.csv" not in files:
            ((_, data),) = files.items()
            files = {"sdn.csv": data}
        return ofac_csv.parse(files)
    ((_, data),) = files.items()
    return PARSERS[found](data)


def fingerprint(files: Files) -> str:
    """SHA-256 of the file, or of the trio's files together (by name), so one release is one fingerprint."""
    if len(files) == 1:
        return hashlib.sha256(next(iter(files.values()))).hexdigest()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{hashlib.sha256(files[name]).hexdigest()}\n".encode())
    return digest.hexdigest()
