"""Transfers as people see them: who may see which (404 for everyone else), the portal form's
choices and its dispatch to the right service, and finance's lists."""

from __future__ import annotations

from typing import Any

from app.core import db
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.funding import balances, client_transfers, transfers
from app.funding.amounts import LedgerError, format_amount
from app.funding.withdrawal_checks import parse_amount
from app.kyc.levels import RightDenied
from app.trading import operations

KIND_LABELS = {
    "wallet_to_account": "Wallet → trading account",
    "account_to_wallet": "Trading account → wallet",
    "account_to_account": "Account → account",
    "client_to_client": "To another client",
}
STATUS_LABELS = {
    "pending": "In progress",
    "awaiting_approval": "Awaiting approval",
    "done": "Done",
    "failed": "Failed",
    "rejected": "Rejected",
    "cancelled": "Cancelled",
}

_LIST_SQL = (
    "SELECT t.id, t.kind, t.client_id, t.to_client_id, t.from_account_id, t.to_account_id, t.amount, t.currency, "
    "t.status, t.op_id, t.op_id_2, t.message, t.note, t.requested_by, t.requester_kind, t.requester_id, "
    "t.decided_by, t.created_at, t.updated_at, t.done_at, fa.login AS from_login, ta.login AS to_login, "
    "c.email AS client_email, c.first_name || ' ' || c.last_name AS client_name, "
    "rc.email AS to_client_email, rc.first_name || ' ' || rc.last_name AS to_client_name "
    "FROM funding_transfers t JOIN clients c ON c.id = t.client_id "
    "LEFT JOIN clients rc ON rc.id = t.to_client_id "
    "LEFT JOIN trading_accounts fa ON fa.id = t.from_account_id "
    "LEFT JOIN trading_accounts ta ON ta.id = t.to_account_id "
)


def _shown(row: dict[str, Any], viewer: Principal) -> dict[str, Any]:
    t = dict(row)
    t["amount_text"] = format_amount(t["amount"], t["currency"])
    t["kind_label"] = KIND_LABELS.get(t["kind"], t["kind"])
    t["status_label"] = STATUS_LABELS.get(t["status"], t["status"])
    t["from_label"] = f"Account {t['from_login']}" if t["from_login"] else f"{t['currency']} wallet"
    if t["kind"] == "client_to_client":
        incoming = viewer.is_client and viewer.id == t["to_client_id"]
        t["incoming"] = incoming
        if incoming:
            t["from_label"] = f"{t['client_name']}"
            t["to_label"] = f"Your {t['currency']} wallet"
        else:
            t["to_label"] = f"{t['to_client_name']} ({t['to_client_email']})"
    else:
        t["to_label"] = f"Account {t['to_login']}" if t["to_login"] else f"{t['currency']} wallet"
    t["open"] = t["status"] in ("pending", "awaiting_approval")
    return t


async def get_transfer_for(viewer: Principal, transfer_id: int) -> dict[str, Any]:
    """The transfer if `viewer` may see it: its client, the recipient once the money arrived, or
    finance. Anyone else gets NotFound, exactly as for a transfer that does not exist."""
    row = await db.fetchrow(_LIST_SQL + "WHERE t.id = $1", transfer_id)
    if row is None:
        raise NotFound("transfer")
    if viewer.is_client:
        mine = row["client_id"] == viewer.id
        received = row["to_client_id"] == viewer.id and row["status"] == "done"
        if not (mine or received):
            raise NotFound("transfer")
    elif not client_transfers.may_decide(viewer):
        raise NotFound("transfer")
    t = _shown(row, viewer)
    if viewer.is_staff:
        t["operations"] = await _operations(t)
    return t


async def _operations(t: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for leg, op_id in (("1", t["op_id"]), ("2", t["op_id_2"])):
        if not op_id:
            continue
        try:
            r = await operations.get_result(op_id)
        except NotFound:
            continue
        out.append(
            {"leg": leg, "op_id": op_id, "status": r.status, "text": r.message, "attempts": r.attempts,
             "account_id": r.account_id}
        )  # fmt: skip
    return out


async def list_for_client(viewer: Principal, limit: int = 20) -> list[dict[str, Any]]:
    rows = await db.fetch(
        _LIST_SQL
        + "WHERE t.client_id = {} OR (t.to_client_id = {} AND t.status = 'done') ORDER BY t.id DESC LIMIT {}",
        viewer.id,
        viewer.id,
        limit,
    )
    return [_shown(r, viewer) for r in rows]


async def form_options(client_id: int) -> dict[str, Any]:
    """What the portal form offers: wallets with what is available, live active accounts."""
    wallets = [
        {"currency": w.currency, "available_text": format_amount(w.available, w.currency)}
        for w in await balances.wallet_balances(client_id)
    ]
    accounts = await db.fetch(
        "SELECT id, login, currency, margin_free FROM trading_accounts WHERE client = {} "
        "AND status = 'active' AND NOT is_demo AND login IS NOT NULL ORDER BY id",
        client_id,
    )
    for a in accounts:
        free = a.pop("margin_free")
        a["free_text"] = "" if free is None else format_amount(free, a["currency"])
    return {"wallets": wallets, "accounts": accounts}


def _ref(value: str, prefix: str) -> str | None:
    return value[len(prefix) :] if value.startswith(prefix) else None


def _account_id(text: str | None, field: str) -> int:
    if not text or not text.isdigit() or len(text) > 12:
        raise FormErrors({field: "Choose one of your accounts."})
    return int(text)


async def submit(viewer: Principal, data: dict[str, str], actor: Actor) -> dict[str, Any]:
    """The portal form: from (`wallet:USD` | `account:<id>`) → to (`account:<id>` | `wallet` |
    `client`), amount, the form's idempotency key. Refusals come back as FormErrors per field."""
    source, target = (data.get("from") or "").strip(), (data.get("to") or "").strip()
    key = data.get("idempotency_key", "")
    try:
        amount = parse_amount(data.get("amount", ""))
        wallet_currency = _ref(source, "wallet:")
        from_account = _ref(source, "account:")
        to_account = _ref(target, "account:")
        if wallet_currency is not None and to_account is not None:
            return await transfers.wallet_to_account(
                actor, viewer.id, _account_id(to_account, "to"), amount, key, currency=wallet_currency
            )
        if wallet_currency is not None and target == "client":
            return await client_transfers.request(
                actor, viewer.id, wallet_currency, amount, data.get("recipient_email", ""),
                data.get("recipient_ref", ""), key, note=data.get("note", ""),
            )  # fmt: skip
        if from_account is not None and target == "wallet":
            return await transfers.account_to_wallet(
                actor, viewer.id, _account_id(from_account, "from"), amount, key
            )
        if from_account is not None and to_account is not None:
            return await transfers.account_to_account(
                actor,
                viewer.id,
                _account_id(from_account, "from"),
                _account_id(to_account, "to"),
                amount,
                key,
            )
    except LedgerError as exc:
        raise FormErrors(exc.errors) from None
    except RightDenied as exc:
        raise FormErrors({"from": exc.message}) from None
    except NotFound:
        raise FormErrors({"to": "Choose one of your own live accounts."}) from None
    if not source:
        raise FormErrors({"from": "Choose where the money comes from."})
    if from_account is not None and target == "client":
        raise FormErrors(
            {"to": "Transfers to another client go from your wallet: move the money there first."}
        )
    if wallet_currency is not None and target == "wallet":
        raise FormErrors({"to": "The money is already in your wallet: choose an account or another client."})
    raise FormErrors({"to": "Choose where the money goes."})


async def staff_queue() -> list[dict[str, Any]]:
    """Client → client transfers waiting for a finance decision, oldest first."""
    rows = await db.fetch(_LIST_SQL + "WHERE t.status = 'awaiting_approval' ORDER BY t.id LIMIT 500")
    return [_shown(r, _STAFF) for r in rows]


async def staff_open(limit: int = 200) -> list[dict[str, Any]]:
    """Transfers in flight or failed, newest first, with their operations' state on MT5."""
    rows = await db.fetch(
        _LIST_SQL + "WHERE t.status IN ('pending', 'failed') ORDER BY t.id DESC LIMIT {}",
        limit,
    )
    out = []
    for r in rows:
        t = _shown(r, _STAFF)
        t["operations"] = await _operations(t)
        out.append(t)
    return out


_STAFF = Principal(kind="staff", id=0, email="", name="", session_id=0, mfa_passed=True, totp_enabled=True)


# --- live: what a `funding.transfer` event re-renders (called by app.funding.live's renderer) ------


async def live_status(viewer: Principal, transfer_id: int) -> str | None:
    """The transfer's status card, swapped in by id (`transfer-<id>`) on the client's result page;
    None for a viewer who may not see it."""
    from app.core.live import render_template

    try:
        t = await get_transfer_for(viewer, transfer_id)
    except NotFound:
        return None
    return render_template("funding/_transfer_status.html", t=t, oob=True)


async def live_queue(viewer: Principal) -> str | None:
    """Finance's transfer lists (`transfers-staff`), for an event on `staff:finance`."""
    from app.core.live import render_template
    from app.core.live_socket import csrf_token

    if not client_transfers.may_decide(viewer):
        return None
    context = {"queue": await staff_queue(), "open": await staff_open(), "may_decide": True, "errors": {},
               "error_id": None, "done": "", "oob": True}  # fmt: skip
    return render_template("funding/_transfer_staff.html", csrf_token=csrf_token, **context)
