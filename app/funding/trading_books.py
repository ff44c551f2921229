"""The books for balance changes staff make directly on a trading account (issue 5's dealing form:
correction, charge, bonus), posted when the trading server confirms the operation, in the same
transaction that marks it done: the ledger and the operation can never disagree, and the
operation's id as idempotency key means a re-run of that step never books it twice.

Client money moves on the trading account's ledger account against the broker's side: a charge is
fee income, a correction or bonus is held in suspense until finance classifies it. MT5 *credit*
(type 3) is not booked: it is the broker's money lent as margin, which the client cannot withdraw.
Funding's own movements (`transfer:` and `withdrawal:` references) are booked by their own modules
through `operation_hooks`, in the same settling transaction, and do not come through here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.core.audit import Actor
from app.funding import ledger
from app.trading.platform import BalanceType

STAFF_REFERENCE = "staff:"
COUNTER_ACCOUNT = {
    BalanceType.CHARGE: ("fees", "fee"),
    BalanceType.CORRECTION: ("suspense", "adjustment"),
    BalanceType.BONUS: ("suspense", "adjustment"),
}


async def settle(op: dict[str, Any], actor: Actor) -> int | None:
    """Book a confirmed staff operation; returns the ledger transaction id (None: nothing to book)."""
    if not str(op["reference"]).startswith(STAFF_REFERENCE):
        return None
    booked = COUNTER_ACCOUNT.get(BalanceType(int(op["type"])))
    if booked is None:
        return None
    counter_kind, tx_kind = booked
    amount = Decimal(op["amount"])
    trading = await ledger.account_for_trading(int(op["account_id"]))
    counter = await ledger.system_account(counter_kind, op["currency"])
    assert trading is not None
    # The trading account is what the broker owes the client (credit-normal): a positive amount
    # credits it, a negative one (a charge) debits it; the broker's side takes the other half.
    posted = await ledger.post(
        actor,
        tx_kind,
        [(trading, -amount), (counter, amount)],
        idempotency_key=f"mt5op:{op['op_id']}",
        reference=f"mt5 deal {op['ticket']}" if op.get("ticket") else f"mt5 op {op['op_id']}",
        memo=f"{BalanceType(int(op['type'])).name.lower()} on login {op['login']}: {op['reference']}"[:500],
    )
    return int(posted.id)
