"""Identity documents expire: the client is reminded once before, and when the date passes the
document expires and the client's level (and rights) drop at once; every step audited, visible on
the client page and in the compliance console, and a second run changes nothing."""

from __future__ import annotations

import json
from datetime import date, timedelta

from app.core import db, jobs
from app.core.audit import Actor
from app.core.tables import AuditEvent, OutboundEmail
from app.kyc import expiry, levels
from app.kyc.tables import Document
from app.workbench.tables import TimelineEvent
from tests.kyc.test_review import approved_identity, emails, status_of, submit
from tests.personas import sign_in

TODAY = date(2031, 3, 1)  # the job's "today"; documents are dated relative to it
SYSTEM = Actor.system("pytest")


async def with_level(client_id: int, expires_on: date) -> int:
    """An approved passport expiring on `expires_on`, and the level it earns (as of now)."""
    doc = await approved_identity(client_id, expires_on=expires_on)
    await levels.recompute_level(client_id, SYSTEM, "passport approved")
    return doc


async def audit_actions(action: str) -> list[dict]:
    rows = await AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.seq)
    return [{**r, "after": json.loads(r["after"]) if r["after"] else None} for r in rows]


async def test_a_client_is_reminded_once_before_the_identity_document_expires(personas):
    a = personas["client_a"].id
    await db.fetch("UPDATE clients SET language = 'de' WHERE id = {}", a)
    doc = await with_level(a, TODAY + timedelta(days=20))
    far = await approved_identity(personas["client_b"].id, expires_on=TODAY + timedelta(days=31))
    assert await expiry.send_reminders(TODAY) == 1
    assert await expiry.send_reminders(TODAY) == 0  # once per document
    row = await Document.select().where(Document.id == doc).first()
    assert row["expiry_reminded_on"] == TODAY and row["status"] == "approved"
    assert (await Document.select().where(Document.id == far).first())["expiry_reminded_on"] is None
    [mail] = await emails("kyc_expiring")
    # Tomorrow the other document enters the 30-day window; the first is not reminded again.
    assert await expiry.send_reminders(TODAY + timedelta(days=1)) == 1
    assert (await Document.select().where(Document.id == doc).first())["expiry_reminded_on"] == TODAY
    assert len(await emails("kyc_expiring")) == 2
    assert mail["to_addr"] == personas["client_a"].email
    assert mail["subject"] == "Ihr Dokument (Ausweisdokument) läuft am 2031-03-21 ab"
    reminded = (await audit_actions("kyc.document_expiry_reminded"))[0]
    assert reminded["subject_id"] == str(a) and reminded["after"]["days_left"] == 20
    summaries = [r["summary"] for r in await TimelineEvent.select().where(TimelineEvent.client == a)]
    assert "Passport expires on 2031-03-21 (20 days): reminder sent" in summaries
    assert (await levels.rights_for(a)).level == 1  # a reminder takes nothing away


async def test_no_reminder_when_a_newer_document_outlives_the_window(personas):
    a = personas["client_a"].id
    await with_level(a, TODAY + timedelta(days=10))
    await approved_identity(a, expires_on=TODAY + timedelta(days=3000))
    assert await expiry.send_reminders(TODAY) == 0
    assert await emails("kyc_expiring") == []


async def test_on_expiry_the_document_expires_and_the_rights_drop_at_once(personas):
    a = personas["client_a"].id
    real_today = date.today()
    doc = await with_level(a, real_today + timedelta(days=5))
    assert (await levels.rights_for(a)).allows("deposits")
    day_after = real_today + timedelta(days=6)
    assert await expiry.expire_documents(real_today + timedelta(days=5)) == 0  # valid through its last day
    assert await expiry.expire_documents(day_after) == 1
    assert await status_of(doc) == "expired"
    rights = await levels.rights_for(a)
    assert rights.level == 0 and not rights.allows("deposits") and not rights.allows("live_accounts")
    [expired] = await audit_actions("kyc.document_expired")
    assert expired["after"] == {"document_id": doc, "status": "expired"}
    lowered = (await audit_actions("kyc.level_changed"))[-1]
    assert lowered["after"]["level"] == 0 and "expired" in lowered["after"]["reason"]
    [mail] = await emails("kyc_expired")
    assert mail["subject"] == "Your identity document has expired"
    assert "/portal/documents" in mail["body_text"]
    summaries = [r["summary"] for r in await TimelineEvent.select().where(TimelineEvent.client == a)]
    assert any(s.startswith("Passport expired on") for s in summaries)
    assert any(s.startswith("KYC level lowered to 0") for s in summaries)
    # A second run changes nothing.
    audit_count = await AuditEvent.count()
    assert await expiry.run_daily(day_after) == {"expired": 0, "reminded": 0}
    assert await AuditEvent.count() == audit_count and await OutboundEmail.count() == 1


async def test_an_expiry_with_a_valid_replacement_keeps_the_level_and_asks_for_nothing(personas):
    a = personas["client_a"].id
    real_today = date.today()
    old = await with_level(a, real_today + timedelta(days=1))
    await approved_identity(a, expires_on=real_today + timedelta(days=2000))
    assert await expiry.expire_documents(real_today + timedelta(days=2)) == 1
    assert await status_of(old) == "expired"
    assert (await levels.rights_for(a)).level == 1
    assert await emails("kyc_expired") == []


async def test_the_daily_job_is_scheduled_and_runs_the_whole_pass(personas):
    jobs.load_job_modules()
    assert "kyc_expiry_daily" in jobs._functions
    assert any(c.function.__name__ == "kyc_expiry_daily" for c in jobs._crons)
    a, b = personas["client_a"].id, personas["client_b"].id
    real_today = date.today()
    gone = await with_level(a, real_today - timedelta(days=1))  # earned nothing: already expired
    soon = await with_level(b, real_today + timedelta(days=3))
    from app.kyc.jobs import kyc_expiry_daily

    assert await kyc_expiry_daily({}) == {"expired": 1, "reminded": 1}
    assert await kyc_expiry_daily({}) == {"expired": 0, "reminded": 0}
    assert await status_of(gone) == "expired" and await status_of(soon) == "approved"


async def test_expiry_shows_in_the_console_and_on_the_client_page(client, personas):
    a = personas["client_a"].id
    real_today = date.today()
    doc = await with_level(a, real_today + timedelta(days=12))
    await expiry.send_reminders(real_today)
    await submit(personas["client_b"].id, "passport")
    await sign_in(client, personas["compliance"])
    queue_page = (await client.get("/staff/kyc")).text
    assert (
        f'id="kyc-expiring-{doc}"' in queue_page and f"client reminded {real_today.isoformat()}" in queue_page
    )
    panel = (await client.get(f"/staff/clients/{a}/kyc", headers={"HX-Request": "true"})).text
    expires = (real_today + timedelta(days=12)).isoformat()
    assert expires in panel and "expiring" in panel and f"reminded {real_today.isoformat()}" in panel
    await expiry.expire_documents(real_today + timedelta(days=13))
    panel = (await client.get(f"/staff/clients/{a}/kyc", headers={"HX-Request": "true"})).text
    assert 'id="kyc-level">0<' in panel and 'data-status="expired"' in panel
