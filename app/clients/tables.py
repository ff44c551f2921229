from piccolo.columns import Boolean, ForeignKey, Integer, Serial, Text, Timestamptz, Varchar
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
