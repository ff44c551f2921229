"""Trading accounts, live: balance, equity, margin and open positions follow the server.

Sync (and provisioning) publish `trading.account` on `client:{id}` whenever an account's figures,
positions or status change. The client's own socket hears that topic; a staff client page asks to
watch it (`/live?watch=accounts:42`) and gets it only if the viewer may see that client. Each
renderer checks again and renders for its viewer: the client gets the account's card (on the
accounts list and on the account's page, same id), staff get the client page's accounts panel and
the card of the console's account page.
"""

from __future__ import annotations

from typing import Any

from app.core.auth.principal import Principal
from app.core.errors import NotFound
from app.core.live import Event, render_template, renderer
from app.core.live_socket import csrf_token, watcher
from app.trading import views


@watcher("accounts")
async def watch_accounts(viewer: Principal, ref: str) -> str | None:
    """Staff who may see the client hear about that client's accounts; anyone else, nothing."""
    if not viewer.is_staff or not ref.isdigit() or len(ref) > 12:
        return None
    try:
        await views.staff_panel_for(viewer, int(ref))
    except NotFound:
        return None
    return f"client:{int(ref)}"


def _client_of(event: Event) -> int | None:
    topic, _, ref = event.topic.partition(":")
    return int(ref) if topic == "client" and ref.isdigit() else None


def _account_id(event: Event) -> int | None:
    try:
        return int(event.ids["account_id"])
    except (KeyError, TypeError, ValueError):
        return None


@renderer("trading.account")
async def account_changed(viewer: Principal, event: Event) -> str | None:
    client_id = _client_of(event)
    account_id = _account_id(event)
    if client_id is None or account_id is None:
        return None
    if viewer.is_client:
        if viewer.id != client_id:
            return None
        try:
            account = await views.get_account_for(viewer, account_id, positions=True)
        except NotFound:  # moved to another client: it leaves this client's pages
            return (
                f'<div id="account-item-{account_id}" hx-swap-oob="delete"></div>'
                f'<section id="account-{account_id}" hx-swap-oob="delete"></section>'
            )
        return render_template("trading/_account_card.html", a=account, oob=True, portal=True)
    if viewer.is_staff:
        try:
            context = await views.staff_panel_for(viewer, client_id)
        except NotFound:
            return None
        panel = render_template("trading/_staff_client_panel.html", csrf_token=csrf_token, **context)
        html = f'<div id="accounts-panel" hx-swap-oob="innerHTML">{panel}</div>'
        # The account's own page in the console shows the same card (ignored where it is absent).
        shown: dict[str, Any] | None = next((a for a in context["accounts"] if a["id"] == account_id), None)
        if shown is not None:
            html += render_template("trading/_account_card.html", a=shown, oob=True, portal=False)
        return html
    return None
