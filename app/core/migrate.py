"""Apply and inspect Piccolo migrations for every domain app."""

from __future__ import annotations

import contextlib
import io

from piccolo.apps.migrations.commands.base import BaseMigrationManager
from piccolo.apps.migrations.commands.forwards import run_forwards
from piccolo.apps.migrations.tables import Migration
from piccolo.conf.apps import Finder


class MigrationError(RuntimeError):
    pass


async def migrate(quiet: bool = True) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
        result = await run_forwards(app_name="all")
    if not result.success:
        raise MigrationError(result.message or out.getvalue())


async def pending_migrations() -> list[str]:
    """IDs on disk that the database has not applied (used by /readyz)."""
    manager = BaseMigrationManager()
    if not await Migration.table_exists():
        return ["<no migration table>"]
    applied = {r["name"] for r in await Migration.select(Migration.name)}
    missing: list[str] = []
    for app_config in Finder().get_app_registry().app_configs.values():
        for module_id in manager.get_migration_ids(
            manager.get_migration_modules(str(app_config.migrations_folder_path))
        ):
            if module_id not in applied:
                missing.append(f"{app_config.app_name}:{module_id}")
    return missing
