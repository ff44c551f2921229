from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.partners.tables import Attribution, AttributionChange, Partner, ReferralClick

APP_CONFIG = AppConfig(
    app_name="partners",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "partners"),
    table_classes=[Partner, ReferralClick, Attribution, AttributionChange],
    migration_dependencies=["app.clients.piccolo_app", "app.staff.piccolo_app"],
    commands=[],
)
