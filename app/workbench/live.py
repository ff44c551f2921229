"""Mentions arrive live: the mentioned colleague's counter (and open mentions list) update in place."""

from __future__ import annotations

from app.core.auth.principal import Principal
from app.core.live import Event, render_template, renderer
from app.workbench import services


@renderer("mention.created")
async def mention_created(viewer: Principal, event: Event) -> str | None:
    """Only for the colleague the event is addressed to, and only if the note really mentions them."""
    if not (viewer.is_staff and event.topic == f"staff:user:{viewer.id}"):
        return None
    mention = await services.mention_for(viewer, int(event.ids["note_id"]))
    if mention is None:
        return None
    count = await services.unread_mentions(viewer.id)
    return render_template("workbench/_mention_counter.html", count=count, oob=True) + render_template(
        "workbench/_mention_oob.html", m=mention
    )
