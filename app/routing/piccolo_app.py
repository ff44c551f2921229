from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.routing.tables import Assignment, Desk, DeskMember, RoutingRule

APP_CONFIG = AppConfig(
    app_name="routing",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "routing"),
    table_classes=[Desk, DeskMember, RoutingRule, Assignment],
    migration_dependencies=["app.clients.piccolo_app", "app.staff.piccolo_app"],
    commands=[],
)
