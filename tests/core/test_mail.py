"""Outbound e-mail: written to the outbox inside the caller's transaction, delivered over real
SMTP by an idempotent job, retried when the server is down, kept for the admin without SMTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.core import mail
from app.core.db import fetch, transaction
from app.core.tables import OutboundEmail
from app.settings import use_settings
from tests import conftest as harness
from tests.personas import sign_in
from tests.servers import body_of, free_port


@pytest.fixture
def smtp(database, smtp_server):
    """Settings whose SMTP_URL points at the loopback server; yields its mailbox."""
    url, box = smtp_server
    use_settings(harness.test_settings(database, SMTP_URL=url, MAIL_FROM="Broker <no-reply@broker.test>"))
    return box


@pytest.fixture
def smtp_down(database):
    use_settings(harness.test_settings(database, SMTP_URL=f"smtp://127.0.0.1:{free_port()}"))


async def queue_one(to: str = "anna@client.test", subject: str = "Margin call") -> int:
    async with transaction():
        return await mail.queue_email(to, "new_message", {"subject": subject})


async def row(email_id: int) -> dict:
    found = await mail.get(email_id)
    assert found is not None
    return found


async def test_a_message_queued_in_a_rolled_back_transaction_is_never_kept(smtp):
    with pytest.raises(LookupError):
        async with transaction():
            await mail.queue_email("anna@client.test", "new_message", {"subject": "Never"})
            raise LookupError("the change failed")
    assert await OutboundEmail.count() == 0
    assert await mail.sweep_outbox({}) == 0
    assert smtp.messages == []


async def test_it_delivers_a_queued_message_over_smtp(smtp):
    email_id = await queue_one()
    queued = await row(email_id)
    assert (queued["status"], queued["attempts"], queued["template"]) == ("queued", 0, "new_message")

    assert await mail.deliver(email_id) == "sent"
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert msg["Subject"] == "New message: Margin call"
    assert msg["To"] == "anna@client.test"
    assert msg["From"] == "Broker <no-reply@broker.test>"
    body = body_of(msg)
    assert "You have a new message from your broker" in body
    assert "http://testserver.local/portal/messages" in body
    assert not body.startswith("Subject:")
    sent = await row(email_id)
    assert (sent["status"], sent["attempts"]) == ("sent", 1)
    assert sent["sent_at"] is not None


async def test_a_duplicate_delivery_job_sends_nothing_more(smtp):
    email_id = await queue_one()
    assert await mail.deliver(email_id) == "sent"
    assert await mail.deliver(email_id) == "skipped"
    assert await mail.deliver_email({}, email_id=email_id) == "skipped"
    assert len(smtp.messages) == 1
    assert (await row(email_id))["attempts"] == 1


async def test_it_keeps_the_message_queued_with_the_error_while_smtp_is_down(smtp_down):
    email_id = await queue_one()
    with pytest.raises(OSError):
        await mail.deliver(email_id)
    r = await row(email_id)
    assert (r["status"], r["attempts"]) == ("queued", 1)
    assert r["last_error"]
    assert r["sent_at"] is None


async def test_it_gives_up_after_five_attempts(smtp_down):
    email_id = await queue_one()
    for attempt in range(1, 5):
        with pytest.raises(OSError):
            await mail.deliver(email_id)
        assert (await row(email_id))["attempts"] == attempt
    assert await mail.deliver(email_id) == "failed"
    r = await row(email_id)
    assert (r["status"], r["attempts"]) == ("failed", 5)
    assert r["last_error"]
    assert await mail.deliver(email_id) == "skipped"
    assert (await row(email_id))["attempts"] == 5


async def test_a_message_delivered_once_smtp_is_back(database, smtp_server):
    use_settings(harness.test_settings(database, SMTP_URL=f"smtp://127.0.0.1:{free_port()}"))
    email_id = await queue_one()
    with pytest.raises(OSError):
        await mail.deliver(email_id)
    url, box = smtp_server
    use_settings(harness.test_settings(database, SMTP_URL=url))
    assert await mail.deliver(email_id) == "sent"
    assert [m["To"] for m in box.messages] == ["anna@client.test"]
    assert (await row(email_id))["attempts"] == 2


async def test_without_smtp_in_development_the_message_stays_in_the_outbox(client, personas):
    email_id = await queue_one(subject="Statement <ready> & waiting")
    assert await mail.deliver(email_id) == "outbox"
    r = await row(email_id)
    assert r["status"] == "outbox"
    assert r["sent_at"] is None
    assert await mail.deliver(email_id) == "skipped"

    await sign_in(client, personas["admin"])
    page = await client.get(f"/staff/settings/outbox/{email_id}")
    assert page.status_code == 200
    assert "anna@client.test" in page.text
    assert "New message: Statement &lt;ready&gt; &amp; waiting" in page.text
    assert "<ready>" not in page.text
    assert "You have a new message from your broker" in page.text
    listing = await client.get("/staff/settings/outbox")
    assert listing.status_code == 200
    assert f"/staff/settings/outbox/{email_id}" in listing.text
    assert (await client.get(f"/staff/settings/outbox/{email_id + 1000}")).status_code == 404


async def test_only_admins_read_the_outbox(client, personas):
    email_id = await queue_one()
    await mail.deliver(email_id)
    await sign_in(client, personas["compliance"])
    r = await client.get(f"/staff/settings/outbox/{email_id}")
    assert r.status_code == 403
    assert "You have a new message" not in r.text
    await sign_in(client, personas["client_a"])
    r = await client.get(f"/staff/settings/outbox/{email_id}", follow_redirects=False)
    assert r.status_code in (302, 303, 401, 403)
    assert "You have a new message" not in r.text


async def test_the_sweep_delivers_messages_whose_job_was_lost(smtp):
    """No queue is connected in this process, so the enqueue after commit went nowhere."""
    first = await queue_one("anna@client.test", "One")
    second = await queue_one("ben@client.test", "Two")
    assert smtp.messages == []
    assert await mail.sweep_outbox({}) == 2
    assert sorted(str(m["To"]) for m in smtp.messages) == ["anna@client.test", "ben@client.test"]
    assert {(await row(i))["status"] for i in (first, second)} == {"sent"}
    assert await mail.sweep_outbox({}) == 0
    assert len(smtp.messages) == 2


async def test_the_sweep_recovers_a_message_stuck_in_sending_after_a_crash(smtp):
    email_id = await queue_one()
    long_ago = datetime.now(UTC) - timedelta(minutes=30)
    await OutboundEmail.update({OutboundEmail.status: "sending", OutboundEmail.claimed_at: long_ago}).where(
        OutboundEmail.id == email_id
    )
    # An old message whose delivery attempt has only just started (a retry after a long outage)
    # is being sent right now: the sweep must not send it a second time.
    fresh = await queue_one("ben@client.test")
    await OutboundEmail.update(
        {
            OutboundEmail.status: "sending",
            OutboundEmail.created_at: long_ago,
            OutboundEmail.claimed_at: datetime.now(UTC),
        }
    ).where(OutboundEmail.id == fresh)
    await mail.sweep_outbox({})
    assert [str(m["To"]) for m in smtp.messages] == ["anna@client.test"]
    assert (await row(email_id))["status"] == "sent"
    assert (await row(fresh))["status"] == "sending"


async def test_the_sweep_leaves_failing_messages_for_the_next_round(smtp_down):
    email_id = await queue_one()
    assert await mail.sweep_outbox({}) == 1
    r = await row(email_id)
    assert (r["status"], r["attempts"]) == ("queued", 1)
    rows = await fetch("SELECT count(*) AS n FROM outbound_emails WHERE status = 'sent'")
    assert rows[0]["n"] == 0
