"""The webhook inbox's keys: one row per (provider, event id) whatever the deliveries, a processed
event must have been verified, and the index the retry sweep reads."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T15:22:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "funding_webhook_events: unique (provider, event_id), checks, pending index"


class RawInbox(Table, tablename="funding_webhook_events"):
    pass


CONSTRAINTS = (
    "ALTER TABLE funding_webhook_events ADD CONSTRAINT funding_webhook_events_provider_event "
    "UNIQUE (provider, event_id)",
    "ALTER TABLE funding_webhook_events ADD CONSTRAINT funding_webhook_events_keys_present "
    "CHECK (provider <> '' AND event_id <> '')",
    "ALTER TABLE funding_webhook_events ADD CONSTRAINT funding_webhook_events_attempts CHECK (attempts >= 0)",
    "ALTER TABLE funding_webhook_events ADD CONSTRAINT funding_webhook_events_processed_verified "
    "CHECK (processed_at IS NULL OR signature_ok)",
    "CREATE INDEX funding_webhook_events_pending ON funding_webhook_events (received_at, id) "
    "WHERE processed_at IS NULL",
)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="funding", description=DESCRIPTION)

    async def add():
        for statement in CONSTRAINTS:
            await RawInbox.raw(statement)

    async def drop():
        await RawInbox.raw("DROP INDEX IF EXISTS funding_webhook_events_pending")
        for name in ("provider_event", "keys_present", "attempts", "processed_verified"):
            await RawInbox.raw(f"ALTER TABLE funding_webhook_events DROP CONSTRAINT IF EXISTS funding_webhook_events_{name}")

    manager.add_raw(add)
    manager.add_raw_backwards(drop)
    return manager
