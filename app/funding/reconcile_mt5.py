"""Reconciliation against MT5: every live trading account's ledger account against its money
movements on the trading server, as last synced (`trading_deals`).

What is comparable: the ledger's trading account holds the money *moved* to or from the account
(transfers, account withdrawals, the dealing desk's charges, corrections and bonuses booked by
`trading_books`). The MT5 balance also carries realised P/L, commissions and swaps, which the
ledger never sees, so the balance itself is not compared. Instead the ledger balance is compared
with the sum of the account's *balance-type deals* on MT5: balance (2), charge (4), correction
(5) and bonus (6). Credit (3) is the broker's money lent as margin and is on neither side.

Synced state, not a live call: reading every account's history from the server for a daily check
would load it for nothing, and sync already holds each deal once. Sync lags, though, and an
operation may be on its way: an account with an open operation, or with a settled operation whose
deal sync has not stored yet, is reported as *in flight* (`in_flight: true`), not as a difference.

Differences are listed, never fixed: a balance deal made on the server without the CRM, a ledger
posting without its deal, a lost operation all need a person to find out which side is right.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.core.db import DB
from app.funding.reconcile import LIMIT, external_check

BALANCE_ACTIONS = (2, 4, 5, 6)  # balance, charge, correction, bonus (not 3: credit)

_SQL = """
WITH accts AS (
  SELECT a.id AS trading_account_id, a.login, a.server, a.client AS client_id, l.id AS ledger_account_id,
         l.currency, l.balance AS ledger_balance
  FROM trading_accounts a JOIN funding_ledger_accounts l
    ON l.kind = 'trading_account' AND l.trading_account_id = a.id
  WHERE NOT a.is_demo AND a.login IS NOT NULL
), deals AS (
  SELECT d.server_id, d.login, sum(d.profit) AS total, count(*) AS n
  FROM trading_deals d JOIN accts x ON x.server = d.server_id AND x.login = d.login
  WHERE d.action = ANY($1::smallint[])
  GROUP BY d.server_id, d.login
), open_ops AS (
  SELECT o.account, count(*) AS n, string_agg(o.op_id, ', ' ORDER BY o.id) AS ids
  FROM trading_balance_operations o JOIN accts x ON x.trading_account_id = o.account
  WHERE o.status IN ('pending', 'sending')
     OR (o.status = 'done' AND o.ticket IS NOT NULL AND NOT EXISTS (
          SELECT 1 FROM trading_deals d WHERE d.server_id = x.server AND d.deal = o.ticket))
  GROUP BY o.account
)
SELECT x.*, coalesce(deals.total, 0) AS mt5_total, coalesce(deals.n, 0) AS mt5_deals,
       coalesce(open_ops.n, 0) AS open_ops, coalesce(open_ops.ids, '') AS open_ids
FROM accts x
LEFT JOIN deals ON deals.server_id = x.server AND deals.login = x.login
LEFT JOIN open_ops ON open_ops.account = x.trading_account_id
ORDER BY x.trading_account_id
"""


async def compare() -> tuple[list[dict[str, Any]], int]:
    """(every difference and in-flight account, accounts checked), in one snapshot."""
    assert DB.pool is not None, "database pool not started"
    async with DB.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(_SQL, list(BALANCE_ACTIONS))
    found: list[dict[str, Any]] = []
    for r in rows:
        ledger_balance, mt5 = Decimal(r["ledger_balance"]), Decimal(r["mt5_total"])
        if r["open_ops"]:
            detail = (
                f"login {r['login']}: operation(s) {r['open_ids']} in flight (not settled or not synced yet); "
                f"compared once settled"
            )
        elif ledger_balance != mt5:
            detail = (
                f"login {r['login']}: the ledger moved {ledger_balance} {r['currency']}, MT5's balance deals "
                f"({r['mt5_deals']}) sum to {mt5}: {'MT5' if mt5 > ledger_balance else 'the ledger'} has "
                f"{abs(mt5 - ledger_balance)} more"
            )
        else:
            continue
        found.append(
            {
                "currency": r["currency"],
                "expected": str(mt5),
                "found": str(ledger_balance),
                "account_id": r["ledger_account_id"],
                "trading_account_id": r["trading_account_id"],
                "login": r["login"],
                "client_id": r["client_id"],
                "in_flight": bool(r["open_ops"]),
                "detail": detail,
            }
        )
        if len(found) >= LIMIT:
            break
    return found, len(rows)


@external_check("mt5")
async def check_mt5() -> list[dict[str, Any]]:
    """The reconciliation run's MT5 check: differences and in-flight accounts (flagged)."""
    found, _checked = await compare()
    return found
