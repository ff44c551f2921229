"""OFAC's legacy delimited SDN files: sdn.csv, alt.csv, add.csv (and sdn_comments.csv).

As OFAC publishes them: no header row, comma-separated, "-0-" (often "-0- ") for an empty value,
CRLF line ends and sometimes a trailing Ctrl-Z. sdn.csv has 12 fields (ent_num, SDN_Name,
SDN_Type, Program, Title, Call_Sign, Vess_type, Tonnage, GRT, Vess_flag, Vess_owner, Remarks);
alt.csv 5 (ent_num, alt_num, alt_type, alt_name, alt_remarks); add.csv 6 (ent_num, add_num,
address, city/state/postal code, country, add_remarks); sdn_comments.csv 2 (ent_num, remarks
continued). Dates of birth and nationalities live in the remarks ("DOB 10 Jun 1955; alt. DOB 1956;
nationality Iraq; citizen Iraq"), weak aliases too ("a.k.a. 'ABU X'"). The files carry no
publication date, so this format's version is the file's fingerprint.
"""

from __future__ import annotations

import csv
import io
import re

from app.screening.loaders.common import (
    ListFileError,
    ParsedEntry,
    ParsedList,
    date_or_range,
    decode_text,
    require_entries,
)

SDN_FIELDS, ALT_FIELDS, ADD_FIELDS = 12, 5, 6
FILES = ("sdn.csv", "alt.csv", "add.csv", "sdn_comments.csv")
TYPES = {"individual": "person", "vessel": "vessel", "aircraft": "aircraft", "entity": "entity"}
_DOB = re.compile(r"^(?:alt\.\s*)?DOB\s+(.+)$", re.IGNORECASE)
_NATIONALITY = re.compile(r"^(?:alt\.\s*)?(?:nationality|citizen)\s+(.+)$", re.IGNORECASE)
_WEAK_AKA = re.compile(r"a\.k\.a\.,?\s+'([^']+)'", re.IGNORECASE)


def _value(v: str) -> str:
    v = " ".join(v.split())
    return "" if v == "-0-" else v


def _rows(data: bytes, name: str, width: int) -> list[list[str]]:
    text = decode_text(data, name).rstrip("\x1a\r\n \t")
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text)):
            if not row or all(not c.strip() or c.strip() == "\x1a" for c in row):
                continue
            if len(row) != width:
                raise ListFileError(
                    f"{name} line {len(rows) + 1}: expected {width} fields as OFAC publishes them, found "
                    f"{len(row)}. Is this really OFAC's {name}? Nothing was loaded."
                )
            if not row[0].strip().isdigit():
                raise ListFileError(
                    f"{name} line {len(rows) + 1}: the first field should be OFAC's entry number, found "
                    f"{row[0][:40]!r}. (OFAC's files have no header row.) Nothing was loaded."
                )
            rows.append([_value(c) for c in row])
    except csv.Error as exc:
        raise ListFileError(f"{name} is not a readable CSV file ({exc}). Nothing was loaded.") from exc
    return rows


def apply_remarks(entry: ParsedEntry, remarks: str) -> None:
    """Dates of birth, nationalities and weak aliases from OFAC's remarks field."""
    for alias in _WEAK_AKA.findall(remarks):
        entry.add_alias(alias)
    for part in remarks.split(";"):
        part = part.strip().rstrip(".").strip()
        if m := _DOB.match(part):
            if dob := date_or_range(m.group(1)):
                entry.add_dob(dob)
        elif m := _NATIONALITY.match(part):
            entry.add_nationality(m.group(1))


def programmes(value: str) -> list[str]:
    """OFAC writes several programmes as "IRAN] [SDGT" (the outer brackets are the reader's)."""
    return [p.strip(" []") for p in re.split(r"\]\s*\[", value) if p.strip(" []")]


def parse(files: dict[str, bytes]) -> ParsedList:
    if "sdn.csv" not in files:
        raise ListFileError("OFAC's CSV release needs sdn.csv (with alt.csv and add.csv beside it).")
    entries: dict[str, ParsedEntry] = {}
    remarks: dict[str, str] = {}
    for row in _rows(files["sdn.csv"], "sdn.csv", SDN_FIELDS):
        ent_num, name, sdn_type = row[0], row[1], row[2].lower()
        if not name:
            raise ListFileError(f"sdn.csv: entry {ent_num} has no name. Nothing was loaded.")
        if ent_num in entries:
            raise ListFileError(f"sdn.csv lists entry {ent_num} twice. Nothing was loaded.")
        entry = ParsedEntry(external_id=ent_num, kind=TYPES.get(sdn_type, "entity"), primary_name=name)
        for p in programmes(row[3]):
            entry.add_programme(p)
        entries[ent_num] = entry
        remarks[ent_num] = row[11]
    if "sdn_comments.csv" in files:
        for row in _rows(files["sdn_comments.csv"], "sdn_comments.csv", 2):
            if row[0] in remarks:
                remarks[row[0]] = (remarks[row[0]] + " " + row[1]).strip()
    if "alt.csv" in files:
        for row in _rows(files["alt.csv"], "alt.csv", ALT_FIELDS):
            if row[0] in entries:  # an alias of an entry this release no longer lists: ignored
                entries[row[0]].add_alias(row[3])
    if "add.csv" in files:
        _rows(files["add.csv"], "add.csv", ADD_FIELDS)  # read to check its shape; addresses are not screened
    for ent_num, entry in entries.items():
        entry.remarks = remarks[ent_num][:2000]
        apply_remarks(entry, remarks[ent_num])
    parsed = ParsedList("ofac", "ofac-csv", "", None, list(entries.values()))
    return require_entries(parsed, "OFAC sdn.csv")
