from __future__ import annotations

from typing import Any

from litestar import get
from litestar.response import Response

from app.core import db, jobs
from app.core.migrate import pending_migrations

HEARTBEAT_MAX_AGE = 60


@get("/healthz", cache=False, tags=["operations"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@get("/readyz", cache=False, tags=["operations"])
async def readyz() -> Response[dict[str, Any]]:
    """Ready for traffic: database reachable, migrations applied, a worker heartbeat seen recently."""
    checks: dict[str, Any] = {}
    try:
        await db.fetch("SELECT 1 AS ok")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        return Response({"status": "unready", "checks": checks}, status_code=503)
    pending = await pending_migrations()
    checks["migrations"] = "ok" if not pending else {"pending": pending}
    h = await jobs.health()
    age = h["last_heartbeat_age"]
    checks["worker"] = (
        "ok"
        if age is not None and age <= HEARTBEAT_MAX_AGE
        else ("no worker heartbeat seen" if age is None else f"last heartbeat {age}s ago")
    )
    ready = all(v == "ok" for v in checks.values())
    return Response(
        {"status": "ready" if ready else "unready", "checks": checks}, status_code=200 if ready else 503
    )
