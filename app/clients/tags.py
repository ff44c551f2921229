"""Client tags: short free-text labels staff put on clients, to find them and act on them together.

A tag is stored normalised (trimmed, inner whitespace collapsed to one space, lower case), so
"VIP", " vip " and "Vip" are one tag and the unique (client, tag) index is the whole de-dup rule.
Who may see a client may tag it, as with notes: `get_client_for` answers 404 to everyone else.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from app.core import audit, db, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.cache import SharedCache
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.workbench.timeline import record_event

TAG_MAX = 40
SUGGESTIONS = 100
_ALLOWED = re.compile(r"^[\w -]+$")  # \w: letters of any script, digits and the underscore


def clean_tag(raw: str) -> tuple[str, str | None]:
    """The stored form of `raw` and what is wrong with it (None: nothing; "" in, "" out, no problem)."""
    tag = " ".join(raw.split()).lower()
    if not tag:
        return "", None
    if len(tag) > TAG_MAX:
        return tag, f"A tag has at most {TAG_MAX} characters."
    if not _ALLOWED.match(tag):
        return tag, "A tag may contain only letters, digits, spaces, hyphens (-) and underscores (_)."
    return tag, None


def valid_tag(raw: str) -> str:
    """The stored form of `raw`, or FormErrors on the `tag` field."""
    tag, problem = clean_tag(raw)
    if not tag:
        raise FormErrors({"tag": "Enter a tag."})
    if problem:
        raise FormErrors({"tag": problem})
    return tag


async def _visible(viewer: Principal, client_id: int) -> None:
    from app.clients.services import get_client_for  # services import the filters, which import us

    if not viewer.is_staff:
        raise NotFound("client")
    await get_client_for(viewer, client_id)


async def tags_for(viewer: Principal, client_id: int) -> list[dict[str, Any]]:
    await _visible(viewer, client_id)
    return await db.fetch(
        "SELECT t.id, t.tag, t.created_at, s.name AS created_by_name FROM client_tags t "
        "LEFT JOIN staff_users s ON s.id = t.created_by WHERE t.client = {} ORDER BY t.tag",
        client_id,
    )


_suggestions: SharedCache[list[str]] = SharedCache("tag_suggestions", ttl=60.0, max_entries=2_000)
"""Counting every tag in use is a scan (100+ ms over a million clients); a minute-old list of
hints is as good, and any tag change anywhere forgets them all."""


async def suggestions_for(viewer: Principal) -> list[str]:
    """Tags in use on clients the viewer may see, most used first (a tag elsewhere is no hint to them)."""
    from app.clients.scoping import is_desk_scoped

    key: tuple[str, int] = ("agent", viewer.id) if is_desk_scoped(viewer) else ("all", 0)
    return await _suggestions.get(key, lambda: _count_suggestions(viewer))


async def _count_suggestions(viewer: Principal) -> list[str]:
    from app.clients.scoping import visible_client_sql

    scope, params = visible_client_sql(viewer)
    if scope == "TRUE":
        sql = "SELECT t.tag FROM client_tags t GROUP BY t.tag ORDER BY count(*) DESC, t.tag LIMIT {}"
    else:
        sql = (
            f"SELECT t.tag FROM client_tags t JOIN clients c ON c.id = t.client WHERE {scope} "
            "GROUP BY t.tag ORDER BY count(*) DESC, t.tag LIMIT {}"
        )
    return [r["tag"] for r in await db.fetch(sql, *params, SUGGESTIONS)]


async def add_tag(viewer: Principal, client_id: int, tag: str, actor: Actor) -> str:
    """Tag the client; returns the stored form. A tag the client already has is a form error."""
    await _visible(viewer, client_id)  # an outsider learns nothing, not even that the tag was bad
    tag = valid_tag(tag)
    async with transaction():
        if not await put_tag(client_id, tag, actor, by=viewer):
            raise FormErrors({"tag": f"This client already has the tag “{tag}”."})
    return tag


async def remove_tag(viewer: Principal, client_id: int, tag: str, actor: Actor) -> str:
    await _visible(viewer, client_id)
    tag = valid_tag(tag)
    async with transaction():
        if not await drop_tag(client_id, tag, actor, by=viewer):
            raise FormErrors({"tag": f"This client has no tag “{tag}” (a colleague may have removed it)."})
    return tag


async def put_tag(client_id: int, tag: str, actor: Actor, *, by: Principal) -> bool:
    """Add a clean tag inside the caller's transaction, after the caller checked access.

    False when the client already had it (nothing written): so a repeated bulk run changes nothing."""
    row = await db.fetchrow(
        "INSERT INTO client_tags (client, tag, created_at, created_by) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (client, tag) DO NOTHING RETURNING id",
        client_id,
        tag,
        datetime.now(UTC),
        by.id,
    )
    if row is None:
        return False
    await audit.record(actor, "client.tag_added", "client", client_id, after={"tag": tag})
    await _suggestions.forget(None)
    await record_event(client_id, "tag", f"Tag added: {tag} (by {by.name})", "client_tag", row["id"])
    await live.publish("staff:all", "client.tags_changed", client_id=client_id)
    await live.publish(f"staff:client:{client_id}", "client_page.tags", client_id=client_id)
    return True


async def drop_tag(client_id: int, tag: str, actor: Actor, *, by: Principal) -> bool:
    """Remove a clean tag inside the caller's transaction; False when the client did not have it."""
    row = await db.fetchrow(
        "DELETE FROM client_tags WHERE client = $1 AND tag = $2 RETURNING id", client_id, tag
    )
    if row is None:
        return False
    await audit.record(actor, "client.tag_removed", "client", client_id, before={"tag": tag})
    await _suggestions.forget(None)
    await record_event(client_id, "tag", f"Tag removed: {tag} (by {by.name})", "client_tag", row["id"])
    await live.publish("staff:all", "client.tags_changed", client_id=client_id)
    await live.publish(f"staff:client:{client_id}", "client_page.tags", client_id=client_id)
    return True


async def tags_of(client_ids: list[int]) -> dict[int, list[str]]:
    """Each client's tags, for a page of the list (the caller has already scoped the ids)."""
    if not client_ids:
        return {}
    rows = await db.fetch(
        "SELECT client, array_agg(tag ORDER BY tag) AS tags FROM client_tags "
        "WHERE client = ANY({}) GROUP BY client",
        client_ids,
    )
    return {r["client"]: list(r["tags"]) for r in rows}
