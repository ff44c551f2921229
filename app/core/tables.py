"""Tables every domain leans on: audit chain, sessions, login throttling, tokens, mail, workers."""

from piccolo.columns import (
    JSONB,
    BigInt,
    Boolean,
    Integer,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table


class AuditEvent(Table, tablename="audit_events"):
    """Append-only and hash-chained; the database refuses UPDATE, DELETE and TRUNCATE."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    seq = BigInt(unique=True, index=True)
    occurred_at = Timestamptz()
    actor_kind = Varchar(length=16)  # staff | client | system | anonymous
    actor_id = Varchar(length=64, null=True)
    actor_label = Varchar(length=255, default="")
    action = Varchar(length=80, index=True)
    subject_type = Varchar(length=40, index=True)
    subject_id = Varchar(length=64, null=True, index=True)
    before = JSONB(null=True)
    after = JSONB(null=True)
    ip = Varchar(length=64, null=True)
    user_agent = Varchar(length=400, null=True)
    prev_hash = Varchar(length=64)
    hash = Varchar(length=64)


class WebSession(Table, tablename="web_sessions"):
    """Server-side sessions; only the SHA-256 of the cookie value is stored."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    key_hash = Varchar(length=64, unique=True)
    user_kind = Varchar(length=16, index=True)  # staff | client
    user_id = Integer(index=True)
    created_at = Timestamptz()
    last_seen_at = Timestamptz()
    idle_expires_at = Timestamptz()
    absolute_expires_at = Timestamptz()
    mfa_passed = Boolean(default=False)
    ip = Varchar(length=64, null=True)
    user_agent = Varchar(length=400, null=True)


class LoginAttempt(Table, tablename="login_attempts"):
    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    portal = Varchar(length=16)
    email = Varchar(length=320, index=True)
    ip = Varchar(length=64, index=True)
    success = Boolean(default=False)
    created_at = Timestamptz(index=True)


class OneTimeToken(Table, tablename="one_time_tokens"):
    """Password-reset and e-mail-verification tokens: stored hashed, single use, short-lived."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    purpose = Varchar(length=24)
    user_kind = Varchar(length=16)
    user_id = Integer()
    token_hash = Varchar(length=64, unique=True)
    created_at = Timestamptz()
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)


class RecoveryCode(Table, tablename="recovery_codes"):
    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    user_kind = Varchar(length=16)
    user_id = Integer(index=True)
    code_hash = Varchar(length=64)
    used_at = Timestamptz(null=True, default=None)


class OutboundEmail(Table, tablename="outbound_emails"):
    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    to_addr = Varchar(length=320)
    subject = Varchar(length=300)
    body_text = Text()
    body_html = Text(default="")
    template = Varchar(length=80)
    status = Varchar(length=16, default="queued", index=True)  # queued|sending|sent|failed|outbox
    attempts = Integer(default=0)
    last_error = Text(default="")
    created_at = Timestamptz()
    claimed_at = Timestamptz(null=True, default=None)
    sent_at = Timestamptz(null=True, default=None)


class WorkerHeartbeat(Table, tablename="worker_heartbeats"):
    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    worker_id = Varchar(length=80, unique=True)
    hostname = Varchar(length=255)
    pid = Integer()
    started_at = Timestamptz()
    seen_at = Timestamptz()
