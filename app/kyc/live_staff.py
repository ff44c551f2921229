"""KYC in open staff pages, live: the review queue follows every claim and decision, and the client
page's KYC panel (and timeline) follows that client's documents and level.

The queue's filters live in the reviewer's page, not on the server, so a queue change sends a
small element that makes the page reload its own rows with its own filters (one request, only
on pages that show the queue). Renderers decide who receives anything: reviewers for the queue,
staff who may see the client for the panel.
"""

from __future__ import annotations

from app.core.auth.principal import Principal
from app.core.errors import NotFound
from app.core.live import Event, render_template, renderer
from app.core.live_socket import csrf_token
from app.kyc import dossier, queue
from app.workbench import services as workbench


@renderer("kyc.queue_changed")
async def queue_changed(viewer: Principal, event: Event) -> str | None:
    """Reviewers only; once per viewer even when they hold both reviewer roles."""
    if not queue.is_reviewer(viewer):
        return None
    own = "compliance" if viewer.has_role("compliance") else "admin"
    if event.topic != f"staff:role:{own}":
        return None
    return render_template("kyc/_staff_queue_live.html")


@renderer("client_page.kyc")
async def client_panel(viewer: Principal, event: Event) -> str | None:
    if not viewer.is_staff:
        return None
    try:
        client_id = int(event.ids["client_id"])
    except (KeyError, TypeError, ValueError):
        return None
    if event.topic != f"staff:client:{client_id}":
        return None
    try:
        context = await dossier.client_panel_for(viewer, client_id)  # proves access, too
    except NotFound:
        return None
    panel = render_template("kyc/_staff_client_panel.html", **context)
    page = await workbench.timeline_for(viewer, client_id)
    timeline = render_template(
        "workbench/_timeline_panel.html",
        csrf_token=csrf_token,
        client=context["client"],
        timeline=page["events"],
        timeline_older=page["older"],
        timeline_before=None,
    )
    return (
        f'<div id="kyc-panel" hx-swap-oob="innerHTML">{panel}</div>'
        f'<div id="timeline-panel" hx-swap-oob="innerHTML">{timeline}</div>'
    )
