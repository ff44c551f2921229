"""Saved views: a name for a client-list URL query, kept private or shared with colleagues."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from app.clients.filters import ClientFilters
from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.views.tables import SavedView


def _staff_only(viewer: Principal) -> None:
    if not viewer.is_staff:
        raise NotFound("view")


async def views_for(viewer: Principal) -> list[dict[str, Any]]:
    """The viewer's own views, then colleagues' shared ones."""
    _staff_only(viewer)
    return await db.fetch(
        "SELECT v.id, v.name, v.query, v.shared, v.owner, s.name AS owner_name, (v.owner = {}) AS mine "
        "FROM saved_views v JOIN staff_users s ON s.id = v.owner "
        "WHERE v.owner = {} OR v.shared ORDER BY (v.owner = {}) DESC, lower(v.name), v.id LIMIT 100",
        viewer.id,
        viewer.id,
        viewer.id,
    )


async def save_view(viewer: Principal, name: str, query: str, shared: bool, actor: Actor) -> int:
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
    if errors:
        raise FormErrors(errors)
    canonical = ClientFilters.parse(parse_qs(query, keep_blank_values=True)).query()
    async with transaction():
        row = SavedView(
            owner=viewer.id, name=name, query=canonical, shared=shared, created_at=datetime.now(UTC)
        )
        await row.save()
        await audit.record(
            actor, "clients.view_saved", "saved_view", row.id, after={"name": name, "shared": shared}
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
