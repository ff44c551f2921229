"""The documents page, live: when a document or the level changes (the client's own upload from
another device, a compliance decision, an expiry), the open page swaps in the cards and the level
banner as they are now, rendered for that client only.

Upload forms in these cards carry the CSRF token of the browser the socket serves. A card with a
side still uploading (or waiting for a retry) is left alone by static/js/app.js, so a live update
never throws away a file the client has chosen; the upload's own answer brings the card up to date.
"""

from __future__ import annotations

from typing import Any

from app.core.auth.principal import Principal
from app.core.live import Event, render_template, renderer
from app.core.live_socket import csrf_token
from app.kyc import progress


def _for_viewer(viewer: Principal, event: Event) -> bool:
    """Only the client the event is about: a stray event must render nothing, not another's data."""
    return viewer.is_client and event.topic == f"client:{viewer.id}"


def _document_id(event: Event) -> int | None:
    try:
        return int(event.ids["document_id"])
    except (KeyError, TypeError, ValueError):
        return None


async def _render(viewer: Principal, document_id: int | None = None) -> str:
    """The banner and the cards, out of band: only the card showing `document_id` when one does
    (a side uploaded elsewhere), every card otherwise (a decision on identity changes the address
    card's note; a level change may follow from any of them)."""
    context: dict[str, Any] = await progress.page_for(viewer)
    cards = context["cards"]
    if document_id is not None:
        cards = [c for c in cards if c.document and c.document["id"] == document_id] or cards
    html = render_template("kyc/_portal_level_banner.html", oob=True, **context)
    for card in cards:
        html += render_template(
            "kyc/_portal_card.html", oob=True, card=card, csrf_token=csrf_token, **context
        )
    return html


@renderer("kyc.document_changed")
async def document_changed(viewer: Principal, event: Event) -> str | None:
    if not _for_viewer(viewer, event):
        return None
    return await _render(viewer, _document_id(event))


@renderer("kyc.document_reviewed")
async def document_reviewed(viewer: Principal, event: Event) -> str | None:
    if not _for_viewer(viewer, event):
        return None
    return await _render(viewer)


@renderer("kyc.level_changed")
async def level_changed(viewer: Principal, event: Event) -> str | None:
    if not _for_viewer(viewer, event):
        return None
    return await _render(viewer)
