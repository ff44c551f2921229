"""What the staff client list was asked for, parsed strictly from the URL query.

A bad value never fails the page: it is dropped, and a note says so, so a mistyped or stale
bookmark still shows a list (and shows why it is wider than expected).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import urlencode

from app.clients.tables import STAGES
from app.clients.tags import clean_tag

SORTS = ("created", "name", "stage")
COLUMNS = {
    "email": "E-mail",
    "phone": "Phone",
    "country": "Country",
    "language": "Language",
    "owner": "Owner",
    "desk": "Desk",
    "ib": "IB",
    "tags": "Tags",
    "verified": "Verified",
    "created": "Created",
}
DEFAULT_COLUMNS = ("email", "country", "owner", "created")
DEFAULT_PER = 50
MAX_PER = 200

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,4})?$")
_IB_CODE = re.compile(r"^[A-Za-z0-9_-]{1,24}$")


@dataclass(frozen=True)
class ClientFilters:
    q: str = ""
    stage: str = ""
    owner: int | None = None  # staff id; 0 = no owner (the desk pool)
    desk: int | None = None  # desk id; 0 = no desk
    country: str = ""
    language: str = ""
    ib: str = ""
    tag: str = ""  # normalised (lower case), as tags are stored
    created_from: date | None = None
    created_to: date | None = None
    sort: str = "created"
    direction: str = "desc"
    after: str | int | datetime | None = None  # sort key of the last row of the previous page
    after_id: int | None = None
    per: int = DEFAULT_PER
    cols: tuple[str, ...] = DEFAULT_COLUMNS
    cols_given: bool = False
    notes: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, params: Mapping[str, Sequence[str]]) -> ClientFilters:
        notes: list[str] = []

        def one(name: str) -> str:
            values = params.get(name) or []
            return values[-1].strip() if values else ""

        q = one("q")[:200]
        stage = one("stage")
        if stage and stage not in STAGES:
            notes.append(f"Unknown stage “{stage}” ignored.")
            stage = ""
        owner = _id_or_none(one("owner"), "owner", notes)
        desk = _id_or_none(one("desk"), "desk", notes)
        country = one("country").upper()
        if country and not _COUNTRY.match(country):
            notes.append(f"Country “{country}” is not a two-letter code; ignored.")
            country = ""
        language = one("language").lower()
        if language and not _LANGUAGE.match(language):
            notes.append(f"Language “{language}” is not a language code; ignored.")
            language = ""
        ib = one("ib")
        if ib and not _IB_CODE.match(ib):
            notes.append("That IB code cannot exist; ignored.")
            ib = ""
        tag, problem = clean_tag(one("tag"))
        if problem:
            notes.append(f"Tag “{one('tag')[:60]}” ignored: {problem}")
            tag = ""
        created_from = _date(one("created_from"), "Created from", notes)
        created_to = _date(one("created_to"), "Created to", notes)
        if created_from and created_to and created_from > created_to:
            notes.append("“Created from” is after “Created to”; the range was ignored.")
            created_from = created_to = None
        sort = one("sort") or "created"
        if sort not in SORTS:
            notes.append(f"Cannot sort by “{sort}”; sorted by created date.")
            sort = "created"
        direction = one("dir") or ("asc" if sort == "name" else "desc")
        if direction not in ("asc", "desc"):
            notes.append("Sort direction must be asc or desc; used the default.")
            direction = "asc" if sort == "name" else "desc"
        per = DEFAULT_PER
        if raw_per := one("per"):
            if raw_per.isdigit() and 1 <= int(raw_per) <= MAX_PER:
                per = int(raw_per)
            else:
                notes.append(f"Page size must be between 1 and {MAX_PER}; showing {DEFAULT_PER}.")
        after, after_id = _cursor(sort, one("after"), one("after_id"), notes)
        cols_given = "cols" in params
        cols: tuple[str, ...] = DEFAULT_COLUMNS
        if cols_given:
            asked = [c for v in params.get("cols") or [] for c in v.split(",") if c.strip()]
            unknown = sorted({c for c in asked if c not in COLUMNS})
            if unknown:
                notes.append(f"Unknown column(s) ignored: {', '.join(unknown)}.")
            cols = tuple(c for c in COLUMNS if c in asked)
        return cls(
            q=q,
            stage=stage,
            owner=owner,
            desk=desk,
            country=country,
            language=language,
            ib=ib,
            tag=tag,
            created_from=created_from,
            created_to=created_to,
            sort=sort,
            direction=direction,
            after=after,
            after_id=after_id,
            per=per,
            cols=cols,
            cols_given=cols_given,
            notes=tuple(notes),
        )

    def query(self, **cursor: str | int) -> str:
        """This list as a URL query (without the page cursor unless given): for links and views."""
        pairs: list[tuple[str, str]] = []
        for key, value in (
            ("q", self.q),
            ("stage", self.stage),
            ("owner", "" if self.owner is None else str(self.owner)),
            ("desk", "" if self.desk is None else str(self.desk)),
            ("country", self.country),
            ("language", self.language),
            ("ib", self.ib),
            ("tag", self.tag),
            ("created_from", self.created_from.isoformat() if self.created_from else ""),
            ("created_to", self.created_to.isoformat() if self.created_to else ""),
        ):
            if value:
                pairs.append((key, value))
        if self.sort != "created" or self.direction != "desc":
            pairs += [("sort", self.sort), ("dir", self.direction)]
        if self.per != DEFAULT_PER:
            pairs.append(("per", str(self.per)))
        if self.cols_given:
            pairs.append(("cols", ",".join(self.cols)))
        pairs += [(k, str(v)) for k, v in cursor.items()]
        return urlencode(pairs)


def _id_or_none(raw: str, label: str, notes: list[str]) -> int | None:
    if not raw:
        return None
    if raw == "none":
        return 0
    if raw.isdigit() and 0 < int(raw) < 2**31:
        return int(raw)
    notes.append(f"Unknown {label} “{raw}” ignored.")
    return None


def _date(raw: str, label: str, notes: list[str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        notes.append(f"{label} “{raw}” is not a date (YYYY-MM-DD); ignored.")
        return None


def _cursor(
    sort: str, raw: str, raw_id: str, notes: list[str]
) -> tuple[str | int | datetime | None, int | None]:
    if not raw and not raw_id:
        return None, None
    bad = (None, None)
    if not (raw_id.isdigit() and int(raw_id) < 2**31):
        notes.append("The page link was not valid; showing the first page.")
        return bad
    key: str | int | datetime
    if sort == "created":
        try:
            key = datetime.fromisoformat(raw)
        except ValueError:
            notes.append("The page link was not valid; showing the first page.")
            return bad
        if key.tzinfo is None:
            key = key.replace(tzinfo=UTC)
    elif sort == "stage":
        if not (raw.isdigit() and 1 <= int(raw) <= len(STAGES)):
            notes.append("The page link was not valid; showing the first page.")
            return bad
        key = int(raw)
    else:
        key = raw[:201]
    return key, int(raw_id)
