"""What every list loader shares: the parsed shape, safe XML, dates and countries.

Official lists are read as published, with nothing fetched from the network: XML is parsed by
defusedxml with DTDs, entities and external references forbidden (no official list uses them, and
they are how XML bombs and external-entity attacks work), so such a file is refused, not expanded.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import pycountry
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

MAX_FILE_BYTES = 200 * 1024 * 1024  # the EU XML is ~25 MB, OFAC's sdn.xml ~15 MB: ample room
KINDS = ("person", "entity", "vessel", "aircraft")


class ListFileError(ValueError):
    """A file we will not load; the message tells the user why, in their terms."""


@dataclass
class ParsedEntry:
    external_id: str
    kind: str  # person | entity | vessel | aircraft
    primary_name: str
    aliases: list[str] = field(default_factory=list)
    dates_of_birth: list[str] = field(default_factory=list)  # YYYY-MM-DD | YYYY | YYYY..YYYY
    nationalities: list[str] = field(default_factory=list)  # ISO 3166 alpha-2 where known, else as written
    programmes: list[str] = field(default_factory=list)
    remarks: str = ""

    def add_alias(self, name: str | None) -> None:
        name = clean(name)
        if name and name != self.primary_name and name not in self.aliases:
            self.aliases.append(name)

    def add_dob(self, value: str | None) -> None:
        if value and value not in self.dates_of_birth:
            self.dates_of_birth.append(value)

    def add_nationality(self, value: str | None) -> None:
        value = clean(value)
        if not value or value.upper() in {"00", "UNKNOWN"}:
            return
        code = country_code(value) or value
        if code not in self.nationalities:
            self.nationalities.append(code)

    def add_programme(self, value: str | None) -> None:
        value = clean(value)
        if value and value not in self.programmes:
            self.programmes.append(value)


@dataclass
class ParsedList:
    source: str  # ofac | un | eu
    format: str  # ofac-csv | ofac-xml | un-xml | eu-xml | eu-csv
    version: str  # as the file states it ("" when the format carries none)
    published_at: datetime | None
    entries: list[ParsedEntry]


def clean(value: str | None) -> str:
    return " ".join((value or "").split())


def require_entries(parsed: ParsedList, what: str) -> ParsedList:
    if not parsed.entries:
        raise ListFileError(f"The {what} file holds no entries. Nothing was loaded.")
    seen: set[str] = set()
    for e in parsed.entries:
        if not e.external_id:
            raise ListFileError(f"An entry in the {what} file has no identifier ({e.primary_name!r}).")
        if e.external_id in seen:
            raise ListFileError(f"The {what} file lists the identifier {e.external_id} twice.")
        seen.add(e.external_id)
    return parsed


# --- XML ------------------------------------------------------------------------------------------

_DOCTYPE = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_ROOT = re.compile(rb"<([A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)")


def local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def refuse_doctype(data: bytes) -> None:
    if _DOCTYPE.search(data[:65536]):
        raise ListFileError(
            "The file declares a DOCTYPE or entities. Official lists never do, and such declarations are "
            "how XML bombs and external-entity attacks work, so it was refused. Nothing was loaded."
        )


def root_name(data: bytes) -> str | None:
    """The root element's local name, read from the file's head without parsing it."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    pos = 0
    while True:
        lt = head.find(b"<", pos)
        if lt < 0:
            return None
        nxt = head[lt + 1 : lt + 2]
        if nxt in (b"?", b"!"):
            end = head.find(b">", lt)
            if end < 0:
                return None
            pos = end + 1
            continue
        m = _ROOT.match(head, lt)
        return m.group(2).decode() if m else None


def iter_elements(data: bytes, what: str, record_tags: set[str]) -> Iterator[tuple[str, Element]]:
    """("root", root element) first, then each complete record element (by local tag name).

    Records are cleared from the tree after the caller is done with them, so memory stays flat
    on large files."""
    refuse_doctype(data)
    try:
        events = SafeET.iterparse(
            io.BytesIO(data),
            events=("start", "end"),
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
        root: Element | None = None
        for event, elem in events:
            if event == "start":
                if root is None:
                    root = elem
                    yield "root", elem
                continue
            if local(elem.tag) in record_tags:
                yield "record", elem
                elem.clear()
    except DefusedXmlException as exc:
        raise ListFileError(
            f"The {what} file uses DTDs, entities or external references ({type(exc).__name__}); "
            "official lists never do, so it was refused. Nothing was loaded."
        ) from exc
    except ParseError as exc:
        raise ListFileError(f"The {what} file is not well-formed XML ({exc}). Nothing was loaded.") from exc


def child(elem: Element, name: str) -> Element | None:
    for c in elem:
        if local(c.tag) == name:
            return c
    return None


def children(elem: Element, name: str) -> list[Element]:
    return [c for c in elem if local(c.tag) == name]


def text(elem: Element | None, name: str | None = None) -> str:
    if elem is not None and name is not None:
        elem = child(elem, name)
    return clean(elem.text) if elem is not None and elem.text else ""


# --- text files -----------------------------------------------------------------------------------


def decode_text(data: bytes, what: str) -> str:
    """UTF-8 (with or without BOM), else Windows-1252 (older OFAC files); never binary."""
    if b"\x00" in data[:65536]:
        raise ListFileError(f"The {what} file contains binary data; it is not a text file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


# --- dates ----------------------------------------------------------------------------------------

MONTHS = {m: i for i, m in enumerate(("jan feb mar apr may jun jul aug sep oct nov dec").split(), start=1)}
_YEAR = r"(1[89]\d\d|20\d\d)"
_DMY = re.compile(rf"^(\d{{1,2}})\s+([A-Za-z]{{3}})[a-z]*\.?\s+{_YEAR}$")
_MY = re.compile(rf"^([A-Za-z]{{3}})[a-z]*\.?\s+{_YEAR}$")
_ISO = re.compile(rf"^{_YEAR}-(\d\d)-(\d\d)")
_Y = re.compile(rf"^{_YEAR}$")


def one_date(value: str) -> str | None:
    """An OFAC-style or ISO date as YYYY-MM-DD, or YYYY when only the year (or month) is known."""
    value = clean(value).strip(".")
    value = re.sub(r"^(circa|approximately|about|ca\.?)\s+", "", value, flags=re.IGNORECASE)
    if m := _ISO.match(value):
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        return _valid(y, mo, d)
    if m := _DMY.match(value):
        month = MONTHS.get(m.group(2).lower()[:3])
        return _valid(int(m.group(3)), month, int(m.group(1))) if month else None
    if m := _MY.match(value):
        return m.group(2) if m.group(1).lower()[:3] in MONTHS else None
    if m := _Y.match(value):
        return m.group(1)
    m = re.search(r"\b(\d{2})/(\d{2})/" + _YEAR + r"\b", value)  # DD/MM/YYYY (UK, EU CSV)
    if m:
        return _valid(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    return None


def _valid(y: int, mo: int | None, d: int) -> str | None:
    try:
        return datetime(y, mo or 0, d).strftime("%Y-%m-%d")
    except ValueError:
        return str(y) if 1800 <= y <= 2100 else None


def date_or_range(value: str) -> str | None:
    """ "10 Jun 1955", "1955", "circa 1955", "1955 to 1957" → YYYY-MM-DD | YYYY | YYYY..YYYY."""
    value = clean(value)
    if " to " in value:
        a, _, b = value.partition(" to ")
        start, end = one_date(a), one_date(b)
        if start and end:
            return year_range(int(start[:4]), int(end[:4]))
        return start or end
    return one_date(value)


def year_range(start: int, end: int) -> str:
    if start > end:
        start, end = end, start
    return str(start) if start == end else f"{start}..{end}"


def parse_timestamp(value: str, *, day_first: bool = False) -> datetime | None:
    """The list's own publication moment: ISO timestamps, ISO dates, MM/DD/YYYY (OFAC) or, with
    `day_first`, DD/MM/YYYY (the EU's CSV)."""
    value = clean(value)
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    except ValueError:
        pass
    for fmt in ("%d/%m/%Y",) if day_first else ("%m/%d/%Y",):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


# --- countries ------------------------------------------------------------------------------------

COUNTRY_SYNONYMS = {
    "russia": "RU",
    "korea, north": "KP",
    "north korea": "KP",
    "korea, south": "KR",
    "south korea": "KR",
    "palestinian": "PS",
    "palestine": "PS",
    "west bank": "PS",
    "gaza": "PS",
    "democratic republic of the congo": "CD",
    "congo, democratic republic of the": "CD",
    "republic of the congo": "CG",
    "turkey": "TR",
    "kosovo": "XK",
    "burma": "MM",
    "iran": "IR",
    "syria": "SY",
    "the former yugoslav republic of macedonia": "MK",
    "macedonia": "MK",
    "czech republic": "CZ",
    "ivory coast": "CI",
    "cote d'ivoire": "CI",
    "united states": "US",
    "usa": "US",
    "uk": "GB",
    "great britain": "GB",
    "vatican": "VA",
    "swaziland": "SZ",
    "cape verde": "CV",
    "east timor": "TL",
}


@functools.lru_cache(maxsize=4096)
def country_code(value: str) -> str | None:
    """ISO 3166-1 alpha-2 for a code, a name or a common synonym; None when unknown."""
    v = clean(re.sub(r"\(.*?\)", "", value)).strip(" .")
    if not v:
        return None
    if len(v) == 2 and v.isalpha():
        return v.upper() if pycountry.countries.get(alpha_2=v.upper()) else None
    if v.lower() in COUNTRY_SYNONYMS:
        return COUNTRY_SYNONYMS[v.lower()]
    try:
        return str(pycountry.countries.lookup(v).alpha_2)
    except LookupError:
        return None
