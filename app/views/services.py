"""Saved views: a name for a client-list URL query, kept private, shared with a desk, or (for staff
who work across desks) with every colleague.

A desk-scoped agent may share only with a desk they sit on: "everyone" would put their pipeline
in front of other desks' agents, which desk scoping exists to prevent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from app.clients.filters import ClientFilters
from app.clients.scoping import is_desk_scoped
from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.views.tables import SavedView


def _staff_only(viewer: Principal) -> None:
    if not viewer.is_staff:
        raise NotFound("view")


_MY_DESKS = "SELECT m.desk FROM routing_desk_members m WHERE m.staff = {} AND m.active"


async def views_for(viewer: Principal) -> list[dict[str, Any]]:
    """The viewer's own views, then those shared with everyone or with a desk the viewer sits on."""
    _staff_only(viewer)
    return await db.fetch(
        "SELECT v.id, v.name, v.query, v.scope, v.owner, s.name AS owner_name, d.name AS desk_name, "
        "(v.owner = {}) AS mine FROM saved_views v JOIN staff_users s ON s.id = v.owner "
        "LEFT JOIN routing_desks d ON d.id = v.desk "
        f"WHERE v.owner = {{}} OR v.scope = 'all' OR (v.scope = 'desk' AND v.desk IN ({_MY_DESKS})) "
        "ORDER BY (v.owner = {}) DESC, lower(v.name), v.id LIMIT 100",
        viewer.id,
        viewer.id,
        viewer.id,
        viewer.id,
    )


async def share_options(viewer: Principal) -> list[dict[str, str]]:
    """Whom the viewer may share a view with: value (as the form posts it) and label."""
    _staff_only(viewer)
    desks = await db.fetch(
        "SELECT d.id, d.name FROM routing_desks d WHERE d.active AND d.id IN (" + _MY_DESKS + ") "
        "ORDER BY d.name, d.id",
        viewer.id,
    )
    options = [{"value": "private", "label": "Only me"}]
    options += [{"value": f"desk:{d['id']}", "label": f"Desk {d['name']}"} for d in desks]
    if not is_desk_scoped(viewer):
        options.append({"value": "all", "label": "Every colleague"})
    return options


async def save_view(viewer: Principal, name: str, query: str, share: str, actor: Actor) -> int:
    """Store the query in its canonical form: strictly re-parsed, without a page cursor."""
    _staff_only(viewer)
    name = name.strip()
    errors = {}
    if not name:
        errors["name"] = "Give the view a name."
    elif len(name) > 80:
        errors["name"] = "Keep the name under 80 characters."
    if len(query) > 2000:
        errors["query"] = "This list is too long to save."
    share = share or "private"
    if share not in {o["value"] for o in await share_options(viewer)}:
        errors["share"] = "You can share a view only with yourself or a desk you sit on."
    if errors:
        raise FormErrors(errors)
    scope, _, desk = share.partition(":")
    canonical = ClientFilters.parse(parse_qs(query, keep_blank_values=True)).query()
    async with transaction():
        row = SavedView(
            owner=viewer.id,
            name=name,
            query=canonical,
            scope=scope,
            desk=int(desk) if desk else None,
            created_at=datetime.now(UTC),
        )
        await row.save()
        await audit.record(
            actor,
            "clients.view_saved",
            "saved_view",
            row.id,
            after={"name": name, "scope": scope, "desk": row.desk},
        )
    return int(row.id)


async def delete_view(viewer: Principal, view_id: int, actor: Actor) -> None:
    """Only the owner deletes a view; to anyone else it does not exist."""
    _staff_only(viewer)
    async with transaction():
        row = (
            await SavedView.select().where((SavedView.id == view_id) & (SavedView.owner == viewer.id)).first()
        )
        if row is None:
            raise NotFound("view")
        await SavedView.delete().where(SavedView.id == view_id)
        await audit.record(actor, "clients.view_deleted", "saved_view", view_id, before={"name": row["name"]})
