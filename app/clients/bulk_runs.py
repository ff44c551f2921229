"""Bulk runs as their owner sees them: what is being done, how far it has got, what was refused.
Kept apart from `bulk`, which carries the runs out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from app.clients import lifecycle
from app.clients.bulk import ACTIONS
from app.core import db
from app.core.auth.principal import Principal
from app.core.errors import NotFound


def _present(row: dict[str, Any]) -> dict[str, Any]:
    params = json.loads(row["params"]) if isinstance(row["params"], str) else row["params"]
    failures = json.loads(row["failures"]) if isinstance(row["failures"], str) else row["failures"]
    action = row["action"]
    if action in ("add_tag", "remove_tag"):
        what = f"{ACTIONS[action]} “{params.get('tag', '')}”"
    elif action == "assign_owner":
        what = f"Assign owner: {params.get('owner_name', '')}"
    elif action == "change_stage":
        what = f"Change stage to {lifecycle.label(params.get('stage'))}"
    else:
        what = action
    processed = row["done"] + row["failed"]
    total = max(row["total"], 1)
    finished = row["status"] == "finished"
    selection = params.get("selection", {})
    return {
        "id": row["id"],
        "staff": row["staff"],
        "staff_name": row.get("staff_name", ""),
        "action": action,
        "summary": what,
        "reason": params.get("reason", ""),
        "query": selection.get("query"),
        "total": row["total"],
        "done": row["done"],
        "failed": row["failed"],
        "processed": processed,
        "unmatched": max(row["total"] - processed, 0) if finished else 0,
        "percent": 100 if finished else min(processed * 100 // total, 99),
        "status": row["status"],
        "failures": failures,
        "failures_capped": row["failed"] > len([f for f in failures if f.get("client_id") is not None]),
        "created_at": row["created_at"],
        "finished_at": row["finished_at"],
    }


_RUN = (
    "SELECT r.id, r.staff, r.action, r.params, r.total, r.done, r.failed, r.status, r.failures, "
    "r.created_at, r.finished_at, s.name AS staff_name FROM client_bulk_runs r "
    "JOIN staff_users s ON s.id = r.staff "
)


async def run_for(viewer: Principal, run_id: int) -> dict[str, Any]:
    """The run as its owner (or an administrator) sees it; 404 to everyone else."""
    row = await db.fetchrow(_RUN + "WHERE r.id = $1", run_id)
    if row is None or not viewer.is_staff or (row["staff"] != viewer.id and not viewer.has_role("admin")):
        raise NotFound("bulk run")
    return _present(row)


async def recent_runs_for(viewer: Principal) -> list[dict[str, Any]]:
    """The viewer's runs still going, or finished in the last quarter of an hour (newest first)."""
    if not viewer.is_staff:
        return []
    rows = await db.fetch(
        _RUN + "WHERE r.staff = {} AND (r.status <> 'finished' OR r.finished_at > {}) "
        "ORDER BY r.id DESC LIMIT 3",
        viewer.id,
        datetime.now(UTC) - timedelta(minutes=15),
    )
    return [_present(r) for r in rows]
