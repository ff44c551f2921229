"""Clients: portal registration, the staff view of a client, and staff-to-client messages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from piccolo.columns import Column

from app.clients import lifecycle
from app.clients.cache import summaries
from app.clients.tables import STAGES, Client, ClientMessage
from app.core import audit, db, live, mail
from app.core.audit import Actor
from app.core.auth import passwords
from app.core.auth import service as auth_service
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.workbench.timeline import record_event

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")


@dataclass
class Registration:
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    country: str = ""
    password: str = ""
    accept_terms: bool = False

    def cleaned(self) -> Registration:
        return Registration(
            first_name=self.first_name.strip()[:100],
            last_name=self.last_name.strip()[:100],
            email=self.email.strip().lower(),
            country=self.country.strip().upper(),
            password=self.password,
            accept_terms=self.accept_terms,
        )


def validate_registration(r: Registration) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not r.first_name:
        errors["first_name"] = "Enter your first name."
    if not r.last_name:
        errors["last_name"] = "Enter your last name."
    if not EMAIL_RE.match(r.email) or len(r.email) > 320:
        errors["email"] = "Enter a valid e-mail address, like name@example.com."
    if r.country and not COUNTRY_RE.match(r.country):
        errors["country"] = "Choose your country of residence."
    if problem := passwords.password_problem(r.password, r.email):
        errors["password"] = problem
    if not r.accept_terms:
        errors["accept_terms"] = "Please accept the client agreement to continue."
    return errors


async def register(form: Registration, actor: Actor, *, referral_token: str | None = None) -> int:
    """Create the client (or complete their existing lead) at stage `registered`, and send the verification link.

    All or nothing: the client row, the audit record and the queued e-mail commit together.
    """
    r = form.cleaned()
    errors = validate_registration(r)
    existing = await Client.select().where(Client.email == r.email).first() if "email" not in errors else None
    if existing and existing["password_hash"]:
        errors["email"] = "An account with this e-mail already exists. Sign in, or reset your password."
    if errors:
        raise FormErrors(errors)
    now = datetime.now(UTC)
    values: dict[Column, Any] = {
        Client.first_name: r.first_name,
        Client.last_name: r.last_name,
        Client.country: r.country,
        Client.password_hash: passwords.hash_password(r.password),
        Client.stage: "registered",
        Client.stage_changed_at: now,
    }
    async with transaction():
        if existing:
            # cast: Piccolo types `values` as an invariant dict of Column | str keys
            await Client.update(cast(dict[Column | str, Any], values)).where(Client.id == existing["id"])
            client_id = existing["id"]
            before = {"stage": existing["stage"]}
        else:
            row = Client(email=r.email, created_at=now, **{c._meta.name: v for c, v in values.items()})
            await row.save()
            client_id = row.id
            before = None
        who = Actor(
            actor.kind if actor.kind != "anonymous" else "client",
            str(client_id),
            r.email,
            actor.ip,
            actor.user_agent,
        )
        # The history row only: the "client.registered" audit record below is this fact's audit.
        if before is None or before["stage"] != "registered":
            await lifecycle.record_history(
                client_id, None if before is None else before["stage"], "registered", who, at=now
            )
        await audit.record(
            who,
            "client.registered",
            "client",
            client_id,
            before=before,
            after={"stage": "registered", "country": r.country, "email": r.email},
        )
        from app.partners.attribution import attribute_at_registration  # partners build on clients

        await attribute_at_registration(client_id, referral_token, who)
        await auth_service.send_verification_email(client_id, r.email)
        await summaries.forget(client_id)
        await live.publish("staff:all", "client.changed", client_id=client_id)
    return int(client_id)


async def resend_verification(p: Principal, actor: Actor) -> None:
    if p.email_verified:
        return
    async with transaction():
        await auth_service.send_verification_email(p.id, p.email)
        await audit.record(actor, "client.verification_resent", "client", p.id)


async def get_client_for(viewer: Principal, client_id: int) -> dict[str, Any]:
    """The client if the viewer may see them; 404 otherwise (no hint that the id exists)."""
    if viewer.is_client and viewer.id != client_id:
        raise NotFound("client")
    row = (
        await Client.select(
            *[c for c in Client.all_columns() if c._meta.name not in {"password_hash", "totp_secret"}]
        )
        .where(Client.id == client_id)
        .first()
    )
    if row is None:
        raise NotFound("client")
    return row


async def dashboard_for(p: Principal) -> dict[str, Any]:
    """What the portal's home shows, in one query, remembered briefly."""
    if not p.is_client:
        raise NotFound("client")
    return await summaries.get(p.id, lambda: _load_summary(p.id))


async def _load_summary(client_id: int) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT c.id, c.email, c.first_name, c.last_name, c.stage, c.email_verified_at, "
        "(SELECT count(*) FROM client_messages m WHERE m.client = c.id AND m.read_at IS NULL) AS unread "
        "FROM clients c WHERE c.id = $1",
        client_id,
    )
    if row is None:
        raise NotFound("client")
    return row


async def list_clients_for(
    viewer: Principal, *, q: str = "", stage: str = "", limit: int = 100
) -> list[dict[str, Any]]:
    if not viewer.is_staff:
        raise NotFound("client")
    query = (
        Client.select(
            Client.id,
            Client.email,
            Client.first_name,
            Client.last_name,
            Client.country,
            Client.stage,
            Client.created_at,
            Client.email_verified_at,
        )
        .order_by(Client.id, ascending=False)
        .limit(limit)
    )
    if q:
        like = f"%{q.strip()}%"
        query = query.where(
            Client.email.ilike(like) | Client.first_name.ilike(like) | Client.last_name.ilike(like)
        )
    if stage in STAGES:
        query = query.where(Client.stage == stage)
    return await query


async def send_message(viewer: Principal, client_id: int, subject: str, body: str, actor: Actor) -> int:
    client = await get_client_for(viewer, client_id)
    errors = {}
    if not subject.strip():
        errors["subject"] = "Enter a subject."
    if not body.strip():
        errors["body"] = "Write the message."
    if len(body) > 10_000:
        errors["body"] = "Keep the message under 10,000 characters."
    if errors:
        raise FormErrors(errors)
    async with transaction():
        msg = ClientMessage(
            client=client_id,
            sender=viewer.id,
            subject=subject.strip()[:200],
            body=body.strip(),
            created_at=datetime.now(UTC),
        )
        await msg.save()
        await audit.record(
            actor,
            "client.message_sent",
            "client",
            client_id,
            after={"message_id": msg.id, "subject": msg.subject},
        )
        await mail.queue_email(client["email"], "new_message", {"subject": msg.subject})
        await summaries.forget(client_id)
        await live.publish(f"client:{client_id}", "message.created", message_id=msg.id)
        await record_event(
            client_id, "message", f"Message from {viewer.name}: {msg.subject}", "message", msg.id
        )
    return int(msg.id)


async def messages_for(p: Principal, client_id: int) -> list[dict[str, Any]]:
    await get_client_for(p, client_id)
    return (
        await ClientMessage.select(
            ClientMessage.id,
            ClientMessage.subject,
            ClientMessage.body,
            ClientMessage.created_at,
            ClientMessage.read_at,
            ClientMessage.sender.name.as_alias("sender_name"),
        )
        .where(ClientMessage.client == client_id)
        .order_by(ClientMessage.id, ascending=False)
        .limit(200)
    )


async def message_for(p: Principal, message_id: int) -> dict[str, Any]:
    row = (
        await ClientMessage.select(
            ClientMessage.id,
            ClientMessage.client,
            ClientMessage.subject,
            ClientMessage.body,
            ClientMessage.created_at,
            ClientMessage.read_at,
        )
        .where(ClientMessage.id == message_id)
        .first()
    )
    if row is None or (p.is_client and row["client"] != p.id):
        raise NotFound("message")
    return row


async def unread_count(client_id: int) -> int:
    return await ClientMessage.count().where(
        (ClientMessage.client == client_id) & ClientMessage.read_at.is_null()
    )


async def mark_read(p: Principal, message_id: int) -> None:
    row = await message_for(p, message_id)
    if row["read_at"] is None and p.is_client:
        async with transaction():
            await ClientMessage.update({ClientMessage.read_at: datetime.now(UTC)}).where(
                (ClientMessage.id == message_id) & ClientMessage.read_at.is_null()
            )
            await summaries.forget(p.id)
            await live.publish(f"client:{p.id}", "message.read", message_id=message_id)
