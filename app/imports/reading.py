"""Reading an uploaded CSV file: is it text, in which encoding, with which delimiter, and its records.

Nothing here guesses silently: a file we cannot read as the encoding the user chose is refused
with the reason and the line, and a delimiter that was detected is shown before anything runs.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from app.core.errors import FormErrors

MAX_BYTES = 20 * 1024 * 1024
MAX_COLUMNS = 200
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
ENCODINGS = {
    "utf-8": "UTF-8 (with or without BOM) — Excel’s “CSV UTF-8”",
    "cp1252": "Windows-1252 — Excel’s older “CSV (Comma delimited)” on Western European Windows",
}
_SAMPLE_CHARS = 64 * 1024
_SAMPLE_RECORDS = 50


@dataclass(frozen=True)
class CsvFile:
    text: str
    encoding: str  # utf-8 | utf-8-sig (had a BOM) | cp1252
    delimiter: str
    header: list[str]
    total_rows: int  # records after the header, blank lines included


def _refuse(message: str) -> FormErrors:
    return FormErrors({"file": message})


def decode(data: bytes, encoding: str = "utf-8") -> tuple[str, str]:
    """The text and the encoding it was read with; FormErrors naming the problem otherwise."""
    if not data.strip():
        raise _refuse("The file is empty.")
    if len(data) > MAX_BYTES:
        raise _refuse(
            f"The file is {len(data) / 1_048_576:.1f} MB; the limit is {MAX_BYTES // 1_048_576} MB. "
            "Split it into smaller files."
        )
    if data.startswith(b"PK\x03\x04"):
        raise _refuse(
            "This is an Excel workbook (or another zip file), not a CSV file. In Excel use "
            "File › Save As › “CSV UTF-8 (Comma delimited)” and upload that."
        )
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise _refuse("The file is UTF-16 (“Unicode text”). Save it as “CSV UTF-8” and upload it again.")
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise _refuse(
            f"The file contains binary data (a NUL byte on line {line}); it is not a text CSV file."
        )
    if encoding == "cp1252":
        if data.startswith(codecs.BOM_UTF8):
            raise _refuse("The file starts with a UTF-8 marker (BOM): choose UTF-8, not Windows-1252.")
        try:
            return data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError as exc:
            raise _refuse(_undecodable(data, exc, "Windows-1252")) from None
    if encoding != "utf-8":
        raise _refuse("Choose one of the encodings offered.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(
            _undecodable(data, exc, "UTF-8")
            + " Save the file as “CSV UTF-8”, or, if it came from an older Excel, choose Windows-1252 below."
        ) from None
    return text, "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"


def _undecodable(data: bytes, exc: UnicodeDecodeError, name: str) -> str:
    line = data[: exc.start].count(b"\n") + 1
    return f"The file is not valid {name}: byte 0x{data[exc.start]:02X} on line {line} is not a {name} character."


def _sample_rows(text: str, delimiter: str) -> list[list[str]] | None:
    sample = text[:_SAMPLE_CHARS]
    cut = len(text) > _SAMPLE_CHARS
    try:
        rows = []
        for row in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter):
            rows.append(row)
            if len(rows) > _SAMPLE_RECORDS:
                break
    except csv.Error:
        return None
    if cut and len(rows) > 1:
        rows.pop()  # the sample may end inside the last record
    return [r for r in rows if any(c.strip() for c in r)] or None


def detect_delimiter(text: str) -> str:
    """The candidate under which the header has most columns and the rows agree with it most."""
    best: tuple[float, int, str] | None = None
    for delimiter in DELIMITERS:
        rows = _sample_rows(text, delimiter)
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        agree = sum(1 for r in rows[1:] if len(r) == width) / max(1, len(rows) - 1)
        score = (agree, width, delimiter)
        if best is None or score[:2] > best[:2]:
            best = score
    if best is None:
        raise _refuse(
            "Could not find the delimiter: with comma, semicolon, tab and pipe alike the first line is a "
            "single column. The file needs a header line such as “email,first_name,last_name”."
        )
    return best[2]


def read(data: bytes, encoding: str = "utf-8", delimiter: str = "") -> CsvFile:
    """Decode, find the delimiter (unless given) and read the whole file once, so every problem
    of its structure is found at upload, not half-way through the run."""
    text, used = decode(data, encoding)
    if delimiter and delimiter not in DELIMITERS:
        raise FormErrors({"delimiter": "Choose one of the delimiters offered."})
    chosen = delimiter or detect_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=chosen, strict=True)
    header: list[str] | None = None
    total = 0
    line = 1
    try:
        for row in reader:
            if header is None:
                if not any(c.strip() for c in row):
                    line = reader.line_num + 1
                    continue
                header = [c.strip() for c in row]
            else:
                total += 1
            line = reader.line_num + 1
    except csv.Error as exc:
        raise _refuse(_structure_problem(line, str(exc))) from None
    if header is None:
        raise _refuse("The file is empty.")
    if len(header) < 2:
        guess = ""
        try:
            found = detect_delimiter(text)
            if found != chosen:
                guess = f" The file seems to use {DELIMITERS[found]}s."
        except FormErrors:
            pass
        raise _refuse(f"With {DELIMITERS[chosen]} as delimiter the header line is a single column.{guess}")
    if len(header) > MAX_COLUMNS:
        raise _refuse(f"The header has {len(header)} columns; at most {MAX_COLUMNS} are accepted.")
    if total == 0:
        raise _refuse("The file has a header line but no rows below it.")
    return CsvFile(text=text, encoding=used, delimiter=chosen, header=header, total_rows=total)


def _structure_problem(line: int, error: str) -> str:
    if "field larger than field limit" in error:
        return (
            f"Line {line} holds a value longer than {csv.field_size_limit():,} characters; often a quotation "
            "mark that is never closed. Nothing was imported."
        )
    if "unexpected end of data" in error:
        return f"A quoted value that starts on line {line} is never closed. Nothing was imported."
    return f"Line {line} is not valid CSV ({error}). Nothing was imported."


def records(text: str, delimiter: str, *, skip: int = 0) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, its cells) for each record after the header, from `skip` on."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    line = 1
    for row in reader:
        line = reader.line_num + 1
        if any(c.strip() for c in row):
            break  # the header
    index = 0
    for row in reader:
        if index >= skip:
            yield line, row
        index += 1
        line = reader.line_num + 1
