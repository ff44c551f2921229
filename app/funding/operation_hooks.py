"""What funding books when a balance operation on a trading account settles (done or failed).

`app.trading.operations` calls `on_settled` inside the transaction that marks the operation
settled, so the ledger and the operation can never disagree after a crash. The operation's
`reference` says who asked for it: funding's transfers (`transfer:<id>`) and account withdrawals
(`withdrawal:<id>`) finish their own movement; a dealer's operation (`staff:`) is booked by
`trading_books`.
"""

from __future__ import annotations

from typing import Any

from app.core.audit import Actor


async def on_settled(op: dict[str, Any], status: str, actor: Actor) -> None:
    reference = str(op["reference"])
    if reference.startswith("transfer:"):
        from app.funding import transfers

        await transfers.on_operation_settled(op, status, actor)
    elif reference.startswith("withdrawal:"):
        from app.funding import withdrawals

        await withdrawals.on_operation_settled(op, status, actor)
    elif status == "done":
        from app.funding import trading_books

        await trading_books.settle(op, actor)
