"""Saved views of the staff client list."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T09:56:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "saved client-list views"


class ViewsRaw(Table, tablename="saved_views"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="views", description=DESCRIPTION)

    async def create():
        await ViewsRaw.raw(
            "CREATE TABLE saved_views ("
            " id SERIAL PRIMARY KEY,"
            " owner INTEGER NOT NULL REFERENCES staff_users (id) ON DELETE CASCADE ON UPDATE CASCADE,"
            " name VARCHAR(80) NOT NULL DEFAULT '',"
            " query VARCHAR(2000) NOT NULL DEFAULT '',"
            " shared BOOLEAN NOT NULL DEFAULT false,"
            " created_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        await ViewsRaw.raw("CREATE INDEX saved_views_owner ON saved_views (owner)")
        await ViewsRaw.raw("CREATE INDEX saved_views_shared ON saved_views (name) WHERE shared")

    async def drop():
        await ViewsRaw.raw("DROP TABLE IF EXISTS saved_views")

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
