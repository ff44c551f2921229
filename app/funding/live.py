"""The wallet, live: a deposit credited, a withdrawal approved, a transfer settled — the client's
open wallet page shows the new status and balances without a reload, and so does the funding
panel of a staff client page.

Funding services publish on `client:{id}` (delivered at commit): `funding.deposit`
(deposit_id), `funding.withdrawal` (withdrawal_id), `funding.transfer` (transfer_id) and
`funding.wallet` whenever a balance changes. The client's socket hears its own topic; a staff
page asks to watch a client (`/live?watch=wallet:42`, or trading's `accounts:42`, same topic) and
gets it only if the viewer may see that client's money. Every renderer checks again, for its
viewer, through `app.funding.history` — a stray or foreign event renders nothing.

For the client: the movement's row is replaced by its id (`movement-deposit-12`), and the history
list asks for itself again (a new movement, or one that now falls in or out of the filter shown),
with the filters and page the client has open. The balances block is replaced on `funding.wallet`,
and a transfer's status card (`transfer-12`, its result page) on `funding.transfer`.

Finance: services also publish on `staff:finance`. A page of finance's desk watches it
(`/live?watch=finance:desk`, granted to those who decide on transfers); on the transfers page the
queue of client → client transfers and the transfers in flight are replaced when one changes.
"""

from __future__ import annotations

from app.core.auth.principal import Principal
from app.core.errors import NotFound
from app.core.live import Event, render_template, renderer
from app.core.live_socket import csrf_token, watcher
from app.funding import client_transfers, history, transfer_views

_ID_KEYS = {"deposit": "deposit_id", "withdrawal": "withdrawal_id", "transfer": "transfer_id"}

# Swapped in after a movement changed: the portal's history list fetches itself again, with the
# filter form and page it shows (its own `load` trigger; nothing happens on pages without it).
HISTORY_SYNC = (
    '<div id="history-sync" hidden hx-swap-oob="true" hx-get="/portal/wallet/history" hx-trigger="load" '
    'hx-include="#history-filters, #history-page" hx-target="#history" hx-swap="innerHTML"></div>'
)


@watcher("wallet")
async def watch_wallet(viewer: Principal, ref: str) -> str | None:
    """Staff who may see the client's money hear about it; anyone else, nothing."""
    if not viewer.is_staff or not ref.isdigit() or len(ref) > 12:
        return None
    try:
        await history.staff_client_for(viewer, int(ref))
    except NotFound:
        return None
    return f"client:{int(ref)}"


FINANCE_TOPIC = "staff:finance"


@watcher("finance")
async def watch_finance(viewer: Principal, ref: str) -> str | None:
    """Finance's desk: only staff who decide on finance's queues hear it."""
    return FINANCE_TOPIC if ref == "desk" and client_transfers.may_decide(viewer) else None


def _topic_client(event: Event) -> int | None:
    topic, _, ref = event.topic.partition(":")
    return int(ref) if topic == "client" and ref.isdigit() and len(ref) <= 12 else None


def _movement_id(event: Event, kind: str) -> int | None:
    try:
        value = int(event.ids[_ID_KEYS[kind]])
    except (KeyError, TypeError, ValueError):
        return None
    return value if 0 < value < 2**63 else None


async def staff_panel_html(viewer: Principal, client_id: int) -> str | None:
    """The client page's funding panel for this staff member, out of band; None if not theirs."""
    try:
        context = await history.staff_panel_for(viewer, client_id)
    except NotFound:
        return None
    inner = render_template("funding/_wallet_staff_panel.html", csrf_token=csrf_token, **context)
    return f'<div id="funding-panel" hx-swap-oob="innerHTML">{inner}</div>'


async def _movement_changed(viewer: Principal, event: Event, kind: str) -> str | None:
    client_id = _topic_client(event)
    movement_id = _movement_id(event, kind)
    if client_id is None or movement_id is None:
        return None
    if viewer.is_client:
        if viewer.id != client_id:
            return None
        try:
            movement = await history.movement_for(viewer, kind, movement_id)
        except NotFound:
            return None
        row = render_template("funding/_wallet_movement.html", m=movement, oob=True)
        return row + HISTORY_SYNC
    if viewer.is_staff:
        return await staff_panel_html(viewer, client_id)
    return None


@renderer("funding.deposit")
async def deposit_changed(viewer: Principal, event: Event) -> str | None:
    return await _movement_changed(viewer, event, "deposit")


@renderer("funding.withdrawal")
async def withdrawal_changed(viewer: Principal, event: Event) -> str | None:
    return await _movement_changed(viewer, event, "withdrawal")


@renderer("funding.transfer")
async def transfer_changed(viewer: Principal, event: Event) -> str | None:
    if event.topic == FINANCE_TOPIC:
        return await transfer_views.live_queue(viewer) if viewer.is_staff else None
    html = await _movement_changed(viewer, event, "transfer")
    transfer_id = _movement_id(event, "transfer")
    if html is None or not viewer.is_client or transfer_id is None:
        return html
    card = await transfer_views.live_status(viewer, transfer_id)
    return html + (card or "")


@renderer("funding.wallet")
async def wallet_changed(viewer: Principal, event: Event) -> str | None:
    client_id = _topic_client(event)
    if client_id is None:
        return None
    if viewer.is_client:
        if viewer.id != client_id:
            return None
        wallets = await history.wallets_of(client_id)
        return render_template("funding/_wallet_balances.html", wallets=wallets, oob=True)
    if viewer.is_staff:
        return await staff_panel_html(viewer, client_id)
    return None
