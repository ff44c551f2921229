"""How client events appear in open pages: each viewer's own partial, rendered for them."""

from __future__ import annotations

from app.clients import bulk_runs, services
from app.core.auth.principal import Principal
from app.core.errors import NotFound
from app.core.live import Event, render_template, renderer


def _for_viewer(viewer: Principal, event: Event) -> bool:
    """Only the client the event is about: a stray event must render nothing, not another's data."""
    return viewer.is_client and event.topic == f"client:{viewer.id}"


@renderer("message.created")
async def new_message(viewer: Principal, event: Event) -> str | None:
    if not _for_viewer(viewer, event):
        return None
    count = await services.unread_count(viewer.id)
    html = render_template("portal/_unread_oob.html", count=count)
    msg = await services.message_for(viewer, int(event.ids["message_id"]))
    return html + render_template("portal/_message_oob.html", m=msg)


@renderer("message.read")
async def message_read(viewer: Principal, event: Event) -> str | None:
    if not _for_viewer(viewer, event):
        return None
    return render_template("portal/_unread_oob.html", count=await services.unread_count(viewer.id))


@renderer("client.verified")
async def verified(viewer: Principal, event: Event) -> str | None:
    if not _for_viewer(viewer, event):
        return None
    return '<div id="verify-banner" hx-swap-oob="true"></div>'


@renderer("bulk.progress")
async def bulk_progress(viewer: Principal, event: Event) -> str | None:
    """The run's progress bar, swapped in wherever its owner has it open (list page or run page)."""
    if not (viewer.is_staff and event.topic == f"staff:user:{viewer.id}"):
        return None
    try:
        run = await bulk_runs.run_for(viewer, int(event.ids["run_id"]))
    except (NotFound, KeyError, ValueError):
        return None
    if run["staff"] != viewer.id:
        return None
    return render_template("clients/_bulk_progress.html", run=run, oob=True)
