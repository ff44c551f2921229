from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.imports.tables import ImportRejection, ImportRun

APP_CONFIG = AppConfig(
    app_name="imports",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "imports"),
    table_classes=[ImportRun, ImportRejection],
    migration_dependencies=["app.clients.piccolo_app", "app.routing.piccolo_app", "app.staff.piccolo_app"],
    commands=[],
)
