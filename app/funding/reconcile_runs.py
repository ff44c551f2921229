"""Reconciliation for finance's console: the stored runs, one run's differences with the accounts
named, and "run now".

A small book is reconciled inline (the answer is the finished run); a large one, when a worker
queue is connected, goes to `funding_reconcile_now` and the runs list follows it until it ends.
Either way the run records who asked (`triggered_by`) and the audit log has the request.
Nothing here changes the ledger: a difference is for a person to explain.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from app.core import audit, db, jobs
from app.core.audit import Actor
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.errors import NotFound
from app.funding import reconcile
from app.funding.amounts import MINOR_UNITS

PAGE_SIZE = 25
INLINE_POSTINGS = 200_000  # above this a button press goes to the worker (≈ 60 s per million)
STALE_MINUTES = 90  # a run "running" for longer than this died with its process
JOB_TIMEOUT = 3600  # seconds; the worker's default (10 s) would kill any book too large to run inline
LEDGER_CHECKS = ("balance", "holds", "unbalanced")
STATUS_BADGES = {
    "ok": "badge-green",
    "differences": "badge-red",
    "failed": "badge-red",
    "running": "badge-amber",
}
STATUS_LABELS = {
    "ok": "No differences",
    "differences": "Differences",
    "failed": "Failed",
    "running": "Running",
}
_KNOWN = {"check", "currency", "expected", "found", "account_id", "transaction_id", "detail", "in_flight"}

_inline = asyncio.Lock()  # one inline run per process at a time


def _require_finance(p: Principal) -> None:
    if not allowed(p, "finance"):
        raise PermissionError("Reconciliation is for finance.")


def _differences(raw: Any) -> list[dict[str, Any]]:
    value = json.loads(raw) if isinstance(raw, str) else raw
    return list(value or [])


def _decorate_run(row: dict[str, Any]) -> dict[str, Any]:
    stale = row["status"] == "running" and row.get("stale")
    row["status_label"] = "Interrupted" if stale else STATUS_LABELS.get(row["status"], row["status"])
    row["badge"] = "badge-grey" if stale else STATUS_BADGES.get(row["status"], "badge-grey")
    row["in_progress"] = row["status"] == "running" and not stale
    return row


# The list counts differences in SQL: a run may hold thousands, and the list polls while one runs.
_RUN_COLUMNS = (
    "id, started_at, finished_at, status, accounts_checked, postings_checked, triggered_by, error, "
    "coalesce(jsonb_array_length(differences), 0) AS difference_count, "
    f"(status = 'running' AND started_at < now() - interval '{STALE_MINUTES} minutes') AS stale"
)


async def list_runs(p: Principal, page: int = 1) -> dict[str, Any]:
    """The runs, newest first, a page at a time."""
    _require_finance(p)
    page = max(1, page)
    rows = await db.fetch(
        f"SELECT {_RUN_COLUMNS} FROM funding_reconciliation_runs ORDER BY id DESC LIMIT {{}} OFFSET {{}}",
        PAGE_SIZE + 1,
        (page - 1) * PAGE_SIZE,
    )
    runs = [_decorate_run(r) for r in rows[:PAGE_SIZE]]
    return {
        "runs": runs,
        "page": page,
        "has_next": len(rows) > PAGE_SIZE,
        "has_prev": page > 1,
        "in_progress": any(r["in_progress"] for r in runs),
    }


def _amount(value: Any, currency: str) -> str:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    digits = MINOR_UNITS.get(currency)
    return f"{number:,.{digits}f}" if digits is not None else f"{number:,}"


async def _account_labels(ids: set[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    rows = await db.fetch(
        "SELECT a.id, a.kind, a.currency, a.provider, a.client_id, c.first_name, c.last_name, t.login "
        "FROM funding_ledger_accounts a LEFT JOIN clients c ON c.id = a.client_id "
        "LEFT JOIN trading_accounts t ON t.id = a.trading_account_id WHERE a.id = ANY({})",
        sorted(ids),
    )
    labels = {}
    for r in rows:
        text = r["kind"].replace("_", " ")
        if r["client_id"] is not None:
            text += f" of {r['first_name']} {r['last_name']}"
        if r["login"] is not None:
            text += f" (account {r['login']})"
        if r["provider"]:
            text += f" ({r['provider']})"
        labels[r["id"]] = {"text": f"#{r['id']} {text} · {r['currency']}", "client_id": r["client_id"]}
    return labels


@dataclass(frozen=True)
class DifferenceView:
    check: str
    account: str
    client_id: int | None
    currency: str
    expected: str
    found: str
    detail: str
    other: str  # whatever else an external check reported (login, ids …)
    in_flight: bool = False  # money still settling: listed, but not a difference (the run stays "ok")


async def get_run(p: Principal, run_id: int, *, check: str = "") -> dict[str, Any]:
    """One run with every difference, the accounts named (404 for an unknown run)."""
    _require_finance(p)
    if not 0 < run_id < 2**31:
        raise NotFound("reconciliation run")
    row = await db.fetchrow(
        f"SELECT {_RUN_COLUMNS}, differences FROM funding_reconciliation_runs WHERE id = $1", run_id
    )
    if row is None:
        raise NotFound("reconciliation run")
    run = _decorate_run(dict(row))
    found = _differences(run.pop("differences"))
    run["checks"] = sorted({str(d.get("check", "")) for d in found})
    ledger_ids = {
        int(d["account_id"])
        for d in found
        if d.get("check") in LEDGER_CHECKS and str(d.get("account_id", "")).isdigit()
    }
    labels = await _account_labels(ledger_ids)
    shown = [d for d in found if not check or d.get("check") == check]
    differences = []
    for d in shown:
        currency = str(d.get("currency", ""))
        label = labels.get(int(d["account_id"])) if str(d.get("account_id", "")).isdigit() else None
        if label is not None and d.get("check") in LEDGER_CHECKS:
            account, client_id = label["text"], label["client_id"]
        elif d.get("account_id") is not None:
            account, client_id = f"#{d['account_id']}", None
        elif d.get("transaction_id") is not None:
            account, client_id = f"transaction #{d['transaction_id']}", None
        else:
            account, client_id = "—", None
        differences.append(
            DifferenceView(
                check=str(d.get("check", "")),
                account=account,
                client_id=client_id,
                currency=currency,
                expected=_amount(d.get("expected", ""), currency),
                found=_amount(d.get("found", ""), currency),
                detail=str(d.get("detail", "")),
                other=", ".join(f"{k}: {v}" for k, v in sorted(d.items()) if k not in _KNOWN),
                in_flight=bool(d.get("in_flight")),
            )
        )
    return {"run": run, "differences": differences, "check": check if check in run["checks"] else ""}


@dataclass(frozen=True)
class RunNow:
    state: str  # done | queued | running (one is already going)
    run_id: int | None = None
    newest_before: int = 0  # queued: the newest run when it was queued (the list waits for a newer one)


async def _running_run() -> int | None:
    row = await db.fetchrow(
        "SELECT id FROM funding_reconciliation_runs WHERE status = 'running' "
        f"AND started_at >= now() - interval '{STALE_MINUTES} minutes' ORDER BY id DESC LIMIT 1"
    )
    return None if row is None else int(row["id"])


async def _book_is_small() -> bool:
    row = await db.fetchrow(
        "SELECT count(*) AS n FROM (SELECT 1 FROM funding_postings LIMIT $1) s", INLINE_POSTINGS + 1
    )
    return row is not None and int(row["n"]) <= INLINE_POSTINGS


async def run_now(p: Principal, actor: Actor) -> RunNow:
    """Finance's button: never a second run while one is going."""
    _require_finance(p)
    running = await _running_run()
    if running is not None or _inline.locked():
        return RunNow("running", running)
    if await _book_is_small() or jobs.get_queue() is None:
        async with _inline:
            return RunNow("done", await reconcile.run_reconciliation(actor))
    newest = await db.fetchrow("SELECT coalesce(max(id), 0) AS id FROM funding_reconciliation_runs")
    async with db.transaction():
        await audit.record(
            actor,
            "funding.reconciliation.requested",
            "funding_reconciliation_run",
            None,
            after={"queued": True},
        )
        jobs.enqueue_after_commit(
            "funding_reconcile_now",
            key="funding_reconcile_now",
            retries=1,
            timeout=JOB_TIMEOUT,
            requested_by=actor.label or actor.kind,
            requested_by_id=actor.id or "",
        )
    return RunNow("queued", newest_before=int(newest["id"]) if newest else 0)
