"""Transfers: who asked (a client, or staff on a client's behalf), so that the officer approving a
client → client transfer is never the one who requested it; indexes for the operation hooks."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T16:33:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "transfers: requester_kind, requester_id, op indexes"


class Raw(Table, tablename="funding_transfers"):
    pass


STATEMENTS = [
    "ALTER TABLE funding_transfers ADD COLUMN requester_kind VARCHAR(8) NOT NULL DEFAULT 'client'",
    "ALTER TABLE funding_transfers ADD COLUMN requester_id INTEGER NULL DEFAULT NULL",
    "ALTER TABLE funding_transfers ADD CONSTRAINT funding_transfers_requester_kind CHECK "
    "(requester_kind IN ('client', 'staff', 'api', 'system'))",
    "ALTER TABLE funding_transfers ADD CONSTRAINT funding_transfers_shape CHECK ("
    "(kind = 'wallet_to_account' AND to_account_id IS NOT NULL AND from_account_id IS NULL) OR "
    "(kind = 'account_to_wallet' AND from_account_id IS NOT NULL AND to_account_id IS NULL) OR "
    "(kind = 'account_to_account' AND from_account_id IS NOT NULL AND to_account_id IS NOT NULL "
    "AND from_account_id <> to_account_id) OR "
    "(kind = 'client_to_client' AND to_client_id IS NOT NULL AND to_client_id <> client_id))",
    "CREATE INDEX funding_transfers_op ON funding_transfers (op_id) WHERE op_id <> ''",
    "CREATE INDEX funding_transfers_op_2 ON funding_transfers (op_id_2) WHERE op_id_2 <> ''",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="funding", description=DESCRIPTION)

    async def add():
        for statement in STATEMENTS:
            await Raw.raw(statement)

    manager.add_raw(add)
    return manager
