"""The EU consolidated financial sanctions list, XML (namespace http://eu.europa.ec/fpi/fsd/export).

Root `export` with `generationDate`; one `sanctionEntity` per listing (attributes logicalId,
euReferenceNumber, unitedNationId) holding `subjectType` (code person/enterprise,
classificationCode P/E), `regulation` (programme), `nameAlias` (wholeName, or firstName /
middleName / lastName), `birthdate` (birthdate, or year, or yearRangeFrom/yearRangeTo) and
`citizenship` (countryIso2Code, "00" for unknown, and countryDescription).
"""

from __future__ import annotations

from datetime import UTC
from xml.etree.ElementTree import Element

from app.screening.loaders.common import (
    ListFileError,
    ParsedEntry,
    ParsedList,
    children,
    clean,
    iter_elements,
    local,
    one_date,
    parse_timestamp,
    require_entries,
    text,
    year_range,
)


def subject_kind(*codes: str) -> str:
    values = {c.strip().lower() for c in codes if c}
    if values & {"person", "p"}:
        return "person"
    return "entity"


def whole_name(whole: str, first: str, middle: str, last: str) -> str:
    return clean(whole) or clean(" ".join((first, middle, last)))


def birth_date(date: str, year: str, start: str, end: str) -> str | None:
    if date and (value := one_date(date)):
        return value
    if start.isdigit() and end.isdigit():
        return year_range(int(start), int(end))
    if year.isdigit():
        return year
    return None


def _entry(elem: Element) -> ParsedEntry:
    ref = elem.get("euReferenceNumber", "") or elem.get("logicalId", "")
    subject = children(elem, "subjectType")
    kind = subject_kind(*(v for s in subject for v in (s.get("code", ""), s.get("classificationCode", ""))))
    names = [
        whole_name(
            n.get("wholeName", ""), n.get("firstName", ""), n.get("middleName", ""), n.get("lastName", "")
        )
        for n in children(elem, "nameAlias")
    ]
    names = [n for n in names if n]
    if not names:
        raise ListFileError(f"EU list: entry {ref or '?'} has no name. Nothing was loaded.")
    entry = ParsedEntry(external_id=ref, kind=kind, primary_name=names[0])
    for n in names[1:]:
        entry.add_alias(n)
    for reg in children(elem, "regulation"):
        entry.add_programme(reg.get("programme", ""))
    for b in children(elem, "birthdate"):
        value = birth_date(
            b.get("birthdate", ""), b.get("year", ""), b.get("yearRangeFrom", ""), b.get("yearRangeTo", "")
        )
        if value:
            entry.add_dob(value)
    for c in children(elem, "citizenship"):
        code = c.get("countryIso2Code", "")
        entry.add_nationality(code if code and code != "00" else c.get("countryDescription", ""))
    entry.remarks = text(elem, "remark")[:2000]
    return entry


def parse(data: bytes) -> ParsedList:
    entries: list[ParsedEntry] = []
    generated = ""
    for kind, elem in iter_elements(data, "EU consolidated list", {"sanctionEntity"}):
        if kind == "root":
            if local(elem.tag) != "export":
                raise ListFileError(
                    f"This is not the EU consolidated list (its root is <{local(elem.tag)}>)."
                )
            generated = elem.get("generationDate", "")
            continue
        entries.append(_entry(elem))
    at = parse_timestamp(generated)
    version = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else generated
    return require_entries(ParsedList("eu", "eu-xml", version, at, entries), "EU consolidated list")
