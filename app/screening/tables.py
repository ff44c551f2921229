from piccolo.columns import (
    JSONB,
    BigInt,
    Boolean,
    Bytea,
    DoublePrecision,
    ForeignKey,
    Integer,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from app.clients.tables import Client
from app.staff.tables import StaffUser

SOURCES = ("ofac", "un", "eu")
CASE_STATUSES = ("open", "true_match", "false_positive")
SUBJECT_TYPES = ("client", "director", "ubo", "company")


class SanctionsList(Table, tablename="screening_lists"):
    """One loaded release of an official list. Kept after a newer one replaces it (`active` false):
    a case must still show the entry it was opened on."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    source = Varchar(length=8, index=True)
    format = Varchar(length=16)
    version = Varchar(length=64)  # as the file states it; the fingerprint's start when it states none
    published_at = Timestamptz(null=True, default=None)
    sha256 = Varchar(length=64, unique=True)
    filename = Varchar(length=255, default="")
    entry_count = Integer(default=0)
    active = Boolean(default=False, index=True)
    loaded_at = Timestamptz()
    loaded_by = Varchar(length=320, default="")  # the actor's label (staff e-mail, or the CLI)


class SanctionsEntry(Table, tablename="screening_entries"):
    """A person, entity, vessel or aircraft of one list release, as the list describes it."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    sanctions_list = ForeignKey(references=SanctionsList, on_delete=OnDelete.cascade, index=True)
    external_id = Varchar(length=64)
    kind = Varchar(length=16)  # person | entity | vessel | aircraft
    primary_name = Text()
    aliases = JSONB(default=[])
    dates_of_birth = JSONB(default=[])  # "YYYY-MM-DD" | "YYYY" | "YYYY..YYYY"
    nationalities = JSONB(default=[])  # ISO alpha-2 where known, else as written
    programmes = JSONB(default=[])
    remarks = Text(default="")


class ScreeningCase(Table, tablename="screening_cases"):
    """A hit at or above the threshold, for a person to decide. `open_key` is set while the case is
    open and unique, so one subject has at most one open case per listed entry (across releases:
    the key names the source and the list's own id, not our row)."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    subject_type = Varchar(length=16)  # client | director | ubo
    subject_id = Integer(index=True)
    client = ForeignKey(references=Client, on_delete=OnDelete.restrict, null=True, index=True)
    subject_name = Varchar(length=400)
    entry = ForeignKey(references=SanctionsEntry, on_delete=OnDelete.restrict)
    sanctions_list = ForeignKey(references=SanctionsList, on_delete=OnDelete.restrict)
    source = Varchar(length=8)
    external_id = Varchar(length=64)
    score = DoublePrecision()
    explanation = JSONB()
    fingerprint = Varchar(length=64)  # the subject's screened data and the entry's, hashed
    status = Varchar(length=16, default="open", index=True)
    open_key = Varchar(length=200, null=True, default=None, unique=True)
    opened_at = Timestamptz()
    decided_by = ForeignKey(references=StaffUser, null=True, on_delete=OnDelete.restrict)
    decided_at = Timestamptz(null=True, default=None)
    reason = Text(default="")


class ComplianceBlock(Table, tablename="compliance_blocks"):
    """A client compliance has blocked (a true sanctions match). Rights checks ask `is_blocked`.
    `active_client` holds the client id while the block stands: at most one standing block each."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, on_delete=OnDelete.restrict, index=True)
    case = ForeignKey(references=ScreeningCase, null=True, on_delete=OnDelete.restrict)
    reason = Text(default="")
    active_client = Integer(null=True, default=None, unique=True)
    created_by = ForeignKey(references=StaffUser, null=True, on_delete=OnDelete.restrict)
    created_at = Timestamptz()
    lifted_at = Timestamptz(null=True, default=None)


class ScreenedSubject(Table, tablename="screening_subjects"):
    """When a subject was last screened, against which releases, with what data: "clear" is a fact
    with a date, not the absence of a case."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    subject_key = Varchar(length=40, unique=True)  # "client:42"
    subject_type = Varchar(length=16)
    subject_id = Integer()
    client = ForeignKey(references=Client, on_delete=OnDelete.cascade, null=True, index=True)
    name = Varchar(length=400)
    list_ids = JSONB(default=[])
    hits = Integer(default=0)
    screened_at = Timestamptz()


class ScreeningRun(Table, tablename="screening_runs"):
    """Re-screening every client against a newly loaded release, batch by batch. `position` is the
    last client id handled: a retried or resumed job carries on after it."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    sanctions_list = ForeignKey(references=SanctionsList, on_delete=OnDelete.cascade, index=True)
    status = Varchar(length=16, default="queued", index=True)  # queued | running | finished | failed
    total = Integer(default=0)
    done = Integer(default=0)
    position = Integer(default=0)
    hits = Integer(default=0)
    cases_opened = Integer(default=0)
    pairs_scored = BigInt(default=0)
    error = Text(default="")
    created_at = Timestamptz()
    updated_at = Timestamptz()
    started_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)


class ListUpload(Table, tablename="screening_uploads"):
    """A list file uploaded in the console, loaded by a job; the file is dropped once it is read."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    filename = Varchar(length=255)
    format = Varchar(length=16, default="")  # as chosen; empty: detect
    content = Bytea(null=True, default=None)
    size = Integer(default=0)
    sha256 = Varchar(length=64)
    uploaded_by = ForeignKey(references=StaffUser, on_delete=OnDelete.restrict)
    status = Varchar(length=16, default="queued")  # queued | loaded | duplicate | failed
    message = Text(default="")
    sanctions_list = ForeignKey(references=SanctionsList, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()
    finished_at = Timestamptz(null=True, default=None)
