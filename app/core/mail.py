"""Outbound e-mail: an outbox table written in the caller's transaction, delivered by a job.

The outbox row is the source of truth: the job is only the fast path, and a sweep re-queues
anything a lost enqueue or a crash left behind. With no SMTP_URL in development, messages stay
in the outbox with status "outbox", readable by admins in the console, so the demo works offline.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import unquote, urlparse

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape

from app.core import jobs
from app.core.tables import OutboundEmail
from app.settings import ROOT, get_settings

log = logging.getLogger(__name__)

_env = Environment(
    loader=FileSystemLoader(str(ROOT / "templates" / "mail")),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def _localised(template: str, language: str | None) -> str:
    """The template's name in `language` (templates/mail/<template>.<lang>.txt) if there is one,
    trying the full tag (pt-br) then its primary subtag (pt); otherwise the English original."""
    tag = (language or "").strip().lower().replace("_", "-")
    for candidate in dict.fromkeys((tag, tag.split("-")[0])):
        if candidate and candidate != "en":
            try:
                _env.get_template(f"{template}.{candidate}.txt")
            except TemplateNotFound:
                continue
            return f"{template}.{candidate}"
    return template


def render(template: str, context: dict, language: str | None = None) -> tuple[str, str, str]:
    """(subject, text, html) from templates/mail/<template>.txt (first line "Subject: …") and optional .html,
    in the recipient's language when that template has a translation."""
    template = _localised(template, language)
    text = _env.get_template(f"{template}.txt").render(**context)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject:"):
        raise ValueError(f"mail template {template}.txt must start with a Subject: line")
    subject = first.removeprefix("Subject:").strip()
    try:
        html = _env.get_template(f"{template}.html").render(**context)
    except TemplateNotFound:  # plain-text only message
        html = ""
    return subject, body.lstrip("\n"), html


ClientEmailListener = Callable[[int, int, str, str], Awaitable[None]]
"""Told (client id, outbox id, template, subject) of every e-mail queued to a client, inside the
transaction that queues it. The client's timeline registers one; core knows nothing of timelines."""
_client_email_listeners: list[ClientEmailListener] = []


def on_client_email(listener: ClientEmailListener) -> ClientEmailListener:
    if listener not in _client_email_listeners:
        _client_email_listeners.append(listener)
    return listener


async def queue_email(
    to: str, template: str, context: dict, *, client_id: int | None = None, language: str | None = None
) -> int:
    """Write the message to the outbox inside the current transaction; deliver after commit.

    Pass `client_id` whenever the recipient is a client, so the e-mail shows in their history,
    and their `language` where the template has translations.
    """
    settings = get_settings()
    subject, text, html = render(template, {"base_url": settings.base_url, **context}, language)
    row = OutboundEmail(
        to_addr=to,
        subject=subject,
        body_text=text,
        body_html=html,
        template=template,
        status="queued",
        created_at=datetime.now(UTC),
    )
    await row.save()
    jobs.enqueue_after_commit("deliver_email", key=f"mail:{row.id}", email_id=row.id)
    if client_id is not None:
        for listener in _client_email_listeners:
            await listener(client_id, int(row.id), template, subject)
    return int(row.id)


async def _send(row: dict, smtp_url: str, sender: str) -> None:
    url = urlparse(smtp_url)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = row["to_addr"]
    msg["Subject"] = row["subject"]
    msg["Message-ID"] = f"<fxcrm-{row['id']}@{url.hostname or 'localhost'}>"
    msg.set_content(row["body_text"])
    if row["body_html"]:
        msg.add_alternative(row["body_html"], subtype="html")
    await aiosmtplib.send(
        msg,
        hostname=url.hostname or "localhost",
        port=url.port or (465 if url.scheme == "smtps" else 25),
        username=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else None,
        use_tls=url.scheme == "smtps",
        start_tls=None if url.scheme == "smtp" else False,
        timeout=20,
    )


async def deliver(email_id: int) -> str:
    """Deliver one queued message; claiming it first makes a duplicate job a no-op."""
    settings = get_settings()
    claimed = (
        await OutboundEmail.update(
            {
                OutboundEmail.status: "sending",
                OutboundEmail.attempts: OutboundEmail.attempts + 1,
                OutboundEmail.claimed_at: datetime.now(UTC),
            }
        )
        .where((OutboundEmail.id == email_id) & (OutboundEmail.status == "queued"))
        .returning(*OutboundEmail.all_columns())
    )
    if not claimed:
        return "skipped"
    row = claimed[0]
    if not settings.smtp_url:
        await OutboundEmail.update({OutboundEmail.status: "outbox"}).where(OutboundEmail.id == email_id)
        return "outbox"
    try:
        await _send(row, settings.smtp_url, settings.mail_from)
    except Exception as exc:
        final = row["attempts"] >= 5
        await OutboundEmail.update(
            {OutboundEmail.status: "failed" if final else "queued", OutboundEmail.last_error: str(exc)[:2000]}
        ).where(OutboundEmail.id == email_id)
        if final:
            log.error("giving up on e-mail %s: %s", email_id, exc)
            return "failed"
        raise
    await OutboundEmail.update(
        {OutboundEmail.status: "sent", OutboundEmail.sent_at: datetime.now(UTC)}
    ).where(OutboundEmail.id == email_id)
    return "sent"


@jobs.job
async def deliver_email(ctx: dict, *, email_id: int) -> str:
    return await deliver(email_id)


@jobs.cron("* * * * *")
async def sweep_outbox(ctx: dict) -> int:
    """Re-queue messages whose job was lost, and ones stuck in 'sending' after a crash."""
    stale = datetime.now(UTC) - timedelta(minutes=10)
    await OutboundEmail.update({OutboundEmail.status: "queued"}).where(
        (OutboundEmail.status == "sending") & (OutboundEmail.claimed_at < stale)
    )
    rows = await OutboundEmail.select(OutboundEmail.id).where(OutboundEmail.status == "queued").limit(500)
    for r in rows:
        await deliver_safely(r["id"])
    return len(rows)


async def deliver_safely(email_id: int) -> None:
    try:
        await deliver(email_id)
    except Exception as exc:  # retried by the next sweep
        log.warning("e-mail %s not delivered yet: %s", email_id, exc)


async def recent(limit: int = 200) -> list[dict]:
    return (
        await OutboundEmail.select(
            OutboundEmail.id,
            OutboundEmail.to_addr,
            OutboundEmail.subject,
            OutboundEmail.template,
            OutboundEmail.status,
            OutboundEmail.attempts,
            OutboundEmail.created_at,
            OutboundEmail.sent_at,
            OutboundEmail.last_error,
        )
        .order_by(OutboundEmail.id, ascending=False)
        .limit(limit)
    )


async def get(email_id: int) -> dict | None:
    return await OutboundEmail.select().where(OutboundEmail.id == email_id).first()
