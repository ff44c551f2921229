"""Reconciliation: recompute the ledger from its postings and list every disagreement for finance.

Nothing is ever fixed here: a difference means something bypassed the ledger service (or a bug
did), and a person has to find out which before money is moved to make numbers agree.

The ledger's own checks run in one REPEATABLE READ snapshot, so transfers committing meanwhile
cannot make cached and derived balances look different:

- `balance`: each account's cached balance against the sum of its postings (one set-based query);
- `unbalanced`: transactions whose postings do not sum to zero per currency (the commit trigger
  forbids them; this catches a trigger dropped or bypassed);
- `holds`: each hold account against the open holds of its wallet.

Comparisons with the outside world (MT5 balances, provider records) plug in with
`@external_check("name")`: an async function returning a list of difference dicts. Each runs
after the ledger's checks; its differences (or its error) are stored in the run with its name.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.db import DB

log = logging.getLogger(__name__)

ExternalCheck = Callable[[], Awaitable[list[dict[str, Any]]]]
_external: dict[str, ExternalCheck] = {}
LIMIT = 1000  # differences listed per check (the first by id); a run never holds more per check


@dataclass(frozen=True)
class Difference:
    check: str  # balance | unbalanced | holds | <external check name>
    currency: str
    expected: Decimal  # what the postings (or the other side) say
    found: Decimal  # what the cache (or the ledger) says
    account_id: int | None = None
    transaction_id: int | None = None
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["expected"], body["found"] = str(self.expected), str(self.found)
        return {k: v for k, v in body.items() if v not in (None, "")}


@dataclass(frozen=True)
class LedgerReport:
    accounts_checked: int
    postings_checked: int
    differences: list[Difference]

    @property
    def ok(self) -> bool:
        return not self.differences


def external_check(name: str) -> Callable[[ExternalCheck], ExternalCheck]:
    """Register a comparison with an outside record (MT5, a payment provider) for every run."""

    def wrap(fn: ExternalCheck) -> ExternalCheck:
        _external[name] = fn
        return fn

    return wrap


_BALANCES_SQL = """
WITH s AS (
  SELECT account_id, sum(amount) AS total, count(*) AS n FROM funding_postings GROUP BY account_id
), j AS MATERIALIZED (
  SELECT a.id, a.kind, a.currency, a.balance AS cached, coalesce(s.n, 0) AS n,
         coalesce(s.total, 0) * CASE a.normal_side WHEN 'debit' THEN 1 ELSE -1 END AS derived
  FROM funding_ledger_accounts a LEFT JOIN s ON s.account_id = a.id
), totals AS (
  SELECT count(*) AS accounts, coalesce(sum(n), 0)::bigint AS postings FROM j
)
SELECT totals.accounts, totals.postings, d.id, d.kind, d.currency, d.cached, d.derived
FROM totals LEFT JOIN LATERAL (
  SELECT * FROM j WHERE j.cached <> j.derived ORDER BY j.id LIMIT $1
) d ON true
"""

_UNBALANCED_SQL = (
    "SELECT transaction_id, currency, sum(amount) AS total FROM funding_postings "
    "GROUP BY transaction_id, currency HAVING sum(amount) <> 0 ORDER BY transaction_id LIMIT $1"
)

_HOLDS_SQL = (
    "SELECT h.id, h.currency, h.balance, coalesce(o.total, 0) AS open_total "
    "FROM funding_ledger_accounts h LEFT JOIN ("
    " SELECT wallet_id, sum(amount) AS total FROM funding_holds WHERE status = 'held' GROUP BY wallet_id"
    ") o ON o.wallet_id = h.parent_id "
    "WHERE h.kind = 'client_hold' AND h.balance <> coalesce(o.total, 0) ORDER BY h.id LIMIT $1"
)


async def reconcile_balances() -> LedgerReport:
    """Every account's cached balance against its postings, unbalanced transactions and holds,
    in one snapshot. Returns the differences; changes nothing."""
    assert DB.pool is not None, "database pool not started"
    async with DB.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(_BALANCES_SQL, LIMIT)
        unbalanced = await conn.fetch(_UNBALANCED_SQL, LIMIT)
        holds = await conn.fetch(_HOLDS_SQL, LIMIT)
    differences = [
        Difference(
            "balance",
            r["currency"],
            r["derived"],
            r["cached"],
            account_id=r["id"],
            detail=f"{r['kind']}: cached balance differs from its postings by {r['cached'] - r['derived']}",
        )
        for r in rows
        if r["id"] is not None
    ]
    differences += [
        Difference(
            "unbalanced", r["currency"], Decimal(0), r["total"], transaction_id=r["transaction_id"],
            detail="the transaction's postings do not sum to zero",
        )
        for r in unbalanced
    ]  # fmt: skip
    differences += [
        Difference(
            "holds", r["currency"], r["open_total"], r["balance"], account_id=r["id"],
            detail="the hold account differs from the open holds of its wallet",
        )
        for r in holds
    ]  # fmt: skip
    return LedgerReport(int(rows[0]["accounts"]), int(rows[0]["postings"]), differences)


async def run_reconciliation(actor: Actor) -> int:
    """One stored run for finance: the ledger's checks, then every external check. Returns its id.
    A failing check is recorded in the run (and the log), not raised: the others still run."""
    async with db.transaction():
        row = await db.fetchrow(
            "INSERT INTO funding_reconciliation_runs (started_at, status, accounts_checked, postings_checked, "
            "differences, triggered_by, error) VALUES (now(), 'running', 0, 0, '[]', $1, '') RETURNING id",
            (actor.label or actor.kind)[:320],
        )
    assert row is not None
    run_id = int(row["id"])
    found: list[dict[str, Any]] = []
    errors: list[str] = []
    accounts = postings = 0
    try:
        report = await reconcile_balances()
        accounts, postings = report.accounts_checked, report.postings_checked
        found += [d.as_json() for d in report.differences]
    except Exception as exc:
        log.exception("ledger reconciliation failed")
        errors.append(f"ledger: {exc}")
    for name, check in _external.items():
        try:
            found += [{"check": name, **d} for d in await check()]
        except Exception as exc:
            log.exception("reconciliation check %s failed", name)
            errors.append(f"{name}: {exc}")
    # Money in flight (an MT5 operation still open or not yet synced) is listed, not a difference.
    status = "failed" if errors else ("differences" if any(not d.get("in_flight") for d in found) else "ok")
    async with db.transaction():
        await db.fetchrow(
            "UPDATE funding_reconciliation_runs SET finished_at = now(), status = $2, accounts_checked = $3, "
            "postings_checked = $4, differences = $5::jsonb, error = $6 WHERE id = $1",
            run_id,
            status,
            accounts,
            postings,
            json.dumps(found, default=str),
            "; ".join(errors),
        )
        await audit.record(
            actor,
            "funding.reconciliation.run",
            "funding_reconciliation_run",
            run_id,
            after={"status": status, "accounts": accounts, "postings": postings, "differences": len(found)},
        )
    return run_id


# The outside records compared on every run register themselves when imported (they import this
# module's names, hence at the end).
from app.funding import reconcile_mt5, reconcile_providers, reconcile_suspense  # noqa: E402,F401
