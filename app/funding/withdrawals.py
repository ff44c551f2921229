"""Funding: withdrawals (being written)."""

from __future__ import annotations

from typing import Any

from app.core.audit import Actor


async def on_operation_settled(op: dict[str, Any], status: str, actor: Actor) -> None:
    """Finish the withdrawals movement whose MT5 operation settled (called in that operation's transaction)."""
    return None  # being written: an operation with no matching row of ours books nothing
