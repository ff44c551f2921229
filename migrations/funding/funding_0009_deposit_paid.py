"""Deposits: what the client asked for when the provider paid a different amount, and when the
provider confirmed the money (a paid deposit waiting for an exchange rate stays pending)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T16:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "deposits: requested_amount, paid_at"


class Raw(Table, tablename="funding_deposits"):
    pass


STATEMENTS = [
    "ALTER TABLE funding_deposits ADD COLUMN requested_amount NUMERIC NULL DEFAULT NULL",
    "ALTER TABLE funding_deposits ADD COLUMN paid_at TIMESTAMPTZ NULL DEFAULT NULL",
    "ALTER TABLE funding_deposits ADD CONSTRAINT funding_deposits_requested CHECK "
    "(requested_amount IS NULL OR requested_amount > 0)",
    "CREATE INDEX funding_deposits_paid_pending ON funding_deposits (paid_at) "
    "WHERE status = 'pending' AND paid_at IS NOT NULL",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="funding", description=DESCRIPTION)

    async def add():
        for statement in STATEMENTS:
            await Raw.raw(statement)

    manager.add_raw(add)
    return manager
