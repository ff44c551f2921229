"""Defaults for the appropriateness questionnaire, leverage bands, country risk and sources of funds,
plus the constraints Piccolo cannot say. Everything seeded here is editable in the console."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T12:31:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "default questionnaire, leverage bands, FATF country risk, sources of funds; constraints"


class KycRaw(Table, tablename="kyc_profiles"):
    pass


# A MiFID II appropriateness test (art. 25(3)): experience, knowledge of leverage, margin and CFDs,
# and the financial situation. The points of each question's best answer add up to 100.
QUESTIONS = [
    (
        "cfd_experience",
        "How often have you traded leveraged products (CFDs, forex, futures) in the last three years?",
        "",
        [("Never", 0), ("A few times (fewer than 10 trades)", 5), ("Regularly (10 to 40 trades)", 10),
         ("Frequently (more than 40 trades)", 15)],
    ),
    (
        "other_instruments",
        "Which other financial instruments have you bought or sold yourself?",
        "Choose the most complex one.",
        [("None", 0), ("Investment funds or ETFs", 3), ("Shares or bonds", 6), ("Options or futures", 10)],
    ),
    (
        "background",
        "Do you have education or work experience related to financial markets?",
        "",
        [("No", 0), ("A qualification or course in finance or economics", 6),
         ("I work or have worked in financial services", 10)],
    ),
    (
        "leverage",
        "You open a position worth 10,000 USD with leverage of 1:20. How much margin do you need?",
        "",
        [("10,000 USD", 0), ("500 USD", 15), ("200 USD", 0), ("None", 0)],
    ),
    (
        "margin_call",
        "What can happen when your equity falls below the required margin?",
        "",
        [("Nothing until I close the position", 0),
         ("My positions may be closed automatically (stop-out)", 15),
         ("The broker lends me the difference", 0), ("I don't know", 0)],
    ),
    (
        "cfd_nature",
        "When you buy a CFD on a share, do you own the share?",
        "",
        [("Yes", 0), ("No: it is a contract on the change of the share's price", 10), ("I don't know", 0)],
    ),
    (
        "losses",
        "How much can you lose when trading with leverage?",
        "",
        [("Nothing: the broker limits my losses", 0), ("Only the margin of each position", 3),
         ("All the money in my account, quickly, because leverage magnifies losses", 15)],
    ),
    (
        "savings_share",
        "What share of your savings and investments would you put into leveraged trading?",
        "",
        [("More than half", 0), ("A quarter to a half", 4), ("A tenth to a quarter", 8),
         ("Less than a tenth", 10)],
    ),
]  # fmt: skip

BANDS = [
    # min score, max leverage, passed, label
    (0, 1, False, "Not appropriate: no leverage (1:1)"),
    (40, 10, True, "Basic knowledge: up to 1:10"),
    (70, 30, True, "Experienced: up to 1:30 (the ESMA retail maximum)"),
]

# FATF public statements of 24 October 2025 (the latest plenary of 2025): "High-Risk Jurisdictions
# subject to a Call for Action – October 2025" and "Jurisdictions under Increased Monitoring –
# 24 October 2025", fatf-gafi.org › Publications › High-risk and other monitored jurisdictions.
# Read through the summaries of the Labuan FSA (labuanfsa.gov.my, "FATF Publication on Global
# ML/TF Risk October 2025") and the Malta FIAU ("FATF Public Statements – 24th October 2025"):
# Burkina Faso, Mozambique, Nigeria and South Africa left the grey list at that plenary.
CALL_FOR_ACTION = ["KP", "IR", "MM"]
INCREASED_MONITORING = [
    "DZ", "AO", "BO", "BG", "CM", "CI", "CD", "HT", "KE", "LA",
    "LB", "MC", "NA", "NP", "SS", "SY", "VE", "VN", "VG", "YE",
]  # fmt: skip

FUNDS_SOURCES = [
    ("salary", "Salary or employment income", "low"),
    ("savings", "Savings", "low"),
    ("pension", "Pension", "low"),
    ("investments", "Returns on investments", "low"),
    ("business", "Business income or company profits", "medium"),
    ("property_sale", "Sale of property or other assets", "medium"),
    ("inheritance", "Inheritance or gift", "medium"),
    ("crypto", "Cryptocurrency", "high"),
    ("gambling", "Gambling or lottery winnings", "high"),
    ("other", "Other", "medium"),
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="kyc", description=DESCRIPTION)

    async def seed():
        await KycRaw.raw(
            "ALTER TABLE kyc_profiles ADD CONSTRAINT kyc_profiles_risk CHECK (risk IN ('', 'low', 'medium', 'high'))"
        )
        await KycRaw.raw(
            "ALTER TABLE kyc_profiles ADD CONSTRAINT kyc_profiles_entity_type "
            "CHECK (entity_type IN ('individual', 'corporate'))"
        )
        await KycRaw.raw(
            "CREATE INDEX kyc_profiles_risk_idx ON kyc_profiles (risk) WHERE risk IN ('medium', 'high')"
        )
        await KycRaw.raw(
            "ALTER TABLE kyc_country_risks ADD CONSTRAINT kyc_country_risks_risk CHECK (risk IN ('medium', 'high'))"
        )
        await KycRaw.raw(
            "ALTER TABLE kyc_funds_sources ADD CONSTRAINT kyc_funds_sources_risk CHECK (risk IN ('low', 'medium', 'high'))"
        )
        await KycRaw.raw(
            "ALTER TABLE kyc_leverage_bands ADD CONSTRAINT kyc_leverage_bands_range "
            "CHECK (min_score BETWEEN 0 AND 100 AND max_leverage >= 1)"
        )
        await KycRaw.raw(
            "ALTER TABLE kyc_related_persons ADD CONSTRAINT kyc_related_persons_role CHECK (role IN ('director', 'ubo'))"
        )
        await KycRaw.raw(
            "ALTER TABLE kyc_related_persons ADD CONSTRAINT kyc_related_persons_ownership "
            "CHECK (ownership IS NULL OR (ownership > 0 AND ownership <= 100))"
        )
        await KycRaw.raw(
            "CREATE INDEX kyc_appropriateness_results_latest ON kyc_appropriateness_results (client, taken_at DESC)"
        )
        for order, (code, text, help_text, options) in enumerate(QUESTIONS, start=1):
            rows = await KycRaw.raw(
                "INSERT INTO kyc_appropriateness_questions (code, text, help, sort_order, active) "
                "VALUES ({}, {}, {}, {}, true) RETURNING id",
                code, text, help_text, order * 10,
            )  # fmt: skip
            for position, (label, points) in enumerate(options, start=1):
                await KycRaw.raw(
                    "INSERT INTO kyc_appropriateness_options (question, label, points, sort_order) "
                    "VALUES ({}, {}, {}, {})",
                    rows[0]["id"], label, points, position * 10,
                )  # fmt: skip
        for min_score, leverage, passed, label in BANDS:
            await KycRaw.raw(
                "INSERT INTO kyc_leverage_bands (min_score, max_leverage, passed, label) VALUES ({}, {}, {}, {})",
                min_score, leverage, passed, label,
            )  # fmt: skip
        for codes, risk, source in (
            (CALL_FOR_ACTION, "high", "fatf_call_for_action"),
            (INCREASED_MONITORING, "medium", "fatf_increased_monitoring"),
        ):
            for code in codes:
                await KycRaw.raw(
                    "INSERT INTO kyc_country_risks (country, risk, source, note, updated_at) "
                    "VALUES ({}, {}, {}, 'FATF, 24 October 2025', now())",
                    code, risk, source,
                )  # fmt: skip
        for order, (code, label, risk) in enumerate(FUNDS_SOURCES, start=1):
            await KycRaw.raw(
                "INSERT INTO kyc_funds_sources (code, label, risk, sort_order, active) VALUES ({}, {}, {}, {}, true)",
                code, label, risk, order * 10,
            )  # fmt: skip

    async def unseed():
        for table in (
            "kyc_funds_sources",
            "kyc_country_risks",
            "kyc_leverage_bands",
            "kyc_appropriateness_options",
            "kyc_appropriateness_questions",
        ):
            await KycRaw.raw(f"DELETE FROM {table}")
        await KycRaw.raw("DROP INDEX IF EXISTS kyc_appropriateness_results_latest")
        await KycRaw.raw("DROP INDEX IF EXISTS kyc_profiles_risk_idx")
        for table, name in (
            ("kyc_related_persons", "kyc_related_persons_ownership"),
            ("kyc_related_persons", "kyc_related_persons_role"),
            ("kyc_leverage_bands", "kyc_leverage_bands_range"),
            ("kyc_funds_sources", "kyc_funds_sources_risk"),
            ("kyc_country_risks", "kyc_country_risks_risk"),
            ("kyc_profiles", "kyc_profiles_entity_type"),
            ("kyc_profiles", "kyc_profiles_risk"),
        ):
            await KycRaw.raw(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")

    manager.add_raw(seed)
    manager.add_raw_backwards(unseed)
    return manager
