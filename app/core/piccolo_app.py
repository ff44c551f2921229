from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.core.tables import (
    AuditEvent,
    LoginAttempt,
    OneTimeToken,
    OutboundEmail,
    RecoveryCode,
    WebSession,
    WorkerHeartbeat,
)

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "core"

APP_CONFIG = AppConfig(
    app_name="core",
    migrations_folder_path=str(MIGRATIONS),
    table_classes=[
        AuditEvent,
        WebSession,
        LoginAttempt,
        OneTimeToken,
        RecoveryCode,
        OutboundEmail,
        WorkerHeartbeat,
    ],
    migration_dependencies=[],
    commands=[],
)
