"""The default KYC ladder (issue 4) and document types, plus the constraints Piccolo cannot say."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T12:21:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "default KYC levels and document types; queue index"


class KycRaw(Table, tablename="kyc_levels"):
    pass


DOCUMENT_TYPES = [
    # code, name, category, two_sided, has_expiry, entity_type, sort_order
    ("passport", "Passport", "identity", False, True, "individual", 10),
    ("id_card", "National identity card", "identity", True, True, "individual", 20),
    ("driving_licence", "Driving licence", "identity", True, True, "individual", 30),
    ("utility_bill", "Utility bill (less than 3 months old)", "address", False, False, "individual", 40),
    ("bank_statement", "Bank statement (less than 3 months old)", "address", False, False, "individual", 50),
    ("selfie", "Selfie holding your ID", "selfie", False, False, "individual", 60),
    ("source_of_funds", "Proof of source of funds", "source_of_funds", False, False, "any", 70),
    (
        "incorporation_certificate",
        "Certificate of incorporation",
        "corporate",
        False,
        False,
        "corporate",
        110,
    ),
    ("register_of_directors", "Register of directors", "corporate", False, False, "corporate", 120),
    (
        "ubo_declaration",
        "Ultimate beneficial owners declaration",
        "corporate",
        False,
        False,
        "corporate",
        130,
    ),
    ("company_address", "Proof of the company's address", "address", False, False, "corporate", 140),
    ("director_passport", "Passport of a director", "identity", False, True, "corporate", 150),
]

LEVELS = [
    # entity_type, rank, name, categories, appropriateness, rights, deposit limit (USD; None: none)
    ("individual", 0, "Registered", [], False, ["portal", "demo_accounts"], "0"),
    ("individual", 1, "Identity verified", ["identity"], False,
     ["portal", "demo_accounts", "live_accounts", "deposits"], "2000"),
    ("individual", 2, "Fully verified", ["identity", "address"], True,
     ["portal", "demo_accounts", "live_accounts", "deposits", "withdrawals"], None),
    ("corporate", 0, "Registered", [], False, ["portal", "demo_accounts"], "0"),
    ("corporate", 1, "Company verified", ["corporate", "identity"], False,
     ["portal", "demo_accounts", "live_accounts", "deposits"], "10000"),
    ("corporate", 2, "Fully verified", ["corporate", "identity", "address"], True,
     ["portal", "demo_accounts", "live_accounts", "deposits", "withdrawals"], None),
]  # fmt: skip


def _array(items: list[str]) -> str:
    return "ARRAY[" + ",".join(f"'{i}'" for i in items) + "]::varchar[]" if items else "ARRAY[]::varchar[]"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="kyc", description=DESCRIPTION)

    async def seed():
        await KycRaw.raw("ALTER TABLE kyc_levels ADD CONSTRAINT kyc_levels_rank UNIQUE (entity_type, rank)")
        await KycRaw.raw(
            "ALTER TABLE kyc_documents ADD CONSTRAINT kyc_documents_status CHECK (status IN "
            "('draft','pending','in_review','approved','rejected','reupload_requested','expired'))"
        )
        await KycRaw.raw(
            "ALTER TABLE kyc_document_files ADD CONSTRAINT kyc_document_files_side UNIQUE (document, side)"
        )
        await KycRaw.raw(
            "CREATE INDEX kyc_documents_queue ON kyc_documents (submitted_at, id) "
            "WHERE status IN ('pending', 'in_review')"
        )
        await KycRaw.raw(
            "CREATE INDEX kyc_documents_expiry ON kyc_documents (expires_on) WHERE status = 'approved'"
        )
        for code, name, category, two_sided, has_expiry, entity, order in DOCUMENT_TYPES:
            await KycRaw.raw(
                "INSERT INTO kyc_document_types (code, name, category, two_sided, has_expiry, entity_type, "
                "active, sort_order) VALUES ({}, {}, {}, {}, {}, {}, true, {})",
                code, name, category, two_sided, has_expiry, entity, order,
            )  # fmt: skip
        for entity, rank, name, categories, appropriateness, rights, limit in LEVELS:
            await KycRaw.raw(
                "INSERT INTO kyc_levels (entity_type, rank, name, required_categories, "
                "requires_appropriateness, rights, deposit_limit, deposit_limit_currency) "
                f"VALUES ({{}}, {{}}, {{}}, {_array(categories)}, {{}}, {_array(rights)}, "
                "{}::numeric, 'USD')",
                entity, rank, name, appropriateness, limit,
            )  # fmt: skip

    async def unseed():
        await KycRaw.raw("DELETE FROM kyc_levels")
        await KycRaw.raw("DELETE FROM kyc_document_types")
        await KycRaw.raw("DROP INDEX IF EXISTS kyc_documents_queue")
        await KycRaw.raw("DROP INDEX IF EXISTS kyc_documents_expiry")
        await KycRaw.raw("ALTER TABLE kyc_document_files DROP CONSTRAINT IF EXISTS kyc_document_files_side")
        await KycRaw.raw("ALTER TABLE kyc_documents DROP CONSTRAINT IF EXISTS kyc_documents_status")
        await KycRaw.raw("ALTER TABLE kyc_levels DROP CONSTRAINT IF EXISTS kyc_levels_rank")

    manager.add_raw(seed)
    manager.add_raw_backwards(unseed)
    return manager
