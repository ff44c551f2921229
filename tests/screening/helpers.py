"""Shared by the screening tests: load a sample release, make a client, act as a persona."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.clients.tables import Client
from app.core.audit import Actor
from app.core.tables import AuditEvent
from app.screening import lists, loaders
from tests.personas import principal_of

SAMPLES = Path(__file__).resolve().parents[2] / "app" / "screening" / "samples"
SYSTEM = Actor.system("pytest")


as_principal = principal_of  # the shared persona-to-Principal helper


async def load_sample(*names: str, actor: Actor = SYSTEM) -> lists.LoadResult:
    lists.forget_indexes()  # each test has its own database: ids repeat across tests
    return await lists.load_release(loaders.read_paths([SAMPLES / n for n in names]), actor)


async def new_client(first: str, last: str, country: str = "DE", email: str | None = None) -> int:
    now = datetime.now(UTC)
    row = Client(
        email=email or f"{first}.{last}.{now.timestamp()}@example.test".lower().replace(" ", ""),
        first_name=first,
        last_name=last,
        country=country,
        stage="registered",
        stage_changed_at=now,
        created_at=now,
    )
    await row.save()
    return int(row.id)


async def audit_actions(subject_type: str | None = None, subject_id: Any = None) -> list[str]:
    query = AuditEvent.select(AuditEvent.action).order_by(AuditEvent.seq)
    if subject_type is not None:
        query = query.where(
            (AuditEvent.subject_type == subject_type) & (AuditEvent.subject_id == str(subject_id))
        )
    return [r["action"] for r in await query]


class FakeQueue:
    """Stands in for SAQ: records what enqueue-after-commit sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def enqueue(self, function: str, **kwargs: Any) -> None:
        self.sent.append((function, kwargs))

    def calls(self, function: str) -> list[dict[str, Any]]:
        return [kw for f, kw in self.sent if f == function]
