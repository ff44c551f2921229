"""One rate-limit counter per key and minute: the limiter's INSERT … ON CONFLICT relies on it."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T09:19:21:000000"
VERSION = "1.38.0"
DESCRIPTION = "unique (key, window_start) on api_key_windows"


class ApiKeyWindowRaw(Table, tablename="api_key_windows"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="integrations", description=DESCRIPTION)

    async def one_counter_per_key_and_minute():
        await ApiKeyWindowRaw.raw(
            "CREATE UNIQUE INDEX api_key_windows_key_window ON api_key_windows (key, window_start)"
        )

    manager.add_raw(one_counter_per_key_and_minute)
    return manager
