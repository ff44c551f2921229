from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.funding.tables import (
    ChainCursor,
    ChainTransaction,
    CryptoAddress,
    Deposit,
    FundingPolicy,
    FxRate,
    Hold,
    IdempotentRequest,
    LedgerAccount,
    LedgerPosting,
    LedgerTransaction,
    PaymentMethod,
    ReconciliationRun,
    StatementImport,
    StatementLine,
    Transfer,
    WebhookEvent,
    Withdrawal,
    WithdrawalApproval,
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
        FundingPolicy,
        FxRate,
        Deposit,
        Withdrawal,
        WithdrawalApproval,
        Transfer,
        IdempotentRequest,
        StatementImport,
        StatementLine,
        CryptoAddress,
        ChainTransaction,
        ChainCursor,
    ],
    migration_dependencies=["app.clients.piccolo_app", "app.trading.piccolo_app"],
    commands=[],
)
