from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.workbench.tables import Mention, Note, Task, TimelineEvent

APP_CONFIG = AppConfig(
    app_name="workbench",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "workbench"),
    table_classes=[Note, Mention, Task, TimelineEvent],
    migration_dependencies=["app.clients.piccolo_app", "app.staff.piccolo_app"],
    commands=[],
)
