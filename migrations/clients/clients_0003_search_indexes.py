"""Indexes for the staff client list: trigram search on name, e-mail and phone digits, and
btree indexes in the shape of its three keyset sorts (each ends with id, as the cursor does)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T09:55:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "pg_trgm search indexes and keyset sort indexes for the client list"

# Must stay identical to the expressions in app.clients.services (or the planner ignores them).
NAME_EXPR = "lower(first_name || ' ' || last_name)"
PHONE_DIGITS_EXPR = "regexp_replace(phone, '[^0-9]', '', 'g')"
STAGE_EXPR = (
    "array_position(ARRAY['lead','registered','kyc_pending','kyc_approved','funded','active',"
    "'dormant','churned']::text[], stage::text)"
)


class ClientsRaw(Table, tablename="clients"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="clients", description=DESCRIPTION)

    async def add_indexes():
        # A server without the contrib package (or without the right to create it) still migrates:
        # search then runs as a sequential scan, which is correct, only slower.
        await ClientsRaw.raw(
            "DO $$ BEGIN CREATE EXTENSION IF NOT EXISTS pg_trgm; "
            "EXCEPTION WHEN others THEN RAISE NOTICE 'pg_trgm unavailable: %', SQLERRM; END $$"
        )
        have_trgm = await ClientsRaw.raw("SELECT 1 AS ok FROM pg_extension WHERE extname = 'pg_trgm'")
        if have_trgm:
            await ClientsRaw.raw(
                f"CREATE INDEX IF NOT EXISTS clients_name_trgm ON clients USING gin (({NAME_EXPR}) gin_trgm_ops)"
            )
            await ClientsRaw.raw(
                "CREATE INDEX IF NOT EXISTS clients_email_trgm ON clients USING gin (lower(email) gin_trgm_ops)"
            )
            await ClientsRaw.raw(
                "CREATE INDEX IF NOT EXISTS clients_phone_digits_trgm ON clients "
                f"USING gin (({PHONE_DIGITS_EXPR}) gin_trgm_ops)"
            )
        await ClientsRaw.raw("CREATE INDEX IF NOT EXISTS clients_created_keyset ON clients (created_at, id)")
        await ClientsRaw.raw(f"CREATE INDEX IF NOT EXISTS clients_name_keyset ON clients (({NAME_EXPR}), id)")
        await ClientsRaw.raw(
            f"CREATE INDEX IF NOT EXISTS clients_stage_keyset ON clients (({STAGE_EXPR}), id)"
        )

    async def drop_indexes():
        for name in (
            "clients_name_trgm",
            "clients_email_trgm",
            "clients_phone_digits_trgm",
            "clients_created_keyset",
            "clients_name_keyset",
            "clients_stage_keyset",
        ):
            await ClientsRaw.raw(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(add_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
