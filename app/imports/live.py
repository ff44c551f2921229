"""The import's progress bar moves live: each batch's event re-renders it for whoever started it."""

from __future__ import annotations

from app.core.auth.principal import Principal
from app.core.errors import NotFound
from app.core.live import Event, render_template, renderer
from app.imports import services


@renderer("import.progress")
async def import_progress(viewer: Principal, event: Event) -> str | None:
    """Only on the importer's own channel, and only a run they may see (never another's figures)."""
    if not (viewer.is_staff and event.topic == f"staff:user:{viewer.id}"):
        return None
    try:
        run = await services.get_run_for(viewer, int(event.ids["run_id"]))
    except (NotFound, KeyError, ValueError):
        return None
    return render_template("imports/_progress.html", run=services.progress(run), oob=True)
