"""How client events appear in open pages: each viewer's own partial, rendered for them."""

from __future__ import annotations

from app.clients import services
from app.core.auth.principal import Principal
from app.core.live import Event, render_template, renderer


@renderer("message.created")
async def new_message(viewer: Principal, event: Event) -> str | None:
    if not viewer.is_client:
        return None
    count = await services.unread_count(viewer.id)
    html = render_template("portal/_unread_oob.html", count=count)
    msg = await services.message_for(viewer, int(event.ids["message_id"]))
    return html + render_template("portal/_message_oob.html", m=msg)


@renderer("message.read")
async def message_read(viewer: Principal, event: Event) -> str | None:
    if not viewer.is_client:
        return None
    return render_template("portal/_unread_oob.html", count=await services.unread_count(viewer.id))


@renderer("client.verified")
async def verified(viewer: Principal, event: Event) -> str | None:
    if not viewer.is_client:
        return None
    return '<div id="verify-banner" hx-swap-oob="true"></div>'
