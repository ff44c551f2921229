from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.trading.tables import (
    AccountType,
    BalanceOperation,
    Deal,
    Position,
    SyncGap,
    SyncState,
    TradingAccount,
    TradingServer,
)

APP_CONFIG = AppConfig(
    app_name="trading",
    migrations_folder_path=str(Path(__file__).resolve().parents[2] / "migrations" / "trading"),
    table_classes=[
        TradingServer,
        AccountType,
        TradingAccount,
        Deal,
        Position,
        BalanceOperation,
        SyncState,
        SyncGap,
    ],
    migration_dependencies=["app.clients.piccolo_app"],
    commands=[],
)
