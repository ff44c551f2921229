"""What ops see of sync (Staff › Accounts › Sync) and the one thing they can do: ask for a sync now.

The figures come from `trading_sync_state`, which the sync services keep up to date on every run;
this module only reads them and says, in words, whether a server is healthy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.core import audit, db, jobs
from app.core.audit import Actor
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.errors import NotFound

STALE_SECONDS = 15  # no successful deal run for this long: something is wrong even without an error
SYNC_ROLES = ("dealing",)  # besides admin; finance sees the page

_SERVERS = """
SELECT s.id, s.name, s.address, s.active,
  st.status, st.last_ok_at, st.deals_synced_at, st.states_synced_at, st.lag_ms, st.clock_offset_seconds,
  st.deals_total, st.last_error, st.last_error_at, st.errors_total, st.last_deal_time, st.last_deal_ticket,
  (SELECT count(*) FROM trading_sync_gaps g WHERE g.server = s.id AND g.resolved_at IS NULL) AS open_gaps,
  (SELECT count(*) FROM trading_accounts a WHERE a.server = s.id AND a.login IS NOT NULL
     AND a.status = 'active') AS accounts
FROM trading_servers s LEFT JOIN trading_sync_state st ON st.server = s.id
ORDER BY s.name
"""

_GAPS = """
SELECT g.id, s.name AS server, g.from_ticket, g.to_ticket, g.detected_at, g.resolved_at, g.note
FROM trading_sync_gaps g JOIN trading_servers s ON s.id = g.server
ORDER BY g.resolved_at IS NULL DESC, g.detected_at DESC LIMIT 20
"""


def may_sync(p: Principal) -> bool:
    return allowed(p, *SYNC_ROLES)


async def overview(viewer: Principal) -> dict[str, Any]:
    """Every server's sync health, and the latest gaps (open ones first)."""
    now = datetime.now(UTC)
    servers = [_health(dict(r), now) for r in await db.fetch(_SERVERS)]
    return {
        "servers": servers,
        "gaps": await db.fetch(_GAPS),
        "can_sync": may_sync(viewer),
        "checked_at": now,
    }


def _health(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Adds `health` (ok / catching up / stale / error / inactive / never) and ages in seconds."""

    def age(at: datetime | None) -> int | None:
        return None if at is None else max(0, int((now - at).total_seconds()))

    row["deals_age"] = age(row["deals_synced_at"])
    row["states_age"] = age(row["states_synced_at"])
    row["ok_age"] = age(row["last_ok_at"])
    status = row["status"] or "idle"
    if not row["active"]:
        health = "inactive"
    elif row["deals_synced_at"] is None and status != "error":
        health = "never" if status == "idle" else "catching up"
    elif status == "error":
        health = "error"
    elif status == "catching_up":
        health = "catching up"
    elif row["deals_age"] is not None and row["deals_age"] > STALE_SECONDS:
        health = "stale"
    else:
        health = "ok"
    row["health"] = health
    offset = row["clock_offset_seconds"] or 0
    row["clock"] = (
        "UTC" if offset == 0 else f"UTC{offset / 3600:+.2g} h" if offset % 900 == 0 else f"UTC{offset:+d} s"
    )
    return row


async def request_sync(p: Principal, server_id: int, actor: Actor) -> str:
    """Queue one deal run and one state run for this server now (and its loop, if it was missing).
    Audited: it is an operator acting on a trading server. Returns the message for the page."""
    if not may_sync(p):
        raise PermissionError("Only the dealing desk and administrators start a sync.")
    row = await db.fetchrow("SELECT id, name, active FROM trading_servers WHERE id = $1", server_id)
    if row is None:
        raise NotFound("trading server")
    async with db.transaction():
        await audit.record(
            actor, "trading.sync_requested", "trading_server", server_id, after={"server": row["name"]}
        )
        jobs.enqueue_after_commit(
            "trading_sync_now",
            key=f"trading-sync-now:{server_id}",
            server_id=server_id,
            timeout=1800,
            retries=1,
        )
    if not row["active"]:
        return f"{row['name']} is inactive: one sync was queued, but no loop runs until it is activated."
    return f"Sync of {row['name']} queued; the figures below refresh by themselves."
