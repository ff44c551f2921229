"""Who may see which trading account, and the accounts as pages show them.

One rule, used by pages, actions and live renderers alike: a client sees their own accounts; a
staff member sees the accounts of the clients they may see (`app.clients.scoping`); anyone else
gets a 404, exactly as for an account that does not exist. Figures are formatted here from
`Decimal` (never through float), with the account's own currency digits.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.clients.scoping import visible_client_sql
from app.clients.services import get_client_for
from app.core import db
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.errors import NotFound

_SELECT = (
    "SELECT a.*, t.name AS type_name, s.name AS server_name, c.first_name, c.last_name, c.email "
    "FROM trading_accounts a JOIN trading_servers s ON s.id = a.server "
    "JOIN clients c ON c.id = a.client LEFT JOIN trading_account_types t ON t.id = a.account_type "
)
STATUS_LABELS = {"pending": "opening…", "active": "active", "failed": "not opened", "archived": "archived"}
SIDES = {0: "buy", 1: "sell"}


def money(value: Decimal | None, digits: int = 2) -> str:
    """1234.5 → "1,234.50"; None (not synced yet) → "—"."""
    if value is None:
        return "—"
    q = Decimal(value).quantize(Decimal(1).scaleb(-max(0, min(int(digits), 8))))
    return f"{q:,}"


def lots(volume: int) -> str:
    """MT5 volumes are in 1/10000 lot."""
    return f"{(Decimal(volume) / 10000).normalize():f}"


def _trend(value: Decimal | None) -> str:
    """The CSS class of a P/L figure: red below zero, green above, plain at zero or unknown."""
    if value is None or value == 0:
        return ""
    return "loss" if value < 0 else "gain"


def decorate(row: dict[str, Any]) -> dict[str, Any]:
    digits = row.get("currency_digits") or 2
    level = row.get("margin_level")
    row["fig"] = {
        k: money(row.get(k), digits)
        for k in ("balance", "credit", "equity", "margin", "margin_free", "profit")
    }
    row["fig"]["margin_level"] = "—" if not level or not row.get("margin") else f"{money(level, 2)} %"
    row["status_label"] = STATUS_LABELS.get(row["status"], row["status"])
    row["kind"] = "demo" if row["is_demo"] else "live"
    row["trend"] = _trend(row.get("profit"))
    row.setdefault("positions", [])
    return row


def _position(row: dict[str, Any]) -> dict[str, Any]:
    row["side"] = SIDES.get(row["action"], str(row["action"]))
    row["lots"] = lots(row["volume"])
    digits = row.get("digits") or 5
    row["open"] = money(row["price_open"], digits)
    row["current"] = money(row["price_current"], digits)
    row["pl"] = money(row["profit"], 2)
    row["trend"] = _trend(row["profit"])
    return row


async def _with_positions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    accounts = [decorate(r) for r in rows]
    ids = [a["id"] for a in accounts if a["status"] == "active"]
    if ids:
        positions = await db.fetch(
            "SELECT * FROM trading_positions WHERE account_id = ANY({}) ORDER BY time_create, position", ids
        )
        by_account: dict[int, list[dict[str, Any]]] = {}
        for p in positions:
            by_account.setdefault(p["account_id"], []).append(_position(p))
        for a in accounts:
            a["positions"] = by_account.get(a["id"], [])
    return accounts


async def _may_see_client(viewer: Principal, client_id: int) -> None:
    if viewer.is_client:
        if viewer.id != client_id:
            raise NotFound("trading account")
    elif viewer.is_staff:
        await get_client_for(viewer, client_id)
    else:
        raise NotFound("trading account")


async def get_account_for(viewer: Principal, account_id: int, *, positions: bool = False) -> dict[str, Any]:
    """The account if this viewer may see it; 404 otherwise."""
    row = await db.fetchrow(_SELECT + "WHERE a.id = $1", account_id)
    if row is None:
        raise NotFound("trading account")
    await _may_see_client(viewer, row["client"])
    if positions:
        return (await _with_positions([row]))[0]
    return decorate(row)


async def accounts_for_client(viewer: Principal, client_id: int) -> list[dict[str, Any]]:
    """The client's accounts (archived ones left out) with their open positions."""
    await _may_see_client(viewer, client_id)
    rows = await db.fetch(
        _SELECT + "WHERE a.client = {} AND a.status <> 'archived' ORDER BY a.is_demo, a.id", client_id
    )
    return await _with_positions(rows)


async def portal_page_for(p: Principal) -> dict[str, Any]:
    if not p.is_client:
        raise NotFound("client")
    return {"accounts": await accounts_for_client(p, p.id)}


async def staff_panel_for(viewer: Principal, client_id: int) -> dict[str, Any]:
    """The client page's accounts panel: the same figures as the portal (404 to outsiders)."""
    client = await get_client_for(viewer, client_id)
    return {
        "client": client,
        "accounts": await accounts_for_client(viewer, client_id),
        "can_manage": allowed(viewer, "dealing"),
        "accounts_loaded": True,
    }


async def search_accounts(viewer: Principal, q: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The console's list: by login (digits), or by the client's name or e-mail; scoped like clients."""
    scope, params = visible_client_sql(viewer, "c")
    q = q.strip()[:100]
    sql = _SELECT + f"WHERE {scope}"
    args: list[Any] = list(params)
    if q.isdigit() and len(q) <= 18:
        sql += " AND (a.login = {} OR a.client = {})"
        args += [int(q), int(q) if int(q) < 2**31 else 0]
    elif q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        sql += " AND (c.email ILIKE {} OR (c.first_name || ' ' || c.last_name) ILIKE {})"
        args += [like, like]
    sql += " ORDER BY a.id DESC LIMIT {}"
    args.append(limit)
    return [decorate(r) for r in await db.fetch(sql, *args)]
