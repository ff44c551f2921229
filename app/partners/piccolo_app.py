from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.partners.tables import Partner

APP_CONFIG = AppConfig(
    app_name="partners",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "partners"),
    table_classes=[Partner],
    migration_dependencies=["app.clients.piccolo_app"],
    commands=[],
)
