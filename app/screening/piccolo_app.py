from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.screening.tables import (
    ComplianceBlock,
    ListUpload,
    SanctionsEntry,
    SanctionsList,
    ScreenedSubject,
    ScreeningCase,
    ScreeningRun,
)

APP_CONFIG = AppConfig(
    app_name="screening",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "screening"),
    table_classes=[
        SanctionsList,
        SanctionsEntry,
        ScreeningCase,
        ComplianceBlock,
        ScreenedSubject,
        ScreeningRun,
        ListUpload,
    ],
    migration_dependencies=["app.clients.piccolo_app", "app.staff.piccolo_app"],
    commands=[],
)
