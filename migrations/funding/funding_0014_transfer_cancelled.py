"""Transfers: `cancelled`, a client → client transfer its sender took back before finance decided
(the hold released, as for a rejection, but nobody refused it)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T19:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "transfers: status cancelled"


class Raw(Table, tablename="funding_transfers"):
    pass


STATEMENTS = [
    "ALTER TABLE funding_transfers DROP CONSTRAINT funding_transfers_status",
    "ALTER TABLE funding_transfers ADD CONSTRAINT funding_transfers_status CHECK (status IN "
    "('pending', 'awaiting_approval', 'done', 'failed', 'rejected', 'cancelled'))",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="funding", description=DESCRIPTION)

    async def add():
        for statement in STATEMENTS:
            await Raw.raw(statement)

    manager.add_raw(add)
    return manager
