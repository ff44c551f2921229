"""Partners (IBs): partner status granted to clients, referral codes and the sub-IB tree."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from app.clients.tables import Client
from app.core import audit, live
from app.core.audit import Actor
from app.core.auth import sessions
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.partners.tables import Partner


def _new_code() -> str:
    return "IB" + secrets.token_hex(3).upper()


async def grant_partner_status(
    client_id: int, actor: Actor, *, parent_id: int | None = None, code: str | None = None
) -> int:
    """Make a client an IB (optionally under a master IB). Idempotent per client."""
    existing = await Partner.select(Partner.id).where(Partner.client == client_id).first()
    if existing:
        return int(existing["id"])
    if not await Client.exists().where(Client.id == client_id):
        raise NotFound("client")
    if parent_id is not None and not await Partner.exists().where(Partner.id == parent_id):
        raise FormErrors({"parent": "That master IB does not exist."})
    async with transaction():
        row = Partner(
            client=client_id,
            code=code or _new_code(),
            parent=parent_id,
            status="active",
            created_at=datetime.now(UTC),
        )
        await row.save()
        await sessions.changed(user_kind="client", user_id=client_id)
        await audit.record(
            actor,
            "partner.granted",
            "partner",
            row.id,
            after={"client_id": client_id, "parent_id": parent_id, "code": row.code},
        )
        await live.publish(f"client:{client_id}", "partner.changed", partner_id=row.id)
    return int(row.id)


async def partner_for(p: Principal) -> dict[str, Any]:
    if p.partner_id is None:
        raise NotFound("partner")
    row = (
        await Partner.select(*Partner.all_columns(), Partner.client.email.as_alias("email"))
        .where(Partner.id == p.partner_id)
        .first()
    )
    if row is None:
        raise NotFound("partner")
    return row


async def network_of(partner_id: int) -> list[dict[str, Any]]:
    """The whole sub-IB tree below a partner, any depth (one recursive query)."""
    return await Partner.raw(
        """
        WITH RECURSIVE tree AS (
            SELECT p.id, p.parent, p.code, p.client, 1 AS depth FROM partners p WHERE p.parent = {}
            UNION ALL
            SELECT c.id, c.parent, c.code, c.client, t.depth + 1 FROM partners c JOIN tree t ON c.parent = t.id
            WHERE t.depth < 20
        )
        SELECT tree.*, cl.first_name, cl.last_name FROM tree JOIN clients cl ON cl.id = tree.client ORDER BY depth, tree.id
        """,
        partner_id,
    )


async def list_partners_for(viewer: Principal) -> list[dict[str, Any]]:
    if not viewer.is_staff:
        raise NotFound("partner")
    return await Partner.select(
        Partner.id,
        Partner.code,
        Partner.status,
        Partner.created_at,
        Partner.client.email.as_alias("email"),
        Partner.client.first_name.as_alias("first_name"),
        Partner.client.last_name.as_alias("last_name"),
        Partner.parent.code.as_alias("parent_code"),
    ).order_by(Partner.id)
