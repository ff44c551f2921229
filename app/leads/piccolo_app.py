from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.leads.tables import LeadSource

APP_CONFIG = AppConfig(
    app_name="leads",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "leads"),
    table_classes=[LeadSource],
    migration_dependencies=["app.clients.piccolo_app", "app.integrations.piccolo_app"],
    commands=[],
)
