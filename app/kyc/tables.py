"""KYC: the levels that gate a client's rights, the documents that earn them, and each client's
profile (entity type, level, declared data).

Levels and document types are rows, not constants, so compliance can configure them; the
defaults (issue 4: levels 0–2 for individuals, a corporate ladder) are seeded by the migration.
"""

from piccolo.columns import (
    Array,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from app.clients.tables import Client
from app.staff.tables import StaffUser

ENTITY_TYPES = ("individual", "corporate")
CATEGORIES = ("identity", "address", "selfie", "source_of_funds", "corporate")
RIGHTS = ("portal", "demo_accounts", "live_accounts", "deposits", "withdrawals")
# A document's life: sides arrive (draft), all sides in (pending), a reviewer claims it (in_review),
# then a decision. Approved documents with an expiry date become expired when it passes.
STATUSES = ("draft", "pending", "in_review", "approved", "rejected", "reupload_requested", "expired")
SIDES = ("front", "back", "single")


class DocumentType(Table, tablename="kyc_document_types"):
    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    code = Varchar(length=40, unique=True)
    name = Varchar(length=100)
    category = Varchar(length=20)
    two_sided = Boolean(default=False)
    has_expiry = Boolean(default=False)
    entity_type = Varchar(length=12, default="individual")
    active = Boolean(default=True)
    sort_order = Integer(default=100)


class KycLevel(Table, tablename="kyc_levels"):
    """Rank n of an entity type's ladder: reached when its categories (and those of every rank
    below) have an approved, unexpired document, and the appropriateness test when required."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    entity_type = Varchar(length=12, default="individual")
    rank = Integer()
    name = Varchar(length=100)
    required_categories = Array(base_column=Varchar(length=20), default=list)
    requires_appropriateness = Boolean(default=False)
    rights = Array(base_column=Varchar(length=20), default=list)
    deposit_limit = Numeric(digits=(18, 2), null=True, default=None)  # None: no limit
    deposit_limit_currency = Varchar(length=3, default="USD")


class KycProfile(Table, tablename="kyc_profiles"):
    """One per client, created on first use: what they declared and the level they hold."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, unique=True, on_delete=OnDelete.cascade)
    entity_type = Varchar(length=12, default="individual")
    level = Integer(default=0)
    level_changed_at = Timestamptz(null=True, default=None)
    date_of_birth = Date(null=True, default=None)
    nationality = Varchar(length=2, default="")
    address = Text(default="")
    source_of_funds = Varchar(length=40, default="")
    appropriateness_score = Integer(null=True, default=None)
    appropriateness_at = Timestamptz(null=True, default=None)
    updated_at = Timestamptz()


class Document(Table, tablename="kyc_documents"):
    """One document a client submits (a passport: front only; an ID card: front and back)."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, index=True, on_delete=OnDelete.cascade)
    doc_type = ForeignKey(references=DocumentType)
    category = Varchar(length=20)
    status = Varchar(length=20, default="draft", index=True)
    created_at = Timestamptz()
    submitted_at = Timestamptz(null=True, default=None)  # all sides in: enters the review queue
    claimed_by = ForeignKey(references=StaffUser, null=True, default=None)
    claimed_at = Timestamptz(null=True, default=None)
    reviewed_by = ForeignKey(references=StaffUser, null=True, default=None)
    reviewed_at = Timestamptz(null=True, default=None)
    reason_code = Varchar(length=40, default="")
    client_message = Text(default="")
    doc_number = Varchar(length=60, default="")
    issuing_country = Varchar(length=2, default="")
    expires_on = Date(null=True, default=None)
    expiry_reminded_on = Date(null=True, default=None)


class DocumentFile(Table, tablename="kyc_document_files"):
    """One side of a document as stored: encrypted, under a random name, with its hashes."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    document = ForeignKey(references=Document, index=True, on_delete=OnDelete.cascade)
    side = Varchar(length=8)
    storage_name = Varchar(length=32, unique=True)
    mime = Varchar(length=40)
    size = Integer()
    received_sha256 = Varchar(length=64)
    stored_sha256 = Varchar(length=64)
    uploaded_at = Timestamptz()
