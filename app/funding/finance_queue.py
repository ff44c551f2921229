"""What finance works through: pending deposits and withdrawals with filters, the withdrawal
approval screen with its client panel (KYC, risk, recent activity), and the filtered queue as CSV rows.

Filters are parsed here, strictly: a bad amount or date is reported, never silently widened."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.funding import withdrawals
from app.funding.amounts import format_amount
from app.funding.approvals import approver_refusal
from app.funding.withdrawal_checks import blocking, prechecks
from app.kyc.levels import rights_for

KINDS = ("withdrawals", "deposits")
STATUSES = {
    "withdrawals": ("requested", "approved", "paying", "failed", "moving", "paid", "rejected", "cancelled"),
    "deposits": ("created", "pending", "completed", "failed", "cancelled"),
}
DEFAULT_STATUSES = {
    "withdrawals": ("requested", "approved", "paying", "failed"),
    "deposits": ("created", "pending"),
}
PAGE = 200


@dataclass
class Filters:
    kind: str = "withdrawals"
    status: str = ""  # "" = the open ones
    currency: str = ""
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def statuses(self) -> list[str]:
        return [self.status] if self.status else list(DEFAULT_STATUSES[self.kind])

    def query(self) -> dict[str, str]:
        """The filters as query parameters (the CSV link repeats them)."""
        out = {"kind": self.kind, "status": self.status, "currency": self.currency, "q": self.q}
        out["min"] = "" if self.min_amount is None else str(self.min_amount)
        out["max"] = "" if self.max_amount is None else str(self.max_amount)
        out["from"] = self.date_from.isoformat() if self.date_from else ""
        out["to"] = self.date_to.isoformat() if self.date_to else ""
        return out


def parse_filters(params: dict[str, str]) -> Filters:
    f = Filters()
    kind = params.get("kind", "withdrawals")
    f.kind = kind if kind in KINDS else "withdrawals"
    status = params.get("status", "")
    f.status = status if status in STATUSES[f.kind] else ""
    f.currency = params.get("currency", "").strip().upper()[:8]
    f.q = params.get("q", "").strip()[:100]
    for name, attr in (("min", "min_amount"), ("max", "max_amount")):
        text = params.get(name, "").strip().replace(",", "")
        if text:
            try:
                value = Decimal(text)
                if not value.is_finite() or value < 0:
                    raise InvalidOperation
                setattr(f, attr, value)
            except InvalidOperation:
                f.errors[name] = "Enter an amount of zero or more."
    for name, attr in (("from", "date_from"), ("to", "date_to")):
        text = params.get(name, "").strip()
        if text:
            try:
                setattr(f, attr, date.fromisoformat(text))
            except ValueError:
                f.errors[name] = "Enter a date as YYYY-MM-DD."
    return f


def _where(f: Filters, alias: str) -> tuple[str, list[Any]]:
    clauses = [f"{alias}.status = ANY({{}})"]
    args: list[Any] = [f.statuses()]
    if f.currency:
        clauses.append(f"{alias}.currency = {{}}")
        args.append(f.currency)
    if f.min_amount is not None:
        clauses.append(f"{alias}.amount >= {{}}")
        args.append(f.min_amount)
    if f.max_amount is not None:
        clauses.append(f"{alias}.amount <= {{}}")
        args.append(f.max_amount)
    if f.date_from:
        clauses.append(f"{alias}.created_at >= {{}}")
        args.append(datetime.combine(f.date_from, time(), UTC))
    if f.date_to:
        clauses.append(f"{alias}.created_at < {{}}")
        args.append(datetime.combine(f.date_to + timedelta(days=1), time(), UTC))
    if f.q:
        term = "%" + f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(
            "(c.email ILIKE {} OR (c.first_name || ' ' || c.last_name) ILIKE {} OR "
            f"{alias}.id::text = {{}})"
        )
        args += [term, term, f.q]
    return " AND ".join(clauses), args


_WITHDRAWALS = (
    "SELECT w.id, w.client_id, c.email, c.first_name, c.last_name, w.amount, w.currency, w.status, w.source, "
    "w.destination_label AS detail, w.approvals_required, w.created_at, w.provider, "
    "(SELECT count(*) FROM funding_withdrawal_approvals a WHERE a.withdrawal_id = w.id) AS approvals "
    "FROM funding_withdrawals w JOIN clients c ON c.id = w.client_id WHERE "
)
_DEPOSITS = (
    "SELECT d.id, d.client_id, c.email, c.first_name, c.last_name, d.amount, d.currency, d.status, d.kind AS source, "
    "d.reference AS detail, 0 AS approvals_required, d.created_at, d.provider, 0 AS approvals "
    "FROM funding_deposits d JOIN clients c ON c.id = d.client_id WHERE "
)


def _sql(f: Filters, after: tuple[Any, int] | None = None) -> tuple[str, list[Any]]:
    """The filtered queue in (created_at, id) order; `after`: only the rows past that key."""
    alias, base = ("w", _WITHDRAWALS) if f.kind == "withdrawals" else ("d", _DEPOSITS)
    where, args = _where(f, alias)
    if after is not None:
        where += f" AND ({alias}.created_at, {alias}.id) > ({{}}, {{}})"
        args += list(after)
    return base + where + f" ORDER BY {alias}.created_at, {alias}.id", args


async def queue(f: Filters, limit: int = PAGE) -> list[dict[str, Any]]:
    if f.errors:
        return []
    sql, args = _sql(f)
    return _with_text(await db.fetch(sql + " LIMIT {}", *args, limit))


def _with_text(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's amount as people read it, in its currency's digits (BTC has 8, JPY none)."""
    for r in rows:
        r["amount_text"] = format_amount(r["amount"], r["currency"])
    return rows


CSV_COLUMNS = ("id", "client_id", "email", "first_name", "last_name", "amount", "currency", "status", "source",
               "detail", "approvals", "approvals_required", "provider", "created_at")  # fmt: skip


async def record_export(actor: Actor, f: Filters) -> None:
    """Client names, e-mails and amounts leave the system: who took which selection is audited."""
    async with db.transaction():
        await audit.record(
            actor, "funding.queue.exported", "funding_queue", None, after={"kind": f.kind, "query": f.query()}
        )


async def export_csv(f: Filters, batch: int = 500) -> AsyncIterator[str]:
    """The whole filtered queue as CSV text, a batch at a time (keyset on created_at, id)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    if f.errors:
        return
    after: tuple[Any, int] | None = None
    while True:
        sql, args = _sql(f, after)
        rows = await db.fetch(sql + " LIMIT {}", *args, batch)
        buffer.seek(0)
        buffer.truncate()
        for r in rows:
            writer.writerow([_cell(r[c]) for c in CSV_COLUMNS])
        if rows:
            yield buffer.getvalue()
        if len(rows) < batch:
            return
        after = (rows[-1]["created_at"], rows[-1]["id"])


def _cell(value: Any) -> str:
    text = "" if value is None else (value.isoformat() if hasattr(value, "isoformat") else str(value))
    return (
        "'" + text if text[:1] in ("=", "+", "-", "@") and not _is_number(text) else text
    )  # no spreadsheet formulas


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return True


async def client_panel(client_id: int) -> dict[str, Any]:
    """KYC level and status, risk, and recent money movements of the client on the approval screen."""
    rights = await rights_for(client_id)
    profile = await db.fetchrow(
        "SELECT level, risk, risk_score, risk_assessed_at, pep FROM kyc_profiles WHERE client = $1", client_id
    )
    client = await db.fetchrow(
        "SELECT id, email, first_name, last_name, country, stage, created_at FROM clients WHERE id = $1",
        client_id,
    )
    deposits = await db.fetch(
        "SELECT id, amount, currency, status, kind, instrument, created_at FROM funding_deposits WHERE client_id = {} "
        "ORDER BY id DESC LIMIT 10",
        client_id,
    )
    withdrawals = await db.fetch(
        "SELECT id, amount, currency, status, destination_label, created_at FROM funding_withdrawals "
        "WHERE client_id = {} ORDER BY id DESC LIMIT 10",
        client_id,
    )
    transfers = await db.fetch(
        "SELECT id, kind, amount, currency, status, created_at FROM funding_transfers WHERE client_id = {} "
        "ORDER BY id DESC LIMIT 10",
        client_id,
    )
    return {
        "client": client,
        "rights": rights,
        "profile": profile
        or {"level": 0, "risk": "", "risk_score": 0, "risk_assessed_at": None, "pep": False},
        "deposits": _with_text(deposits),
        "withdrawals": _with_text(withdrawals),
        "transfers": _with_text(transfers),
    }


async def approval_screen(p: Principal, withdrawal_id: int) -> dict[str, Any]:
    """The withdrawal (404 to whoever may not see it), its approvals, why `p` may not approve it now
    ("" if they may), the pre-checks recomputed now and the client panel."""
    w = await withdrawals.get_withdrawal_for(p, withdrawal_id)
    done = await withdrawals.approvals_of(withdrawal_id)
    checks = await prechecks(
        w["client_id"], source=w["source"], trading_account_id=w["trading_account_id"], amount=w["amount"],
        currency=w["currency"], destination=_destination_key(w), exclude_withdrawal=w["id"],
    )  # fmt: skip
    if w["source"] == "account" or w["status"] != "requested":  # the money is already held: not a blocker now
        checks = [c for c in checks if c.key not in ("balance", "margin")]
    return {
        "w": w,
        "approvals": done,
        "refusal": await approver_refusal(p, w, done),
        "may_change": w["status"] == "requested" and not done,
        "checks": checks,
        "blocked": bool(blocking(checks)),
        "panel": await client_panel(w["client_id"]),
    }


def _destination_key(w: dict[str, Any]) -> str:
    """The form's key (`card:<instrument>` | `method:<id>`) of where the withdrawal goes."""
    dest = w["destination"] or {}
    if dest.get("instrument_key"):
        return f"card:{dest['instrument_key']}"
    return f"method:{dest.get('method_id', w['method_id'])}"
