"""A client's money history: deposits, withdrawals and transfers in one list, newest first.

One rule for every reader (the portal's wallet page, the staff client page, the live renderers):
a client sees their own movements and the client → client transfers they *received* once done
(a pending or refused transfer to them is the sender's business); staff in finance, compliance,
dealing (and administrators) see a client they may see (`app.clients.scoping`), incoming
transfers in every state. Anyone else gets a 404, as for a movement that does not exist.

Each row carries a stable element id (`movement-deposit-12`) so a live update replaces exactly
that row, and a status label worded for people next to the raw status.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.clients.services import get_client_for
from app.core import db
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.errors import NotFound
from app.funding import balances
from app.funding.amounts import MINOR_UNITS
from app.trading import views

PAGE_SIZE = 20
PANEL_SIZE = 8  # movements on the staff client page's panel
STAFF_ROLES = ("finance", "compliance", "dealing")  # besides admin

KINDS = {"deposit": "Deposit", "withdrawal": "Withdrawal", "transfer": "Transfer"}

# status group → (label, statuses of any kind in it)
STATUS_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pending": (
        "In progress",
        ("created", "pending", "moving", "requested", "approved", "paying", "awaiting_approval"),
    ),
    "completed": ("Completed", ("completed", "paid", "done")),
    "failed": ("Not completed", ("failed", "rejected", "cancelled")),
}
_GROUP_OF = {s: g for g, (_, statuses) in STATUS_GROUPS.items() for s in statuses}
_BADGE = {"pending": "badge-amber", "completed": "badge-green", "failed": "badge-red"}

STATUS_LABELS: dict[str, dict[str, str]] = {
    "deposit": {
        "created": "Started",
        "pending": "Processing",
        "completed": "Completed",
        "failed": "Failed",
        "cancelled": "Cancelled",
    },
    "withdrawal": {
        "moving": "Moving from your account",
        "requested": "Awaiting approval",
        "approved": "Approved",
        "paying": "Being paid out",
        "paid": "Paid",
        "rejected": "Rejected",
        "cancelled": "Cancelled",
        "failed": "Failed",
    },
    "transfer": {
        "pending": "Processing",
        "awaiting_approval": "Awaiting approval",
        "done": "Completed",
        "failed": "Failed",
        "rejected": "Rejected",
        "cancelled": "Cancelled",
    },
}
METHOD_LABELS = {"card": "Card", "ewallet": "E-wallet", "wire": "Bank wire", "crypto": "Crypto"}

# $1 = the client. Incoming client → client transfers: every state for staff ($2 = true), done only
# for the client. `direction` is seen from the client's wallet: in, out, or internal (wallet ↔ account).
_UNION = """
SELECT * FROM (
  SELECT 'deposit' AS kind, d.id, d.client_id, d.amount, d.currency, d.status, d.reference,
         d.created_at, d.updated_at, d.kind AS subkind, d.instrument AS detail, d.failure_reason AS message,
         d.credited_amount, d.credit_currency, NULL::text AS from_login, NULL::text AS to_login,
         NULL::text AS counterparty, 'in' AS direction
  FROM funding_deposits d WHERE d.client_id = $1
  UNION ALL
  SELECT 'withdrawal', w.id, w.client_id, w.amount, w.currency, w.status, w.payout_reference,
         w.created_at, w.updated_at, w.source, w.destination_label, w.rejection_reason,
         NULL, NULL, wa.login::text, NULL, NULL, 'out'
  FROM funding_withdrawals w LEFT JOIN trading_accounts wa ON wa.id = w.trading_account_id
  WHERE w.client_id = $1
  UNION ALL
  SELECT 'transfer', t.id, t.client_id, t.amount, t.currency, t.status, '',
         t.created_at, t.updated_at, t.kind, t.note, t.message,
         NULL, NULL, fa.login::text, ta.login::text,
         CASE WHEN t.client_id = $1 THEN tc.first_name || ' ' || tc.last_name
              ELSE fc.first_name || ' ' || fc.last_name END,
         CASE WHEN t.kind <> 'client_to_client' THEN 'internal' WHEN t.client_id = $1 THEN 'out' ELSE 'in' END
  FROM funding_transfers t
  LEFT JOIN trading_accounts fa ON fa.id = t.from_account_id
  LEFT JOIN trading_accounts ta ON ta.id = t.to_account_id
  LEFT JOIN clients fc ON fc.id = t.client_id
  LEFT JOIN clients tc ON tc.id = t.to_client_id
  WHERE t.client_id = $1 OR (t.to_client_id = $1 AND ($2 OR t.status = 'done'))
) m
"""


@dataclass(frozen=True)
class Filters:
    kind: str = ""  # "" | deposit | withdrawal | transfer
    status: str = ""  # "" | a key of STATUS_GROUPS
    page: int = 1

    @classmethod
    def parse(cls, params: Any) -> Filters:
        """From query parameters: anything unknown means "all", never an error."""
        kind = str(params.get("kind", "") or "")
        status = str(params.get("status", "") or "")
        raw_page = str(params.get("page", "") or "")
        page = int(raw_page) if raw_page.isdigit() and len(raw_page) <= 6 else 1
        return cls(
            kind=kind if kind in KINDS else "",
            status=status if status in STATUS_GROUPS else "",
            page=max(1, page),
        )

    def query(self, page: int | None = None) -> str:
        """The query string of this view (another page of it when `page` is given)."""
        parts = [f"kind={self.kind}"] if self.kind else []
        parts += [f"status={self.status}"] if self.status else []
        parts.append(f"page={page or self.page}")
        return "&".join(parts)


def _money(value: Decimal | None, currency: str) -> str:
    if value is None:
        return ""
    digits = MINOR_UNITS.get(currency, 2)
    return f"{Decimal(value):,.{digits}f}"


def _description(row: dict[str, Any]) -> str:
    kind, sub = row["kind"], row["subkind"]
    if kind == "deposit":
        method = METHOD_LABELS.get(sub, sub or "Deposit")
        return f"{method} · {row['detail']}" if row["detail"] else method
    if kind == "withdrawal":
        text = f"To {row['detail']}" if row["detail"] else "Withdrawal"
        return f"{text} (from account {row['from_login']})" if row["from_login"] else text
    if sub == "wallet_to_account":
        return f"Wallet → account {row['to_login'] or ''}".rstrip()
    if sub == "account_to_wallet":
        return f"Account {row['from_login'] or ''} → wallet"
    if sub == "account_to_account":
        return f"Account {row['from_login'] or ''} → account {row['to_login'] or ''}"
    who = row["counterparty"] or "another client"
    return f"To {who}" if row["direction"] == "out" else f"From {who}"


def decorate(row: dict[str, Any], *, staff: bool = False) -> dict[str, Any]:
    """A movement as the templates show it."""
    kind, status = row["kind"], row["status"]
    group = _GROUP_OF.get(status, "pending")
    row["element_id"] = f"movement-{kind}-{row['id']}"
    row["kind_label"] = KINDS[kind]
    row["status_label"] = STATUS_LABELS[kind].get(status, status.replace("_", " ").capitalize())
    row["status_group"] = group
    row["badge"] = _BADGE[group]
    row["description"] = _description(row)
    row["amount_text"] = _money(row["amount"], row["currency"])
    row["sign"] = {"in": "+", "out": "−"}.get(row["direction"], "")
    row["reference"] = row["reference"] or f"{kind[0].upper()}-{row['id']}"
    credited = row.get("credited_amount")
    row["credited_text"] = (
        f"{_money(credited, row['credit_currency'])} {row['credit_currency']}"
        if credited is not None and (credited != row["amount"] or row["credit_currency"] != row["currency"])
        else ""
    )
    incoming = kind == "transfer" and row["direction"] == "in"
    row["message"] = "" if (incoming and not staff) or group != "failed" else (row["message"] or "")
    return row


async def _rows(client_id: int, *, staff: bool, where: str = "", args: tuple[Any, ...] = (), tail: str = ""):
    sql = (
        _UNION
        + (f" WHERE {where}" if where else "")
        + " ORDER BY m.created_at DESC, m.kind, m.id DESC"
        + tail
    )
    return [decorate(dict(r), staff=staff) for r in await _fetch(sql, client_id, staff, *args)]


async def _page(
    client_id: int, filters: Filters, *, staff: bool, page_size: int = PAGE_SIZE
) -> dict[str, Any]:
    conditions: list[str] = []
    args: list[Any] = []
    if filters.kind:
        args.append(filters.kind)
        conditions.append(f"m.kind = ${len(args) + 2}")
    if filters.status:
        args.append(list(STATUS_GROUPS[filters.status][1]))
        conditions.append(f"m.status = ANY(${len(args) + 2}::text[])")
    n = len(args) + 2
    rows = await _rows(
        client_id,
        staff=staff,
        where=" AND ".join(conditions),
        args=(*args, page_size + 1, (filters.page - 1) * page_size),
        tail=f" LIMIT ${n + 1} OFFSET ${n + 2}",
    )
    return {
        "movements": rows[:page_size],
        "filters": filters,
        "has_next": len(rows) > page_size,
        "has_prev": filters.page > 1,
        "kinds": KINDS,
        "status_groups": {k: label for k, (label, _) in STATUS_GROUPS.items()},
    }


def may_see_funding(viewer: Principal) -> bool:
    """Staff roles that see a client's money (the client page's funding panel)."""
    return allowed(viewer, *STAFF_ROLES)


async def staff_client_for(viewer: Principal, client_id: int) -> dict[str, Any]:
    """The client, if this staff member may see their money; 404 otherwise."""
    if not may_see_funding(viewer):
        raise NotFound("client")
    return await get_client_for(viewer, client_id)


async def history_for_client(p: Principal, filters: Filters | None = None) -> dict[str, Any]:
    """The signed-in client's own history."""
    if not p.is_client:
        raise NotFound("client")
    return await _page(p.id, filters or Filters(), staff=False)


async def history_for_staff(
    viewer: Principal, client_id: int, filters: Filters | None = None, *, page_size: int = PAGE_SIZE
) -> dict[str, Any]:
    """The same history for the console (404 to staff who may not see it)."""
    client = await staff_client_for(viewer, client_id)
    return {"client": client, **await _page(client_id, filters or Filters(), staff=True, page_size=page_size)}


async def movement_for(viewer: Principal, kind: str, movement_id: int) -> dict[str, Any]:
    """One movement as its history row, if this viewer may see it; 404 otherwise."""
    if kind not in KINDS:
        raise NotFound("movement")
    owner = await _owner_of(kind, movement_id)
    if owner is None:
        raise NotFound("movement")
    candidates = [c for c in owner if c is not None]
    if viewer.is_client:
        if viewer.id not in candidates:
            raise NotFound("movement")
        client_id, staff = viewer.id, False
    elif viewer.is_staff:
        if not may_see_funding(viewer):
            raise NotFound("movement")
        client_id, staff = candidates[0], True  # the sender's page shows every transfer
        await get_client_for(viewer, client_id)
    else:
        raise NotFound("movement")
    rows = await _rows(client_id, staff=staff, where="m.kind = $3 AND m.id = $4", args=(kind, movement_id))
    if not rows:  # an incoming transfer not done yet: not the recipient's to see
        raise NotFound("movement")
    return rows[0]


_OWNER_SQL = {
    "deposit": "SELECT client_id, NULL::int AS other FROM funding_deposits WHERE id = $1",
    "withdrawal": "SELECT client_id, NULL::int AS other FROM funding_withdrawals WHERE id = $1",
    "transfer": "SELECT client_id, to_client_id AS other FROM funding_transfers WHERE id = $1",
}


async def _owner_of(kind: str, movement_id: int) -> tuple[int, int | None] | None:
    if not 0 < movement_id < 2**63:
        return None
    row = await db.fetchrow(_OWNER_SQL[kind], movement_id)
    return None if row is None else (int(row["client_id"]), row["other"])


async def _fetch(sql: str, *args: Any) -> list[Any]:
    """`$n` SQL on the current transaction's connection, or a pooled one."""
    tx = db.DB.current_transaction.get()
    if tx is not None:
        return list(await tx.connection.fetch(sql, *args))
    assert db.DB.pool is not None, "database pool not started"
    async with db.DB.pool.acquire() as conn:
        return list(await conn.fetch(sql, *args))


# --- the wallet page and the staff panel ------------------------------------------------------


async def wallets_of(client_id: int) -> list[dict[str, Any]]:
    """The client's wallets with their figures formatted in the currency's digits."""
    return [
        {
            "currency": w.currency,
            "available": _money(w.available, w.currency),
            "held": _money(w.held, w.currency),
            "total": _money(w.balance, w.currency),
            "has_held": w.held != 0,
        }
        for w in await balances.wallet_balances(client_id)
    ]


async def wallet_page_for(p: Principal, filters: Filters | None = None) -> dict[str, Any]:
    """Portal › Wallet: balances per currency, the trading accounts and the history."""
    history = await history_for_client(p, filters)
    return {
        "wallets": await wallets_of(p.id),
        "accounts": await views.accounts_for_client(p, p.id),
        **history,
    }


async def staff_panel_for(viewer: Principal, client_id: int) -> dict[str, Any]:
    """The client page's funding panel: balances and the latest movements (404 to outsiders)."""
    history = await history_for_staff(viewer, client_id, page_size=PANEL_SIZE)
    return {"wallets": await wallets_of(client_id), "funding_loaded": True, **history}
