from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.kyc.tables import Document, DocumentFile, DocumentType, KycLevel, KycProfile

APP_CONFIG = AppConfig(
    app_name="kyc",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "kyc"),
    table_classes=[DocumentType, KycLevel, KycProfile, Document, DocumentFile],
    migration_dependencies=["app.clients.piccolo_app", "app.staff.piccolo_app"],
    commands=[],
)
