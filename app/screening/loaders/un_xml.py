"""The UN Security Council consolidated list (consolidated.xml).

Root `CONSOLIDATED_LIST` with a `dateGenerated` attribute; `INDIVIDUALS/INDIVIDUAL` and
`ENTITIES/ENTITY`. A person's name is FIRST_NAME … FOURTH_NAME in order, with
NAME_ORIGINAL_SCRIPT (Arabic, Cyrillic …) beside it; INDIVIDUAL_ALIAS/ALIAS_NAME are the aliases;
INDIVIDUAL_DATE_OF_BIRTH has TYPE_OF_DATE (EXACT, APPROXIMATELY, BETWEEN) with DATE, YEAR or
FROM_YEAR/TO_YEAR; NATIONALITY/VALUE the nationalities; UN_LIST_TYPE the sanctions regime and
REFERENCE_NUMBER (e.g. QDi.001) the UN's own identifier. An entity's name is its FIRST_NAME.
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
    date_or_range,
    iter_elements,
    local,
    one_date,
    parse_timestamp,
    require_entries,
    text,
    year_range,
)

NAME_PARTS = ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME")


def _dob(node: Element) -> str | None:
    date, year = text(node, "DATE"), text(node, "YEAR")
    start, end = text(node, "FROM_YEAR"), text(node, "TO_YEAR")
    if date:
        return one_date(date)
    if start.isdigit() and end.isdigit():
        return year_range(int(start), int(end))
    if year.isdigit():
        return year
    return date_or_range(start or end) if (start or end) else None


def _entry(elem: Element) -> ParsedEntry:
    person = local(elem.tag) == "INDIVIDUAL"
    ref, data_id = text(elem, "REFERENCE_NUMBER"), text(elem, "DATAID")
    name = clean(" ".join(text(elem, part) for part in NAME_PARTS)) if person else text(elem, "FIRST_NAME")
    if not name:
        raise ListFileError(
            f"consolidated.xml: entry {ref or data_id or '?'} has no name. Nothing was loaded."
        )
    entry = ParsedEntry(external_id=ref or data_id, kind="person" if person else "entity", primary_name=name)
    entry.add_programme(text(elem, "UN_LIST_TYPE"))
    entry.add_alias(text(elem, "NAME_ORIGINAL_SCRIPT"))
    for alias in children(elem, "INDIVIDUAL_ALIAS" if person else "ENTITY_ALIAS"):
        entry.add_alias(text(alias, "ALIAS_NAME"))
    for nationality in children(elem, "NATIONALITY"):
        for value in children(nationality, "VALUE"):
            entry.add_nationality(text(value))
    for node in children(elem, "INDIVIDUAL_DATE_OF_BIRTH"):
        if dob := _dob(node):
            entry.add_dob(dob)
    entry.remarks = text(elem, "COMMENTS1")[:2000]
    return entry


def parse(data: bytes) -> ParsedList:
    entries: list[ParsedEntry] = []
    generated = ""
    for kind, elem in iter_elements(data, "UN consolidated list", {"INDIVIDUAL", "ENTITY"}):
        if kind == "root":
            if local(elem.tag) != "CONSOLIDATED_LIST":
                raise ListFileError(
                    f"This is not the UN consolidated list (its root is <{local(elem.tag)}>)."
                )
            generated = elem.get("dateGenerated", "")
            continue
        entries.append(_entry(elem))
    at = parse_timestamp(generated)
    version = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else generated
    return require_entries(ParsedList("un", "un-xml", version, at, entries), "UN consolidated list")
