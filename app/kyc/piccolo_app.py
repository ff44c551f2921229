from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.kyc.tables import (
    AppropriatenessOption,
    AppropriatenessQuestion,
    AppropriatenessResult,
    Company,
    CountryRisk,
    Document,
    DocumentFile,
    DocumentType,
    FundsSource,
    KycLevel,
    KycParameter,
    KycProfile,
    LeverageBand,
    RelatedPerson,
)

APP_CONFIG = AppConfig(
    app_name="kyc",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "kyc"),
    table_classes=[
        DocumentType,
        KycLevel,
        KycProfile,
        Document,
        DocumentFile,
        AppropriatenessQuestion,
        AppropriatenessOption,
        LeverageBand,
        AppropriatenessResult,
        KycParameter,
        CountryRisk,
        FundsSource,
        Company,
        RelatedPerson,
    ],
    migration_dependencies=[
        "app.clients.piccolo_app",
        "app.staff.piccolo_app",
        "app.workbench.piccolo_app",
    ],
    commands=[],
)
