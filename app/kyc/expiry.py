"""Documents that expire: remind the client before, and take the rights away when it passes.

Run daily (app/kyc/jobs.py). Each document is claimed with a conditional UPDATE in its own
transaction, so a second run, or two workers at once, change nothing more: a reminder is sent once
per document (`expiry_reminded_on`), and an expired document is expired once. Expiry recomputes
the client's level at once, so `levels.rights_for` stops granting what the document earned.

Compliance sees both on the console's queue page (documents expiring within the reminder window,
with the reminder date) and on the client page (KYC panel and timeline).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from app.core import audit, db, live, mail
from app.core.audit import Actor
from app.core.db import transaction
from app.kyc import levels, reasons
from app.settings import get_settings
from app.workbench.timeline import record_event

SYSTEM = Actor.system("kyc expiry")

COVERED = (
    "EXISTS (SELECT 1 FROM kyc_documents n WHERE n.client = d.client AND n.category = d.category "
    "AND n.id <> d.id AND n.status = 'approved' AND (n.expires_on IS NULL OR n.expires_on > {}))"
)
"""SQL (one `{}`: a date): another approved document of the same kind stays valid past that date."""


async def _client(client_id: int) -> dict[str, Any]:
    row = await db.fetchrow("SELECT id, email, first_name, language FROM clients WHERE id = $1", client_id)
    assert row is not None
    return row


async def _email(doc: dict[str, Any], template: str) -> None:
    client = await _client(doc["client"])
    await mail.queue_email(
        client["email"],
        template,
        {
            "name": client["first_name"],
            "what": reasons.category_noun(doc["category"], client["language"]),
            "document": doc["type_name"],
            "expires_on": doc["expires_on"].isoformat(),
        },
        client_id=client["id"],
        language=client["language"],
    )


async def _announce(client_id: int, document_id: int) -> None:
    await live.publish(f"client:{client_id}", "kyc.document_reviewed", document_id=document_id)
    await live.publish(f"staff:client:{client_id}", "client_page.kyc", client_id=client_id)
    for role in ("compliance", "admin"):
        await live.publish(f"staff:role:{role}", "kyc.queue_changed", document_id=document_id)


async def send_reminders(today: date | None = None, actor: Actor = SYSTEM) -> int:
    """Remind each client whose approved document expires within the reminder window, once per
    document; not when a newer approved document of the same kind outlives the window."""
    today = today or datetime.now(UTC).date()
    horizon = today + timedelta(days=get_settings().kyc.expiry_reminder_days)
    due = await db.fetch(
        "SELECT d.id FROM kyc_documents d WHERE d.status = 'approved' AND d.expires_on BETWEEN {} AND {} "
        f"AND d.expiry_reminded_on IS NULL AND NOT {COVERED} ORDER BY d.expires_on, d.id",
        today,
        horizon,
        horizon,
    )
    sent = 0
    for row in due:
        async with transaction():
            claimed = await db.fetch(
                "UPDATE kyc_documents d SET expiry_reminded_on = {} FROM kyc_document_types t "
                "WHERE d.id = {} AND t.id = d.doc_type AND d.status = 'approved' "
                "AND d.expiry_reminded_on IS NULL RETURNING d.id, d.client, d.category, d.expires_on, "
                "t.name AS type_name",
                today,
                row["id"],
            )
            if not claimed:
                continue  # another run got there first
            doc = claimed[0]
            days = (doc["expires_on"] - today).days
            await audit.record(
                actor,
                "kyc.document_expiry_reminded",
                "client",
                doc["client"],
                after={"document_id": doc["id"], "expires_on": doc["expires_on"], "days_left": days},
            )
            await record_event(
                doc["client"],
                "document",
                f"{doc['type_name']} expires on {doc['expires_on']:%Y-%m-%d} ({days} days): reminder sent",
                "kyc_document",
                doc["id"],
            )
            await _email(doc, "kyc_expiring")
            await _announce(doc["client"], doc["id"])
            sent += 1
    return sent


async def expire_documents(today: date | None = None, actor: Actor = SYSTEM) -> int:
    """Mark approved documents whose expiry date has passed as expired and lower the level."""
    today = today or datetime.now(UTC).date()
    due = await db.fetch(
        "SELECT id FROM kyc_documents WHERE status = 'approved' AND expires_on < {} ORDER BY expires_on, id",
        today,
    )
    expired = 0
    for row in due:
        async with transaction():
            claimed = await db.fetch(
                "UPDATE kyc_documents d SET status = 'expired' FROM kyc_document_types t "
                "WHERE d.id = {} AND t.id = d.doc_type AND d.status = 'approved' AND d.expires_on < {} "
                "RETURNING d.id, d.client, d.category, d.expires_on, t.name AS type_name",
                row["id"],
                today,
            )
            if not claimed:
                continue
            doc = claimed[0]
            await audit.record(
                actor,
                "kyc.document_expired",
                "client",
                doc["client"],
                before={"document_id": doc["id"], "status": "approved", "expires_on": doc["expires_on"]},
                after={"document_id": doc["id"], "status": "expired"},
            )
            await record_event(
                doc["client"],
                "document",
                f"{doc['type_name']} expired on {doc['expires_on']:%Y-%m-%d}",
                "kyc_document",
                doc["id"],
            )
            await levels.recompute_level(doc["client"], actor, f"{doc['type_name']} expired")
            replaced = await db.fetch(
                f"SELECT 1 FROM kyc_documents d WHERE d.id = {{}} AND {COVERED}",
                doc["id"],
                today - timedelta(days=1),
            )
            if not replaced:  # nothing else of this kind is valid: ask for a new one
                await _email(doc, "kyc_expired")
            await _announce(doc["client"], doc["id"])
            expired += 1
    return expired


async def run_daily(today: date | None = None) -> dict[str, int]:
    """The daily pass: expire what has passed first, then remind about what is coming."""
    return {"expired": await expire_documents(today), "reminded": await send_reminders(today)}
