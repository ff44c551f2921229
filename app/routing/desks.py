"""Settings › Desks: the desks, who sits on them with what capacity, and the rules that feed them."""

from __future__ import annotations

from typing import Any

import pycountry

from app.core import audit, db, live
from app.core.audit import Actor
from app.core.db import transaction
from app.core.errors import FormErrors
from app.routing.services import MAX_CAPACITY


async def overview() -> dict[str, Any]:
    desks = await db.fetch("SELECT id, name, active FROM routing_desks ORDER BY name")
    members = await db.fetch(
        "SELECT m.id, m.desk, m.staff, m.capacity, m.active, s.name, s.email, "
        "(SELECT count(*) FROM routing_assignments a JOIN clients c ON c.id = a.client "
        " WHERE a.desk = m.desk AND a.owner = m.staff AND c.stage = 'lead') AS open_leads "
        "FROM routing_desk_members m JOIN staff_users s ON s.id = m.staff ORDER BY s.name"
    )
    rules = await db.fetch(
        "SELECT r.id, r.priority, r.country, r.language, r.desk, d.name AS desk_name "
        "FROM routing_rules r JOIN routing_desks d ON d.id = r.desk ORDER BY r.priority, r.id"
    )
    pool = await db.fetch(
        "SELECT desk, count(*) AS n FROM routing_assignments a JOIN clients c ON c.id = a.client "
        "WHERE a.owner IS NULL AND c.stage = 'lead' GROUP BY desk"
    )
    pooled = {r["desk"]: r["n"] for r in pool}
    for d in desks:
        d["members"] = [m for m in members if m["desk"] == d["id"]]
        d["pool"] = pooled.get(d["id"], 0)
    staff = await db.fetch("SELECT id, name FROM staff_users WHERE is_active ORDER BY name")
    return {"desks": desks, "rules": rules, "staff": staff, "unassigned_pool": pooled.get(None, 0)}


def _int(value: str, field: str, low: int, high: int, errors: dict[str, str]) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        errors[field] = "Enter a whole number."
        return 0
    if not low <= n <= high:
        errors[field] = f"Between {low} and {high}."
    return n


async def _desk_exists(value: str, errors: dict[str, str]) -> int:
    try:
        desk_id = int(value)
    except ValueError:
        errors["desk"] = "Choose a desk."
        return 0
    if await db.fetchrow("SELECT id FROM routing_desks WHERE id = $1", desk_id) is None:
        errors["desk"] = "Choose a desk."
    return desk_id


async def create_desk(name: str, actor: Actor) -> int:
    name = name.strip()
    if not name:
        raise FormErrors({"name": "Give the desk a name."})
    if len(name) > 100:
        raise FormErrors({"name": "At most 100 characters."})
    async with transaction():
        row = await db.fetchrow(
            "INSERT INTO routing_desks (name, active) VALUES ($1, true) ON CONFLICT (name) DO NOTHING RETURNING id",
            name,
        )
        if row is None:
            raise FormErrors({"name": "A desk with this name exists."})
        await audit.record(actor, "desk.created", "desk", row["id"], after={"name": name})
    return int(row["id"])


async def add_member(data: dict[str, str], actor: Actor) -> int:
    errors: dict[str, str] = {}
    desk_id = await _desk_exists(data.get("desk", ""), errors)
    capacity = _int(data.get("capacity", ""), "capacity", 1, MAX_CAPACITY, errors)
    try:
        staff_id = int(data.get("staff", ""))
    except ValueError:
        staff_id = 0
    if await db.fetchrow("SELECT id FROM staff_users WHERE id = $1 AND is_active", staff_id) is None:
        errors["staff"] = "Choose an active staff member."
    if errors:
        raise FormErrors(errors)
    async with transaction():
        row = await db.fetchrow(
            "INSERT INTO routing_desk_members (desk, staff, capacity, active) VALUES ($1, $2, $3, true) "
            "ON CONFLICT (desk, staff) DO NOTHING RETURNING id",
            desk_id,
            staff_id,
            capacity,
        )
        if row is None:
            raise FormErrors({"staff": "Already a member of this desk."})
        await audit.record(
            actor, "desk.member_added", "desk", desk_id, after={"staff": staff_id, "capacity": capacity}
        )
    return int(row["id"])


async def add_rule(data: dict[str, str], actor: Actor) -> int:
    errors: dict[str, str] = {}
    desk_id = await _desk_exists(data.get("desk", ""), errors)
    priority = _int(data.get("priority", "") or "100", "priority", 0, 100_000, errors)
    country = data.get("country", "").strip().upper()
    if country and (len(country) != 2 or pycountry.countries.get(alpha_2=country) is None):
        errors["country"] = "An ISO 3166 alpha-2 code like DE, or empty for any country."
    language = data.get("language", "").strip().lower()
    if language and (len(language) != 2 or pycountry.languages.get(alpha_2=language) is None):
        errors["language"] = "An ISO 639-1 code like de, or empty for any language."
    if errors:
        raise FormErrors(errors)
    async with transaction():
        row = await db.fetchrow(
            "INSERT INTO routing_rules (priority, country, language, desk) VALUES ($1, $2, $3, $4) RETURNING id",
            priority,
            country,
            language,
            desk_id,
        )
        assert row is not None
        after = {"priority": priority, "country": country, "language": language, "desk": desk_id}
        await audit.record(actor, "routing_rule.added", "routing_rule", row["id"], after=after)
    return int(row["id"])


async def remove_rule(rule_id: str, actor: Actor) -> None:
    try:
        rid = int(rule_id)
    except ValueError:
        raise FormErrors({"rule": "No such rule."}) from None
    async with transaction():
        row = await db.fetchrow("DELETE FROM routing_rules WHERE id = $1 RETURNING *", rid)
        if row is None:
            raise FormErrors({"rule": "No such rule."})
        await audit.record(actor, "routing_rule.removed", "routing_rule", rid, before=row)


async def set_desk_active(desk_id: int, active: bool, actor: Actor) -> None:
    """An inactive desk gets no new leads (its rules are skipped); what it holds stays where it is."""
    async with transaction():
        row = await db.fetchrow(
            "SELECT id, name, active FROM routing_desks WHERE id = $1 FOR UPDATE", desk_id
        )
        if row is None:
            raise FormErrors({"desk": "No such desk."})
        if row["active"] == active:
            return
        await db.fetch("UPDATE routing_desks SET active = {} WHERE id = {}", active, desk_id)
        await audit.record(
            actor,
            "desk.activated" if active else "desk.deactivated",
            "desk",
            desk_id,
            before={"active": row["active"]},
            after={"active": active},
        )


async def update_member(member_id: int, data: dict[str, str], actor: Actor) -> int:
    """Change an agent's capacity or take them off the desk (active off) and back on.

    Taking an agent off a desk returns their uncontacted leads on that desk to its pool, each
    audited like the idle-lead return, so no lead waits on someone who no longer works it.
    Returns how many leads went back."""
    errors: dict[str, str] = {}
    capacity = _int(data.get("capacity", ""), "capacity", 1, MAX_CAPACITY, errors)
    active = data.get("active") == "on"
    if errors:
        raise FormErrors(errors)
    returned = 0
    async with transaction():
        row = await db.fetchrow("SELECT * FROM routing_desk_members WHERE id = $1 FOR UPDATE", member_id)
        if row is None:
            raise FormErrors({"member": "No such desk member."})
        if (row["capacity"], row["active"]) == (capacity, active):
            return 0
        await db.fetch(
            "UPDATE routing_desk_members SET capacity = {}, active = {} WHERE id = {}",
            capacity,
            active,
            member_id,
        )
        await audit.record(
            actor,
            "desk.member_changed",
            "desk",
            row["desk"],
            before={"staff": row["staff"], "capacity": row["capacity"], "active": row["active"]},
            after={"staff": row["staff"], "capacity": capacity, "active": active},
        )
        if row["active"] and not active:
            leads = await db.fetch(
                "UPDATE routing_assignments a SET owner = NULL FROM clients c "
                "WHERE c.id = a.client AND a.desk = {} AND a.owner = {} AND c.stage = 'lead' "
                "AND a.first_contact_at IS NULL RETURNING a.client",
                row["desk"],
                row["staff"],
            )
            for lead in leads:
                await audit.record(
                    actor,
                    "lead.returned_to_pool",
                    "client",
                    lead["client"],
                    before={"owner": row["staff"]},
                    after={"owner": None, "desk": row["desk"], "reason": "agent taken off the desk"},
                )
                await live.publish("staff:all", "client.changed", client_id=lead["client"])
                await live.publish(
                    f"staff:client:{lead['client']}", "client_page.assignment", client_id=lead["client"]
                )
            returned = len(leads)
    return returned
