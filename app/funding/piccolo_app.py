from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.funding.tables import (
    Hold,
    LedgerAccount,
    LedgerPosting,
    LedgerTransaction,
    PaymentMethod,
    ReconciliationRun,
    WebhookEvent,
)

APP_CONFIG = AppConfig(
    app_name="funding",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "funding"),
    table_classes=[
        LedgerAccount,
        LedgerTransaction,
        LedgerPosting,
        Hold,
        ReconciliationRun,
        WebhookEvent,
        PaymentMethod,
    ],
    migration_dependencies=["app.clients.piccolo_app", "app.trading.piccolo_app"],
    commands=[],
)
