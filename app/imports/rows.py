"""From a CSV record to client values: the column mapping, its guesses, and the per-row checks.

The checks are lead capture's own (`app.leads.services.validate`: e-mail, phone to E.164 with
phonenumbers, country to ISO 3166 alpha-2 with pycountry, language) and the tag rule of
`app.clients.tags`, so an imported client is held to exactly what a captured lead is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.clients.tags import clean_tag
from app.core.errors import FormErrors
from app.imports.tables import MODES
from app.leads.services import LeadData, validate

FIELDS: dict[str, str] = {
    "email": "E-mail",
    "first_name": "First name",
    "last_name": "Last name",
    "phone": "Phone",
    "country": "Country",
    "language": "Language",
    "tags": "Tags",
    "campaign": "Campaign",
    "utm_source": "UTM source",
    "utm_medium": "UTM medium",
    "utm_campaign": "UTM campaign",
    "utm_term": "UTM term",
    "utm_content": "UTM content",
}
PROFILE_FIELDS = ("first_name", "last_name", "phone", "country", "language")
SOURCE_FIELDS = ("campaign", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
REQUIRED = {
    "create": ("email", "first_name", "last_name"),
    "upsert": ("email", "first_name", "last_name"),
    "update": ("email",),
}
MODE_LABELS = {
    "create": "Create new clients (a row whose e-mail exists already is rejected)",
    "update": "Update existing clients (a row whose e-mail is unknown is rejected)",
    "upsert": "Create or update, matched by e-mail",
}
MAX_TAGS = 20
MAX_RAW_CELL = 1000  # what a rejected row keeps of each cell
MAX_RAW_CELLS = 250  # and of its cells

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "email": ("email", "emailaddress", "mail", "emailadresse"),
    "first_name": ("firstname", "first", "givenname", "forename", "fname", "vorname", "prenom"),
    "last_name": ("lastname", "last", "surname", "familyname", "lname", "nachname", "nom"),
    "phone": ("phone", "phonenumber", "mobile", "mobilephone", "mobilenumber", "tel", "telephone", "cell"),
    "country": ("country", "countrycode", "countryiso", "countryofresidence", "land", "pays"),
    "language": ("language", "lang", "languagecode", "sprache", "langue"),
    "tags": ("tags", "tag", "labels"),
    "campaign": ("campaign", "campaignname"),
    "utm_source": ("utmsource",),
    "utm_medium": ("utmmedium",),
    "utm_campaign": ("utmcampaign",),
    "utm_term": ("utmterm",),
    "utm_content": ("utmcontent",),
}
_BY_NAME = {name: f for f, names in _SYNONYMS.items() for name in names}
_TAG_SPLIT = re.compile(r"[,;|]")


def _normal(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def guess_mapping(header: list[str]) -> dict[int, str]:
    """Column index → field, from the header names; each field at most once (the first column wins)."""
    out: dict[int, str] = {}
    for i, name in enumerate(header):
        f = _BY_NAME.get(_normal(name))
        if f and f not in out.values():
            out[i] = f
    return out


@dataclass(frozen=True)
class Choice:
    mapping: dict[int, str]
    mode: str
    assign: str
    errors: dict[str, str] = field(default_factory=dict)


def parse_choice(form: Mapping[str, str], columns: int) -> Choice:
    """The mapping form: `col_<i>` → field, `mode`, `assign`; problems as field errors."""
    errors: dict[str, str] = {}
    mapping: dict[int, str] = {}
    used: dict[str, int] = {}
    for i in range(columns):
        f = (form.get(f"col_{i}") or "").strip()
        if not f:
            continue
        if f not in FIELDS:
            errors[f"col_{i}"] = "Choose a client field or “ignore”."
            continue
        if f in used:
            errors[f"col_{i}"] = f"{FIELDS[f]} is already taken by column {used[f] + 1}."
            continue
        used[f] = i
        mapping[i] = f
    mode = (form.get("mode") or "").strip()
    if mode not in MODES:
        errors["mode"] = "Choose what to do with each row."
        mode = "create"
    missing = [FIELDS[f] for f in REQUIRED[mode] if f not in used]
    if missing:
        errors["mapping"] = "Map a column to " + ", ".join(missing) + " (required)."
    elif mode == "update" and len(mapping) < 2:
        errors["mapping"] = (
            "Map at least one column besides the e-mail: there is nothing to update otherwise."
        )
    return Choice(mapping=mapping, mode=mode, assign=(form.get("assign") or "").strip(), errors=errors)


@dataclass
class Row:
    line: int
    cells: list[str]
    values: dict[str, str] = field(default_factory=dict)  # cleaned, only the mapped non-empty fields
    tags: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # field → problem ("" for the row itself)
    blank: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and not self.blank

    @property
    def email(self) -> str:
        return self.values.get("email", "")

    def reason(self, labels: Mapping[str, str] = FIELDS) -> str:
        return "; ".join(f"{labels[k]}: {v}" if k in labels else v for k, v in self.errors.items())

    def raw(self) -> list[str]:
        return [c[:MAX_RAW_CELL] for c in self.cells[:MAX_RAW_CELLS]]


def email_key(cells: list[str], mapping: dict[int, str]) -> str:
    """The e-mail of a record as the duplicate check compares it (before any other check)."""
    for i, f in mapping.items():
        if f == "email":
            return cells[i].strip().lower() if i < len(cells) else ""
    return ""


def check(line: int, cells: list[str], width: int, mapping: dict[int, str], mode: str) -> Row:
    """Clean one record with lead capture's rules. Empty cells are "no value": a new client gets the
    default, an existing one keeps what it has (an import never erases)."""
    row = Row(line=line, cells=cells)
    if not any(c.strip() for c in cells):
        row.blank = True
        return row
    extra = cells[width:]
    if any(c.strip() for c in extra):
        row.errors[""] = (
            f"The row has {len(cells)} values but the header has {width} columns "
            "(a delimiter inside a value that is not quoted?)."
        )
        return row
    raw = {f: (cells[i] if i < len(cells) else "").strip() for i, f in mapping.items()}
    lead = {f: v for f, v in raw.items() if f in LeadData.__dataclass_fields__}
    placeholders = set()
    if mode == "update":  # names may be left out or empty: the client keeps theirs
        for name in ("first_name", "last_name"):
            if not lead.get(name):
                lead[name] = "-"
                placeholders.add(name)
    try:
        cleaned = validate(LeadData(**lead))
    except FormErrors as exc:
        row.errors.update({f: msg for f, msg in exc.errors.items() if f in mapping.values()})
        if not row.errors:  # a rule on a field the file does not have (cannot happen, but never pass it)
            row.errors[""] = "; ".join(exc.errors.values())
        return row
    for f, value in raw.items():
        if f == "tags" or not value or f in placeholders:
            continue
        row.values[f] = getattr(cleaned, f)
    if "tags" in raw and raw["tags"]:
        tags: list[str] = []
        for part in _TAG_SPLIT.split(raw["tags"]):
            tag, problem = clean_tag(part)
            if problem:
                row.errors["tags"] = f"“{part.strip()[:50]}”: {problem}"
                return row
            if tag and tag not in tags:
                tags.append(tag)
        if len(tags) > MAX_TAGS:
            row.errors["tags"] = f"At most {MAX_TAGS} tags per client."
            return row
        row.tags = tags
    return row
