"""Keyset indexes for the client list filtered by stage or by country (the default sort, newest first).

Measured on a million clients (bench/clients_bench.py): the list walks `clients_created_keyset`
newest first and filters as it goes, which is fast only while matches are spread evenly over time.
They are not: recent clients are mostly leads, older ones funded, active or dormant, and countries
arrive in waves, so "stage = dormant" or "stage = funded + a name" walked 100,000-200,000 rows
(10-25 ms, far more for a desk-scoped agent). With the filter as the leading column the walk stays
inside the matching rows: "dormant" 10 ms -> 0.3 ms, "funded + schmidt" 23 ms -> 8 ms, a country
outside an agent's desks 124 ms -> 15 ms. Each ends with id, as the cursor does.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T11:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "keyset indexes (stage, created_at, id) and (country, created_at, id) for the client list"

INDEXES = {
    "clients_stage_created": "(stage, created_at, id)",
    "clients_country_created": "(country, created_at, id)",
}


class ClientsRaw(Table, tablename="clients"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="clients", description=DESCRIPTION)

    async def add_indexes():
        for name, columns in INDEXES.items():
            await ClientsRaw.raw(f"CREATE INDEX IF NOT EXISTS {name} ON clients {columns}")

    async def drop_indexes():
        for name in INDEXES:
            await ClientsRaw.raw(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(add_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
