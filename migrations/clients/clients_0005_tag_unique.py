"""One row per tag and client (tags are stored lower-cased, so this is the case-insensitive rule),
a composite unique index Piccolo's columns cannot express; it also serves "this client's tags"."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T11:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "unique (client, tag) on client_tags"


class ClientTagRaw(Table, tablename="client_tags"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="clients", description=DESCRIPTION)

    async def one_tag_per_client():
        await ClientTagRaw.raw(
            "CREATE UNIQUE INDEX IF NOT EXISTS client_tags_client_tag ON client_tags (client, tag)"
        )

    async def drop_it():
        await ClientTagRaw.raw("DROP INDEX IF EXISTS client_tags_client_tag")

    manager.add_raw(one_tag_per_client)
    manager.add_raw_backwards(drop_it)
    return manager
