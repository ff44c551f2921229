"""Index-only reads of an agent's (or a desk's) clients, for the client list filtered by owner or
desk plus a search term: the list then starts from those clients instead of walking the whole book
(bench/clients_bench.py, a million clients: "owner + 'mar'" 220 ms -> under 60 ms)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T12:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "(owner, client) and (desk, owner, client) indexes on routing_assignments"


class AssignmentRaw(Table, tablename="routing_assignments"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="routing", description=DESCRIPTION)

    async def add():
        await AssignmentRaw.raw(
            "CREATE INDEX IF NOT EXISTS routing_assignments_owner_client ON routing_assignments (owner, client)"
        )
        await AssignmentRaw.raw(
            "CREATE INDEX IF NOT EXISTS routing_assignments_desk_owner_client "
            "ON routing_assignments (desk, owner, client)"
        )

    async def drop():
        await AssignmentRaw.raw("DROP INDEX IF EXISTS routing_assignments_owner_client")
        await AssignmentRaw.raw("DROP INDEX IF EXISTS routing_assignments_desk_owner_client")

    manager.add_raw(add)
    manager.add_raw_backwards(drop)
    return manager
