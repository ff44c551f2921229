from piccolo.columns import JSONB, Boolean, ForeignKey, Integer, Serial, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from app.staff.tables import StaffUser

STAGES = ("lead", "registered", "kyc_pending", "kyc_approved", "funded", "active", "dormant", "churned")


class Client(Table, tablename="clients"):
    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    email = Varchar(length=320, unique=True)
    first_name = Varchar(length=100)
    last_name = Varchar(length=100)
    phone = Varchar(length=32, default="")
    country = Varchar(length=2, default="")
    language = Varchar(length=8, default="en")
    password_hash = Varchar(length=255, null=True, default=None)
    email_verified_at = Timestamptz(null=True, default=None)
    stage = Varchar(length=16, default="lead", index=True)
    stage_changed_at = Timestamptz()
    is_active = Boolean(default=True)
    totp_secret = Varchar(length=64, null=True, default=None)
    totp_enabled = Boolean(default=False)
    totp_last_step = Integer(default=0)
    created_at = Timestamptz()
    last_login_at = Timestamptz(null=True, default=None)
    password_changed_at = Timestamptz(null=True, default=None)


class ClientMessage(Table, tablename="client_messages"):
    """A message from staff to a client, read in the portal inbox."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, index=True)
    sender = ForeignKey(references=StaffUser, null=True)
    subject = Varchar(length=200)
    body = Text()
    created_at = Timestamptz()
    read_at = Timestamptz(null=True, default=None)


class StageChange(Table, tablename="client_stage_changes"):
    """One move of a client from one lifecycle stage to another (from_stage NULL: created at to_stage)."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, index=True)
    from_stage = Varchar(length=16, null=True, default=None)
    to_stage = Varchar(length=16)
    reason = Text(default="")
    actor_kind = Varchar(length=16)
    actor_id = Varchar(length=64, null=True, default=None)
    actor_label = Varchar(length=320, default="")
    changed_at = Timestamptz()


class ClientTag(Table, tablename="client_tags"):
    """A short label on a client. Stored normalised (trimmed, single spaces, lower case), so one
    tag is one row per client whatever case it was typed in; unique (client, tag) by index."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, on_delete=OnDelete.cascade)
    tag = Varchar(length=40, index=True)
    created_at = Timestamptz()
    created_by = ForeignKey(references=StaffUser, null=True, on_delete=OnDelete.set_null)


class ClientBulkRun(Table, tablename="client_bulk_runs"):
    """One bulk action over a selection of clients, and how far it got: a reload shows the state,
    and a retried job resumes after `position` (the last client id it handled)."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    staff = ForeignKey(references=StaffUser, on_delete=OnDelete.cascade, index=True)
    action = Varchar(length=24)
    params = JSONB()
    total = Integer(default=0)
    done = Integer(default=0)
    failed = Integer(default=0)
    position = Integer(default=0)
    status = Varchar(length=16, default="queued")  # queued | running | finished
    failures = JSONB(default=[])  # [{client_id, reason}], capped
    created_at = Timestamptz()
    updated_at = Timestamptz()
    finished_at = Timestamptz(null=True, default=None)
