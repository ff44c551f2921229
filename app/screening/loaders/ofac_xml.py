"""OFAC's SDN list as XML (sdn.xml): root `sdnList`, in the classic namespace
http://tempuri.org/sdnList.xsd or the Sanctions List Service's
https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/XML (same structure).

`publshInformation/Publish_Date` (MM/DD/YYYY; the misspelling is OFAC's) dates the release and
`Record_Count` says how many `sdnEntry` elements follow; each has uid, firstName, lastName,
sdnType, programList/program, akaList/aka, dateOfBirthList/dateOfBirthItem/dateOfBirth,
nationalityList/nationality/country and citizenshipList/citizenship/country.
OFAC's "advanced" format (SDN_ADVANCED.XML, root `Sanctions`) is a different schema and is not read.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from app.screening.loaders.common import (
    ListFileError,
    ParsedEntry,
    ParsedList,
    child,
    children,
    date_or_range,
    iter_elements,
    local,
    parse_timestamp,
    require_entries,
    text,
)
from app.screening.loaders.ofac_csv import apply_remarks

TYPES = {"individual": "person", "vessel": "vessel", "aircraft": "aircraft", "entity": "entity"}


def _name(elem: Element, person: bool) -> str:
    first, last = text(elem, "firstName"), text(elem, "lastName")
    if first and last:
        return f"{last}, {first}" if person else f"{first} {last}"
    return last or first


def _entry(elem: Element) -> ParsedEntry:
    uid = text(elem, "uid")
    kind = TYPES.get(text(elem, "sdnType").lower(), "entity")
    person = kind == "person"
    name = _name(elem, person)
    if not name:
        raise ListFileError(f"sdn.xml: entry {uid or '?'} has no name. Nothing was loaded.")
    entry = ParsedEntry(external_id=uid, kind=kind, primary_name=name)
    for group, item, field in (
        ("programList", "program", None),
        ("akaList", "aka", None),
        ("dateOfBirthList", "dateOfBirthItem", "dateOfBirth"),
        ("nationalityList", "nationality", "country"),
        ("citizenshipList", "citizenship", "country"),
    ):
        container = child(elem, group)
        if container is None:
            continue
        for node in children(container, item):
            if group == "programList":
                entry.add_programme(text(node))
            elif group == "akaList":
                entry.add_alias(_name(node, person))
            elif group == "dateOfBirthList":
                if dob := date_or_range(text(node, field)):
                    entry.add_dob(dob)
            else:
                entry.add_nationality(text(node, field))
    entry.remarks = text(elem, "remarks")[:2000]
    apply_remarks(entry, entry.remarks)
    return entry


def parse(data: bytes) -> ParsedList:
    entries: list[ParsedEntry] = []
    published = ""
    expected: int | None = None
    for kind, elem in iter_elements(data, "OFAC sdn.xml", {"sdnEntry", "publshInformation"}):
        if kind == "root":
            if local(elem.tag) != "sdnList":
                raise ListFileError(f"This is not OFAC's sdn.xml (its root is <{local(elem.tag)}>).")
            continue
        if local(elem.tag) == "publshInformation":
            published = text(elem, "Publish_Date")
            count = text(elem, "Record_Count")
            expected = int(count) if count.isdigit() else None
        else:
            entries.append(_entry(elem))
    if expected is not None and expected != len(entries):
        raise ListFileError(
            f"sdn.xml says it holds {expected} entries but {len(entries)} were found: the file is incomplete. "
            "Nothing was loaded."
        )
    at = parse_timestamp(published)
    version = at.date().isoformat() if at else published
    return require_entries(ParsedList("ofac", "ofac-xml", version, at, entries), "OFAC sdn.xml")
