"""The screening page, live: the re-screening's progress bar and the open-case count move as the
job works, for compliance officers and administrators only."""

from __future__ import annotations

from app.core.auth.principal import Principal
from app.core.live import Event, render_template, renderer
from app.screening import lists, runs
from app.screening.services import count_open


def _for_viewer(viewer: Principal, event: Event) -> bool:
    return (
        viewer.is_staff
        and lists.may_screen(viewer)
        and event.topic in {f"staff:role:{r}" for r in viewer.roles}
        # A viewer with both roles hears each event twice: answer the first topic only.
        and event.topic == min(t for t in lists.PROGRESS_TOPICS if t.rsplit(":", 1)[1] in viewer.roles)
    )


@renderer("screening.progress")
async def progress(viewer: Principal, event: Event) -> str | None:
    if not _for_viewer(viewer, event):
        return None
    return render_template("screening/_progress.html", run=await runs.latest(), oob=True)


@renderer("screening.cases_changed")
async def cases_changed(viewer: Principal, event: Event) -> str | None:
    if not _for_viewer(viewer, event):
        return None
    return render_template("screening/_open_count.html", open_count=await count_open(), oob=True)
