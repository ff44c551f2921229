from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.views.tables import SavedView

APP_CONFIG = AppConfig(
    app_name="views",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "views"),
    table_classes=[SavedView],
    migration_dependencies=["app.staff.piccolo_app", "app.routing.piccolo_app"],
    commands=[],
)
