"""What the import and export tests share: the personas as principals, files, and a started run."""

from __future__ import annotations

from typing import Any

import pytest

from app.core import db, jobs
from app.core.auth.principal import Principal
from app.imports import runner, services
from tests.personas import principal_of

HEADER = "email,first_name,last_name,phone,country,language"
MAPPING = {
    "col_0": "email",
    "col_1": "first_name",
    "col_2": "last_name",
    "col_3": "phone",
    "col_4": "country",
    "col_5": "language",
}


as_principal = principal_of  # the shared persona-to-Principal helper


def csv_bytes(*lines: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *lines]) + "\n").encode()


def person(i: int, **over: str) -> str:
    values = {
        "email": f"person{i}@import.test",
        "first_name": f"Ann{i}",
        "last_name": "Lee",
        "phone": f"+4915123456{i % 1000:03d}",
        "country": "DE",
        "language": "de",
        **over,
    }
    return ",".join(values[k] for k in HEADER.split(","))


@pytest.fixture
def staff(personas) -> dict[str, Principal]:
    return {name: as_principal(p) for name, p in personas.items() if p.kind == "staff"}


async def imported(
    who: Principal, data: bytes, *, mode: str = "create", assign: str = "", mapping: dict | None = None
) -> dict[str, Any]:
    """Upload, start and run one import to its end; the run row."""
    actor = who.actor("127.0.0.1", "pytest")
    run_id = await services.upload(who, "people.csv", data, actor)
    await services.start(who, run_id, {**(mapping or MAPPING), "mode": mode, "assign": assign}, actor)
    await runner.run_import(run_id)
    run = await services.load_run(run_id)
    assert run is not None
    return run


async def actions(action: str) -> list[dict]:
    return await db.fetch("SELECT * FROM audit_events WHERE action = {} ORDER BY seq", action)


@pytest.fixture
async def queue(database):
    """A real SAQ queue on the test database, so enqueue-after-commit really enqueues."""
    jobs.load_job_modules()
    q = await jobs.connect(database)
    try:
        yield q
    finally:
        await jobs.disconnect()
