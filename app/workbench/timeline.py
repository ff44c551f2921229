"""The client's timeline: one row per fact, written by whichever service records that fact.

Kept apart from `services` so the domains that write events (lifecycle, messages, leads) import
only this and the tables, never the workbench's access rules.
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.core import mail
from app.core.auth import service as auth_service
from app.core.db import DB
from app.workbench.tables import KINDS, TimelineEvent


async def record_event(
    client_id: int,
    kind: str,
    summary: str,
    ref_type: str = "",
    ref_id: int | None = None,
    *,
    at: datetime | None = None,
) -> int:
    """Append one timeline event inside the caller's transaction (the fact and its event commit together)."""
    if DB.current_transaction.get() is None:
        raise RuntimeError("record_event() must run inside the transaction of the fact it records")
    assert kind in KINDS, kind
    row = TimelineEvent(
        client=client_id,
        occurred_at=at or datetime.now(UTC),
        kind=kind,
        summary=summary.strip()[:500],
        ref_type=ref_type,
        ref_id=ref_id,
    )
    await row.save()
    return int(row.id)


PORTALS = {"portal": "the client portal", "ib": "the partner portal"}


@auth_service.on_client_login
async def record_login(client_id: int, portal: str, ip: str) -> None:
    where = PORTALS.get(portal, portal)
    await record_event(client_id, "login", f"Signed in to {where}" + (f" from {ip}" if ip else ""))


@mail.on_client_email
async def record_email(client_id: int, email_id: int, template: str, subject: str) -> None:
    """The subject and template only: the body may hold a one-time link."""
    await record_event(client_id, "email", f"E-mail “{subject}” ({template})", "email", email_id)
