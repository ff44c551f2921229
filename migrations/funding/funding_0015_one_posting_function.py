"""Drop `funding_post()` (funding_0002) and `funding_post_audited()` (funding_0012): every posting,
alone or with others, in a caller's transaction or its own, now goes through
`funding_post_batch()` (funding_0013), so the rules of a posting are written once."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T19:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "drop funding_post() and funding_post_audited(): funding_post_batch() is the one posting statement"

STATEMENTS = (
    "DROP FUNCTION IF EXISTS funding_post_audited(text, text, text, text, text, text, bigint, int[], "
    "numeric[], boolean, bigint, text, text, text[], bytea[], text[], boolean)",
    "DROP FUNCTION IF EXISTS funding_post(text, text, text, text, text, text, bigint, int[], numeric[], boolean)",
)


class Raw(Table, tablename="funding_transactions"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="funding", description=DESCRIPTION)

    async def drop():
        for statement in STATEMENTS:
            await Raw.raw(statement)

    manager.add_raw(drop)
    return manager
