from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.partners.tables import Attribution, Partner, ReferralClick

APP_CONFIG = AppConfig(
    app_name="partners",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "partners"),
    table_classes=[Partner, ReferralClick, Attribution],
    migration_dependencies=["app.clients.piccolo_app"],
    commands=[],
)
