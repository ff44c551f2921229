"""The natural keys sync relies on (a deal ticket or position ticket is stored once per server;
a login belongs to one account per server) and the indexes reports and the IB commission engine
query deals by (client, time) and (login, time)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T13:31:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "unique (server, deal), (server, position), (server, login); deal time indexes"

STATEMENTS = (
    "CREATE UNIQUE INDEX IF NOT EXISTS trading_deals_server_deal ON trading_deals (server_id, deal)",
    "CREATE INDEX IF NOT EXISTS trading_deals_login_time ON trading_deals (login, time)",
    "CREATE INDEX IF NOT EXISTS trading_deals_client_time ON trading_deals (client_id, time)",
    "CREATE INDEX IF NOT EXISTS trading_deals_time ON trading_deals (time)",
    "CREATE UNIQUE INDEX IF NOT EXISTS trading_positions_server_position "
    "ON trading_positions (server_id, position)",
    "CREATE UNIQUE INDEX IF NOT EXISTS trading_accounts_server_login "
    "ON trading_accounts (server, login) WHERE login IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS trading_balance_operations_open "
    "ON trading_balance_operations (status) WHERE status IN ('pending', 'sending')",
    "ALTER TABLE trading_balance_operations ADD CONSTRAINT trading_balance_operations_amount_nonzero "
    "CHECK (amount <> 0)",
    "ALTER TABLE trading_accounts ADD CONSTRAINT trading_accounts_status_known "
    "CHECK (status IN ('pending', 'active', 'failed', 'archived'))",
    "ALTER TABLE trading_balance_operations ADD CONSTRAINT trading_balance_operations_status_known "
    "CHECK (status IN ('pending', 'sending', 'done', 'failed'))",
)


class Raw(Table, tablename="trading_deals"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="trading", description=DESCRIPTION)

    async def add():
        for statement in STATEMENTS:
            await Raw.raw(statement)

    async def drop():
        for name in (
            "trading_deals_server_deal",
            "trading_deals_login_time",
            "trading_deals_client_time",
            "trading_deals_time",
            "trading_positions_server_position",
            "trading_accounts_server_login",
            "trading_balance_operations_open",
        ):
            await Raw.raw(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(add)
    manager.add_raw_backwards(drop)
    return manager
