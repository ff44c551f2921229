"""The audit trail is append-only at the database level, whatever the application does."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T08:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "refuse UPDATE, DELETE and TRUNCATE on audit_events"


class AuditEventRaw(Table, tablename="audit_events"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)

    async def protect_audit_trail():
        # The audit trail is append-only at the database level, whatever the application does.
        await AuditEventRaw.raw(
            """
            CREATE OR REPLACE FUNCTION audit_events_refuse_change() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP
                    USING ERRCODE = 'insufficient_privilege';
            END;
            $$ LANGUAGE plpgsql;
            """
        )
        await AuditEventRaw.raw(
            "CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change()"
        )
        await AuditEventRaw.raw(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change()"
        )

    manager.add_raw(protect_audit_trail)

    return manager
