from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.staff.tables import StaffUser

APP_CONFIG = AppConfig(
    app_name="staff",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "staff"),
    table_classes=[StaffUser],
    migration_dependencies=["app.core.piccolo_app"],
    commands=[],
)
