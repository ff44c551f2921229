"""What a payment method must never say: limits in order, fees not negative, percents below 100.
Raw SQL runs before a migration's table operations, hence a migration of its own after 0005."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T15:31:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "funding_payment_methods: checks on kind, limits and fees"

TABLE = "funding_payment_methods"


class RawMethods(Table, tablename=TABLE):
    pass


CHECKS = {
    "kind": "kind IN ('card', 'ewallet', 'wire', 'crypto')",
    "names_present": "name <> '' AND provider <> '' AND currencies <> ''",
    "limits": "min_amount > 0 AND min_amount <= max_amount",
    "fees_not_negative": "broker_fee_percent >= 0 AND broker_fee_fixed >= 0 "
    "AND provider_fee_percent >= 0 AND provider_fee_fixed >= 0",
    "percents_below_100": "broker_fee_percent < 100 AND provider_fee_percent < 100",
    "kyc_level": "kyc_level >= 0",
}


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="funding", description=DESCRIPTION)

    async def add():
        for name, condition in CHECKS.items():
            await RawMethods.raw(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_{name} CHECK ({condition})")

    async def drop():
        for name in CHECKS:
            await RawMethods.raw(f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {TABLE}_{name}")

    manager.add_raw(add)
    manager.add_raw_backwards(drop)
    return manager
