"""One membership per desk and agent (a composite unique index Piccolo's columns cannot express)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T09:33:24:000000"
VERSION = "1.38.0"
DESCRIPTION = "unique (desk, staff) on routing_desk_members"


class DeskMemberRaw(Table, tablename="routing_desk_members"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="routing", description=DESCRIPTION)

    async def one_membership_per_desk_and_agent():
        await DeskMemberRaw.raw(
            "CREATE UNIQUE INDEX routing_desk_members_desk_staff ON routing_desk_members (desk, staff)"
        )

    manager.add_raw(one_membership_per_desk_and_agent)
    return manager
