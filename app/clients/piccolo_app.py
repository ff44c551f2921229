from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.clients.tables import Client, ClientBulkRun, ClientMessage, ClientTag, StageChange

APP_CONFIG = AppConfig(
    app_name="clients",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "clients"),
    table_classes=[Client, ClientMessage, StageChange, ClientTag, ClientBulkRun],
    migration_dependencies=["app.staff.piccolo_app"],
    commands=[],
)
