"""The EU consolidated financial sanctions list, CSV (v1.1).

UTF-8 with a BOM, semicolon-separated, one header row of named columns (fileGenerationDate,
Entity_LogicalId, Entity_EU_ReferenceNumber, Entity_SubjectType, …, NameAlias_WholeName, …,
BirthDate_BirthDate, BirthDate_Year, …, Citizenship_CountryIso2Code, …). A listing spans several
rows (one per alias, address, birth date, document, citizenship), grouped by Entity_LogicalId.
"""

from __future__ import annotations

import csv
import io

from app.screening.loaders.common import (
    ListFileError,
    ParsedEntry,
    ParsedList,
    decode_text,
    parse_timestamp,
    require_entries,
)
from app.screening.loaders.eu_xml import birth_date, subject_kind, whole_name

REQUIRED = ("Entity_LogicalId", "NameAlias_WholeName")


def parse(data: bytes) -> ParsedList:
    text = decode_text(data, "EU CSV")
    reader = csv.reader(io.StringIO(text), delimiter=";")
    try:
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ListFileError(
                "This is not the EU consolidated list CSV: the header lacks " + ", ".join(missing) + "."
            )
        col = {name: i for i, name in enumerate(header)}

        def get(row: list[str], name: str) -> str:
            i = col.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        entries: dict[str, ParsedEntry] = {}
        generated = ""
        for line, row in enumerate(reader, start=2):
            if not any(c.strip() for c in row):
                continue
            if len(row) > len(header):
                raise ListFileError(
                    f"EU CSV line {line}: more fields than the header names. Nothing was loaded."
                )
            logical_id = get(row, "Entity_LogicalId")
            if not logical_id:
                raise ListFileError(f"EU CSV line {line}: no Entity_LogicalId. Nothing was loaded.")
            generated = generated or get(row, "fileGenerationDate")
            name = whole_name(
                get(row, "NameAlias_WholeName"),
                get(row, "NameAlias_FirstName"),
                get(row, "NameAlias_MiddleName"),
                get(row, "NameAlias_LastName"),
            )
            entry = entries.get(logical_id)
            if entry is None:
                entry = ParsedEntry(
                    external_id=get(row, "Entity_EU_ReferenceNumber") or logical_id,
                    kind=subject_kind(
                        get(row, "Entity_SubjectType"), get(row, "Entity_SubjectType_ClassificationCode")
                    ),
                    primary_name=name,
                    remarks=get(row, "Entity_Remark")[:2000],
                )
                entries[logical_id] = entry
            elif not entry.primary_name:
                entry.primary_name = name
            else:
                entry.add_alias(name)
            entry.add_programme(get(row, "Entity_Regulation_Programme"))
            dob = birth_date(
                get(row, "BirthDate_BirthDate"),
                get(row, "BirthDate_Year"),
                get(row, "BirthDate_YearRangeFrom"),
                get(row, "BirthDate_YearRangeTo"),
            )
            if dob:
                entry.add_dob(dob)
            code = get(row, "Citizenship_CountryIso2Code")
            citizenship = code if code and code != "00" else get(row, "Citizenship_CountryDescription")
            entry.add_nationality(citizenship)
    except csv.Error as exc:
        raise ListFileError(f"The EU CSV file is not readable ({exc}). Nothing was loaded.") from exc
    for entry in entries.values():
        if not entry.primary_name:
            raise ListFileError(f"EU CSV: entry {entry.external_id} has no name. Nothing was loaded.")
    at = parse_timestamp(generated, day_first=True)
    version = at.date().isoformat() if at else generated
    return require_entries(ParsedList("eu", "eu-csv", version, at, list(entries.values())), "EU CSV")
