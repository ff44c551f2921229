"""Clients: portal registration, the staff view of a client, and staff-to-client messages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from piccolo.columns import Column

from app.clients import lifecycle, tags
from app.clients.cache import summaries
from app.clients.filters import ClientFilters
from app.clients.scoping import is_desk_scoped, visible_client_sql, visible_in_list_sql
from app.clients.tables import STAGES, Client, ClientMessage
from app.core import audit, db, jobs, live, mail
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
        jobs.enqueue_after_commit(
            "screening_screen_client", key=f"screening:client:{client_id}", client_id=client_id
        )
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
    if viewer.is_staff:
        scope, params = visible_client_sql(viewer)
        if scope != "TRUE" and not await db.fetch(
            f"SELECT 1 FROM clients c WHERE c.id = {{}} AND {scope}", client_id, *params
        ):
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


NAME_SQL = "lower(c.first_name || ' ' || c.last_name)"
PHONE_DIGITS_SQL = "regexp_replace(c.phone, '[^0-9]', '', 'g')"
STAGE_SQL = (
    "array_position(ARRAY[" + ",".join(f"'{s}'" for s in STAGES) + "]::text[], c.stage::text)"
)  # the lifecycle order; built from our own constant, matching the clients_stage_keyset index
SORT_SQL = {"created": "c.created_at", "name": NAME_SQL, "stage": STAGE_SQL}


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


LIST_FROM = (
    "FROM clients c "
    "LEFT JOIN routing_assignments a ON a.client = c.id "
    "LEFT JOIN staff_users o ON o.id = a.owner "
    "LEFT JOIN routing_desks d ON d.id = a.desk "
    "LEFT JOIN partner_attributions pa ON pa.client = c.id "
    "LEFT JOIN partners p ON p.id = pa.partner "
)
"""What the list's conditions may refer to: the client `c`, assignment `a`, owner `o`, desk `d`, IB `p`."""


def filter_sql(
    viewer: Principal, f: ClientFilters, *, outside_desk: bool = False
) -> tuple[list[str], list[Any]]:
    """The list's conditions (`{}` placeholders, the viewer's scope first) and their parameters, in
    order, without the page cursor: the list pages through them, bulk actions select by them.

    `outside_desk`: the caller found that a desk-scoped viewer filters by a desk they do not sit
    on, where they see only the clients they own; said directly, that is an index lookup instead
    of a walk through the whole book that finds nothing."""
    scope, scope_args = visible_in_list_sql(viewer)  # first: its placeholders come first in `args`
    where: list[str] = [] if scope == "TRUE" else [scope]
    args: list[Any] = list(scope_args)

    def arg(value: Any) -> str:
        args.append(value)
        return "{}"

    if f.q:
        term = f.q.lower()
        parts = [f"{NAME_SQL} LIKE {arg(_like(term))}", f"lower(c.email) LIKE {arg(_like(term))}"]
        digits = re.sub(r"\D", "", f.q).lstrip("0")  # "0151…" and "+49 151…" both find "+49151…"
        if len(digits) >= 4 and not re.search(r"[^\d\s()+./-]", f.q):
            parts.append(f"{PHONE_DIGITS_SQL} LIKE {arg(_like(digits))}")
        where.append("(" + " OR ".join(parts) + ")")
    if f.stage:
        where.append(f"c.stage = {arg(f.stage)}")
    if f.owner is not None:
        if f.owner == 0:
            where.append("a.owner IS NULL")
        elif f.q:
            # With a search term, start from the owner's clients (an index-only read of a few
            # thousand ids): walking the whole book newest first and testing each row reads
            # ~200,000 rows when the term is rare among them.
            where.append(
                f"c.id = ANY(ARRAY(SELECT oa.client FROM routing_assignments oa WHERE oa.owner = {arg(f.owner)}))"
            )
        else:
            where.append(f"a.owner = {arg(f.owner)}")
    if f.desk is not None:
        if f.desk == 0:
            where.append("a.desk IS NULL")
        elif outside_desk:
            where.append(
                "c.id = ANY(ARRAY(SELECT da.client FROM routing_assignments da "
                f"WHERE da.desk = {arg(f.desk)} AND da.owner = {arg(viewer.id)}))"
            )
        else:
            where.append(f"a.desk = {arg(f.desk)}")
    if f.country:
        where.append(f"c.country = {arg(f.country)}")
    if f.language:
        where.append(f"lower(c.language) = {arg(f.language)}")
    if f.ib:
        where.append(f"upper(p.code) = {arg(f.ib.upper())}")
    if f.tag and f.q:  # as for the owner: start from the tagged clients
        where.append(f"c.id = ANY(ARRAY(SELECT t.client FROM client_tags t WHERE t.tag = {arg(f.tag)}))")
    elif f.tag:
        where.append(f"EXISTS (SELECT 1 FROM client_tags t WHERE t.client = c.id AND t.tag = {arg(f.tag)})")
    if f.created_from:
        start = datetime.combine(f.created_from, datetime.min.time(), tzinfo=UTC)
        where.append(f"c.created_at >= {arg(start)}")
    if f.created_to:
        end = datetime.combine(f.created_to + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        where.append(f"c.created_at < {arg(end)}")
    return where, args


async def list_clients_for(viewer: Principal, filters: ClientFilters | None = None) -> dict[str, Any]:
    """One page of the staff client list and the cursor of the next one (keyset, never OFFSET).

    Every value reaches SQL as a parameter; only whitelisted sort expressions are spliced in.
    """
    if not viewer.is_staff:
        raise NotFound("client")
    f = filters or ClientFilters()
    outside = (
        bool(f.desk)
        and is_desk_scoped(viewer)
        and not await db.fetchrow(
            "SELECT 1 FROM routing_desk_members WHERE desk = $1 AND staff = $2 AND active", f.desk, viewer.id
        )
    )
    where, args = filter_sql(viewer, f, outside_desk=outside)

    def arg(value: Any) -> str:
        args.append(value)
        return "{}"

    key = SORT_SQL[f.sort]
    order = "DESC" if f.direction == "desc" else "ASC"
    if f.after is not None and f.after_id is not None:
        cmp = "<" if order == "DESC" else ">"
        where.append(f"({key}, c.id) {cmp} ({arg(f.after)}, {arg(f.after_id)})")
    sql = (
        f"SELECT c.id, c.first_name, c.last_name, c.email, c.phone, c.country, c.language, c.stage, "
        f"c.created_at, c.email_verified_at, {key} AS sort_key, "
        "o.id AS owner_id, o.name AS owner_name, d.id AS desk_id, d.name AS desk_name, p.code AS ib_code "
        + LIST_FROM
        + ("WHERE " + " AND ".join(where) + " " if where else "")
        + f"ORDER BY {key} {order}, c.id {order} LIMIT {arg(f.per + 1)}"
    )
    rows = await db.fetch(sql, *args)
    more = len(rows) > f.per
    rows = rows[: f.per]
    if "tags" in f.cols:
        tagged = await tags.tags_of([r["id"] for r in rows])
        for r in rows:
            r["tags"] = tagged.get(r["id"], [])
    next_query = None
    if more:
        last = rows[-1]
        sort_key = last["sort_key"]
        cursor = sort_key.isoformat() if isinstance(sort_key, datetime) else str(sort_key)
        next_query = f.query(after=cursor, after_id=last["id"])
    return {"clients": rows, "next_query": next_query}


async def list_choices(viewer: Principal) -> dict[str, Any]:
    """The owner and desk pickers of the client list: a desk-scoped agent is offered their desks."""
    desks = (
        await db.fetch(
            "SELECT d.id, d.name FROM routing_desks d WHERE d.id IN (SELECT m.desk FROM routing_desk_members m "
            "WHERE m.staff = {} AND m.active) ORDER BY d.name, d.id",
            viewer.id,
        )
        if is_desk_scoped(viewer)
        else await db.fetch("SELECT id, name FROM routing_desks ORDER BY name, id")
    )
    return {
        "owners": await db.fetch("SELECT id, name FROM staff_users WHERE is_active ORDER BY name, id"),
        "desks": desks,
    }


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
        await mail.queue_email(client["email"], "new_message", {"subject": msg.subject}, client_id=client_id)
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
