"""Balance operations in the background: the send after commit (a safety net behind the inline
attempt, or the only send when the operation was created inside a caller's transaction), and
the minute sweep that finishes whatever a crashed worker, a lost job or a timeout left open.

Both only call `operations.execute_operation`, which takes the operation's lock and looks on
the server before any re-send: running them twice, or at once in several workers, is safe.
"""

from __future__ import annotations

from app.core import jobs
from app.core.errors import NotFound
from app.trading import operations


class NotSettledYet(RuntimeError):
    """Raised so SAQ retries with back-off; the sweep takes over once its retries are spent."""


@jobs.job
async def execute_balance_operation(ctx: dict, *, op_id: str) -> str:
    try:
        result = await operations.execute_operation(op_id)
    except NotFound:
        return "gone"  # created in a transaction that rolled back after all
    if not result.settled:
        raise NotSettledYet(f"{op_id}: {result.message}")
    return result.status


@jobs.cron("* * * * *", timeout=600)
async def balance_operations_sweep(ctx: dict) -> dict[str, int]:
    return await operations.recover_pending(older_than_seconds=60)
