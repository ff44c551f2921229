"""Lead routing: rules pick a desk, the desk's agents take turns within their capacity, and a
first-contact clock starts. Idle leads go back to the desk's pool so nobody sits on them.

An agent's *open* leads are the leads they own that are still at stage `lead`; capacity caps those.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core import audit, db, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.settings import get_settings

MAX_CAPACITY = 10_000
BATCH = 500

_RULE = (
    "SELECT r.desk FROM routing_rules r JOIN routing_desks d ON d.id = r.desk AND d.active "
    "WHERE (r.country = '' OR r.country = $1) AND (r.language = '' OR r.language = $2) "
    "ORDER BY r.priority, r.id LIMIT 1"
)
# Active agents below capacity, the one whose last lead on this desk is oldest (or who has none) first.
_NEXT_AGENT = """
SELECT m.staff, s.name FROM routing_desk_members m JOIN staff_users s ON s.id = m.staff AND s.is_active
WHERE m.desk = $1 AND m.active
  AND (SELECT count(*) FROM routing_assignments a JOIN clients c ON c.id = a.client
       WHERE a.desk = m.desk AND a.owner = m.staff AND c.stage = 'lead') < m.capacity
ORDER BY (SELECT max(a.assigned_at) FROM routing_assignments a WHERE a.desk = m.desk AND a.owner = m.staff)
         NULLS FIRST, m.id
LIMIT 1
"""


def _now() -> datetime:
    return datetime.now(UTC)


async def _desk_for(country: str, language: str) -> dict[str, Any] | None:
    row = await db.fetchrow(_RULE, country or "", language or "")
    if row is not None:
        return await db.fetchrow("SELECT id, name FROM routing_desks WHERE id = $1", row["desk"])
    name = get_settings().default_desk
    if not name:
        return None
    return await db.fetchrow("SELECT id, name FROM routing_desks WHERE name = $1 AND active", name)


async def route_lead(client_id: int, actor: Actor) -> dict[str, Any]:
    """Assign a new lead to a desk and an agent; joins the caller's transaction.

    The desk row is locked while its next agent is chosen, so concurrent leads queue up and each
    sees the assignments before it: nobody is booked beyond capacity. A lead already assigned
    keeps its assignment.
    """
    async with transaction():
        existing = await db.fetchrow("SELECT * FROM routing_assignments WHERE client = $1", client_id)
        if existing is not None:
            return existing
        client = await db.fetchrow("SELECT id, country, language FROM clients WHERE id = $1", client_id)
        if client is None:
            raise NotFound("client")
        desk = await _desk_for(client["country"], client["language"])
        owner: dict[str, Any] | None = None
        if desk is not None:
            await db.fetchrow("SELECT id FROM routing_desks WHERE id = $1 FOR UPDATE", desk["id"])
            owner = await db.fetchrow(_NEXT_AGENT, desk["id"])
        now = _now()
        due = now + timedelta(minutes=get_settings().first_contact_sla_minutes)
        row = await db.fetchrow(
            "INSERT INTO routing_assignments "
            "(client, desk, owner, assigned_at, first_contact_due_at, first_contact_at, last_touched_at) "
            "VALUES ($1, $2, $3, $4, $5, NULL, $4) RETURNING *",
            client_id,
            desk["id"] if desk else None,
            owner["staff"] if owner else None,
            now,
            due,
        )
        assert row is not None
        await audit.record(
            actor,
            "lead.assigned",
            "client",
            client_id,
            after={
                "desk": desk["id"] if desk else None,
                "desk_name": desk["name"] if desk else None,
                "owner": owner["staff"] if owner else None,
                "owner_name": owner["name"] if owner else None,
                "first_contact_due_at": due.isoformat(),
            },
        )
        await live.publish("staff:all", "client.changed", client_id=client_id)
        await live.publish(f"staff:client:{client_id}", "client_page.assignment", client_id=client_id)
    return row


async def mark_contacted(client_id: int, actor: Actor) -> None:
    """The first contact stops the SLA clock; every contact restarts the idle clock."""
    now = _now()
    async with transaction():
        row = await db.fetchrow(
            "SELECT first_contact_at FROM routing_assignments WHERE client = $1 FOR UPDATE", client_id
        )
        if row is None:
            raise FormErrors(
                {"__all__": "This client is not assigned to a desk, so there is no clock to stop."}
            )
        first = row["first_contact_at"] or now
        await db.fetchrow(
            "UPDATE routing_assignments SET first_contact_at = $2, last_touched_at = $3 WHERE client = $1",
            client_id,
            first,
            now,
        )
        await audit.record(
            actor,
            "lead.contacted",
            "client",
            client_id,
            before={"first_contact_at": row["first_contact_at"]},
            after={"first_contact_at": first.isoformat(), "last_touched_at": now.isoformat()},
        )
        await live.publish("staff:all", "client.changed", client_id=client_id)
        await live.publish(f"staff:client:{client_id}", "client_page.assignment", client_id=client_id)


async def return_idle_leads(days: int | None = None, *, now: datetime | None = None) -> int:
    """Owned leads untouched for `days` go back to their desk's pool (owner NULL).

    Idempotent: the conditional UPDATE only takes leads that still have an owner and are still idle,
    so a second run (or a second worker) finds nothing; each batch commits with its audit rows.
    """
    days = days if days is not None else get_settings().lead_idle_days
    cutoff = (now or _now()) - timedelta(days=days)
    actor = Actor.system("idle lead job")
    returned = 0
    while True:
        async with transaction():
            rows = await db.fetch(
                "UPDATE routing_assignments a SET owner = NULL FROM ("
                " SELECT a2.id, a2.owner FROM routing_assignments a2 JOIN clients c ON c.id = a2.client"
                " WHERE a2.owner IS NOT NULL AND a2.last_touched_at < {} AND c.stage = 'lead'"
                " ORDER BY a2.id LIMIT {} FOR UPDATE OF a2 SKIP LOCKED) idle "
                "WHERE a.id = idle.id RETURNING a.client, a.desk, idle.owner AS previous_owner",
                cutoff,
                BATCH,
            )
            for r in rows:
                await audit.record(
                    actor,
                    "lead.returned_to_pool",
                    "client",
                    r["client"],
                    before={"owner": r["previous_owner"]},
                    after={"owner": None, "desk": r["desk"], "idle_days": days},
                )
                await live.publish("staff:all", "client.changed", client_id=r["client"])
                await live.publish(
                    f"staff:client:{r['client']}", "client_page.assignment", client_id=r["client"]
                )
        returned += len(rows)
        if len(rows) < BATCH:
            return returned


def may_reassign(p: Principal) -> bool:
    return p.is_staff and p.has_role("admin")


async def reassign(client_id: int, owner_id: int | None, actor: Actor, by: Principal) -> None:
    """An admin hands a lead to an agent (or back to the pool, owner None), beyond capacity if they
    choose. The agent must be an active member of an active desk; the lead moves to that desk when
    the agent is not on its current one. A new owner gets a fresh idle clock."""
    if not may_reassign(by):
        raise PermissionError("Only administrators may reassign leads.")
    now = _now()
    async with transaction():
        current = await db.fetchrow(
            "SELECT * FROM routing_assignments WHERE client = $1 FOR UPDATE", client_id
        )
        if await db.fetchrow("SELECT id FROM clients WHERE id = $1", client_id) is None:
            raise NotFound("client")
        desk_id = current["desk"] if current else None
        if owner_id is not None:
            desks = await db.fetch(
                "SELECT m.desk FROM routing_desk_members m JOIN routing_desks d ON d.id = m.desk AND d.active "
                "JOIN staff_users s ON s.id = m.staff AND s.is_active "
                "WHERE m.staff = {} AND m.active ORDER BY (m.desk = {}) DESC, m.desk",
                owner_id,
                desk_id if desk_id is not None else 0,
            )
            if not desks:
                raise FormErrors({"owner": "Choose an active member of an active desk."})
            desk_id = desks[0]["desk"]
        if current is None:
            due = now + timedelta(minutes=get_settings().first_contact_sla_minutes)
            await db.fetchrow(
                "INSERT INTO routing_assignments "
                "(client, desk, owner, assigned_at, first_contact_due_at, last_touched_at) "
                "VALUES ($1, $2, $3, $4, $5, $4)",
                client_id,
                desk_id,
                owner_id,
                now,
                due,
            )
        else:
            await db.fetchrow(
                "UPDATE routing_assignments SET desk = $2, owner = $3, assigned_at = $4, last_touched_at = $4 "
                "WHERE client = $1",
                client_id,
                desk_id,
                owner_id,
                now,
            )
        await audit.record(
            actor,
            "lead.reassigned",
            "client",
            client_id,
            before={"desk": current["desk"], "owner": current["owner"]} if current else None,
            after={"desk": desk_id, "owner": owner_id},
        )
        await live.publish("staff:all", "client.changed", client_id=client_id)
        await live.publish(f"staff:client:{client_id}", "client_page.assignment", client_id=client_id)


# --- what the client page shows -----------------------------------------------------------------


def sla_state(row: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The SLA clock as the panel shows it: contacted, overdue, or due in so long."""
    now = now or _now()
    if row["first_contact_at"] is not None:
        return {
            "state": "contacted",
            "label": "contacted " + row["first_contact_at"].strftime("%Y-%m-%d %H:%M"),
        }
    left = row["first_contact_due_at"] - now
    if left.total_seconds() <= 0:
        late = int(-left.total_seconds() // 60)
        return {"state": "overdue", "label": f"overdue by {_duration(late)}"}
    return {"state": "due", "label": f"due in {_duration(math.ceil(left.total_seconds() / 60))}"}


def _duration(minutes: int) -> str:
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // 1440} days"


async def assignment_panel_for(p: Principal, client_id: int) -> dict[str, Any]:
    """The panel's context; the caller has checked the viewer may see the client."""
    row = await db.fetchrow(
        "SELECT a.*, d.name AS desk_name, s.name AS owner_name FROM routing_assignments a "
        "LEFT JOIN routing_desks d ON d.id = a.desk LEFT JOIN staff_users s ON s.id = a.owner "
        "WHERE a.client = $1",
        client_id,
    )
    ctx: dict[str, Any] = {
        "client_id": client_id,
        "assignment": row,
        "sla": sla_state(row) if row else None,
        "can_reassign": may_reassign(p),
        "agents": [],
        "assignment_loaded": True,
    }
    if ctx["can_reassign"]:
        ctx["agents"] = await db.fetch(
            "SELECT DISTINCT s.id, s.name FROM routing_desk_members m JOIN staff_users s ON s.id = m.staff "
            "JOIN routing_desks d ON d.id = m.desk AND d.active WHERE m.active AND s.is_active ORDER BY s.name"
        )
    return ctx
