"""KYC: the levels that gate a client's rights, the documents that earn them, and each client's
profile (entity type, level, declared data).

Levels and document types are rows, not constants, so compliance can configure them; the
defaults (issue 4: levels 0–2 for individuals, a corporate ladder) are seeded by the migration.
"""

from piccolo.columns import (
    JSONB,
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
from app.workbench.tables import Task

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
    max_leverage = Integer(null=True, default=None)  # 1: no leverage; None: questionnaire not taken
    pep = Boolean(default=False)  # a politically exposed person, as compliance decided
    risk = Varchar(length=8, default="")  # low | medium | high; "" until first assessed (app.kyc.risk)
    risk_score = Integer(default=0)
    risk_factors = JSONB(default=[])  # the explanation: one entry per factor that counted
    risk_assessed_at = Timestamptz(null=True, default=None)
    risk_edd_task = ForeignKey(references=Task, null=True, default=None, on_delete=OnDelete.set_null)
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


# --- appropriateness (app.kyc.appropriateness) ---------------------------------------------------


class AppropriatenessQuestion(Table, tablename="kyc_appropriateness_questions"):
    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    code = Varchar(length=40, unique=True)
    text = Text()
    help = Text(default="")
    sort_order = Integer(default=100)
    active = Boolean(default=True)


class AppropriatenessOption(Table, tablename="kyc_appropriateness_options"):
    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    question = ForeignKey(references=AppropriatenessQuestion, index=True, on_delete=OnDelete.cascade)
    label = Text()
    points = Integer(default=0)
    sort_order = Integer(default=100)


class LeverageBand(Table, tablename="kyc_leverage_bands"):
    """From `min_score` (0–100) up to the next band: the most leverage the client may get."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    min_score = Integer(unique=True)
    max_leverage = Integer()  # 1 means 1:1, no leverage
    passed = Boolean(default=True)
    label = Varchar(length=100, default="")


class AppropriatenessResult(Table, tablename="kyc_appropriateness_results"):
    """One completed questionnaire, with the questions and answers as the client saw them."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, index=True, on_delete=OnDelete.cascade)
    taken_at = Timestamptz()
    points = Integer()
    max_points = Integer()
    score = Integer()  # points as a share of the most a client could score, 0–100
    max_leverage = Integer()
    passed = Boolean()
    band_label = Varchar(length=100, default="")
    answers = JSONB(default=[])


class KycParameter(Table, tablename="kyc_parameters"):
    """A setting compliance changes in the console (cooldown, risk thresholds); typed and bounded
    by `app.kyc.parameters.SPECS`, which also holds each default."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    key = Varchar(length=60, unique=True)
    value = Varchar(length=60)
    updated_at = Timestamptz()
    updated_by = ForeignKey(references=StaffUser, null=True, default=None, on_delete=OnDelete.set_null)


# --- risk (app.kyc.risk) -------------------------------------------------------------------------

RISK_LEVELS = ("low", "medium", "high")


class CountryRisk(Table, tablename="kyc_country_risks"):
    """A jurisdiction compliance rates above low (seeded with the FATF lists); absent means low."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    country = Varchar(length=2, unique=True)
    risk = Varchar(length=8)  # medium | high
    source = Varchar(length=40, default="")  # fatf_call_for_action | fatf_increased_monitoring | internal
    note = Text(default="")
    updated_at = Timestamptz()
    updated_by = ForeignKey(references=StaffUser, null=True, default=None, on_delete=OnDelete.set_null)


class FundsSource(Table, tablename="kyc_funds_sources"):
    """A source of funds a client may declare, and the risk compliance attaches to it."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    code = Varchar(length=40, unique=True)
    label = Varchar(length=100)
    risk = Varchar(length=8, default="low")
    sort_order = Integer(default=100)
    active = Boolean(default=True)


# --- corporate clients (app.kyc.corporate) -------------------------------------------------------

PERSON_ROLES = ("director", "ubo")  # as app.screening's subject types


class Company(Table, tablename="kyc_companies"):
    """The company a corporate client declares."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, unique=True, on_delete=OnDelete.cascade)
    name = Varchar(length=200)
    registration_number = Varchar(length=60)
    country = Varchar(length=2)
    updated_at = Timestamptz()


class RelatedPerson(Table, tablename="kyc_related_persons"):
    """A director or ultimate beneficial owner of a corporate client; removed ones are kept
    (`removed_at`), since their screening and the declaration history must stay explainable."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, index=True, on_delete=OnDelete.cascade)
    role = Varchar(length=8)  # director | ubo
    full_name = Varchar(length=200)
    date_of_birth = Date()
    nationality = Varchar(length=2)
    ownership = Numeric(digits=(5, 2), null=True, default=None)  # per cent, UBOs only
    created_at = Timestamptz()
    updated_at = Timestamptz()
    removed_at = Timestamptz(null=True, default=None)
