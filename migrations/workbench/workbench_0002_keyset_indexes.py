"""Indexes shaped like the workbench's two hot reads (Piccolo's auto migrations make single-column ones)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T09:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "keyset index for the client timeline, partial index for open tasks"


class TimelineRaw(Table, tablename="client_timeline"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="workbench", description=DESCRIPTION)

    async def keyset_indexes():
        # The timeline pages by (occurred_at, id) per client; "my tasks" lists open tasks per assignee.
        await TimelineRaw.raw(
            "CREATE INDEX client_timeline_keyset ON client_timeline (client, occurred_at DESC, id DESC)"
        )
        await TimelineRaw.raw(
            "CREATE INDEX client_tasks_open_by_assignee ON client_tasks (assignee, due_at) WHERE done_at IS NULL"
        )

    async def drop_them():
        await TimelineRaw.raw("DROP INDEX IF EXISTS client_timeline_keyset")
        await TimelineRaw.raw("DROP INDEX IF EXISTS client_tasks_open_by_assignee")

    manager.add_raw(keyset_indexes)
    manager.add_raw_backwards(drop_them)
    return manager
