from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.integrations.tables import ApiKey, ApiKeyWindow

APP_CONFIG = AppConfig(
    app_name="integrations",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "integrations"),
    table_classes=[ApiKey, ApiKeyWindow],
    migration_dependencies=["app.staff.piccolo_app"],
    commands=[],
)
