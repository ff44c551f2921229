"""Saved views are shared with a desk (or, for staff who work across desks, with everyone)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "saved views: private, desk or everyone"


class ViewsRaw(Table, tablename="saved_views"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="views", description=DESCRIPTION)

    async def share_by_desk():
        await ViewsRaw.raw(
            "ALTER TABLE saved_views"
            " ADD COLUMN scope VARCHAR(8) NOT NULL DEFAULT 'private'"
            " CHECK (scope IN ('private', 'desk', 'all')),"
            " ADD COLUMN desk INTEGER NULL REFERENCES routing_desks (id) ON DELETE SET NULL ON UPDATE CASCADE"
        )
        await ViewsRaw.raw("UPDATE saved_views SET scope = 'all' WHERE shared")  # as they were seen
        await ViewsRaw.raw("DROP INDEX IF EXISTS saved_views_shared")
        await ViewsRaw.raw("ALTER TABLE saved_views DROP COLUMN shared")
        await ViewsRaw.raw("CREATE INDEX saved_views_desk ON saved_views (desk) WHERE scope = 'desk'")
        await ViewsRaw.raw("CREATE INDEX saved_views_everyone ON saved_views (name) WHERE scope = 'all'")

    async def back():
        await ViewsRaw.raw("ALTER TABLE saved_views ADD COLUMN shared BOOLEAN NOT NULL DEFAULT false")
        await ViewsRaw.raw("UPDATE saved_views SET shared = (scope <> 'private')")
        await ViewsRaw.raw("DROP INDEX IF EXISTS saved_views_desk")
        await ViewsRaw.raw("DROP INDEX IF EXISTS saved_views_everyone")
        await ViewsRaw.raw("ALTER TABLE saved_views DROP COLUMN scope, DROP COLUMN desk")
        await ViewsRaw.raw("CREATE INDEX saved_views_shared ON saved_views (name) WHERE shared")

    manager.add_raw(share_by_desk)
    manager.add_raw_backwards(back)
    return manager
