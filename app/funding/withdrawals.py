"""Withdrawals: requested by the client (or staff on their behalf), held, approved by finance under
dual control (`approvals`), paid out through the provider (`payouts`).

Life of a withdrawal::

    wallet:   requested ──approve(s)──▶ approved ──job──▶ paying ──▶ paid
    account:  moving ──MT5 done──▶ requested …            │        └─▶ failed (hold released)
              └─MT5 refused──▶ failed                     └ unknown outcome: stays paying, the sweep asks
    requested ──reject──▶ rejected · requested (no approval yet) ──client──▶ cancelled

Money: at request the amount is held on the wallet (`holds.hold`, key `withdrawal:<id>:hold`), so
two requests racing each other (or a transfer) can never overdraw it: the hold's posting locks the
wallet and the database refuses a wallet below zero. From a trading account the money first comes
off MT5 (a negative balance operation, `reference="withdrawal:<id>"`); `on_operation_settled`,
called in the transaction that marks the operation done, books account → wallet and the hold.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from app.core import audit, db, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.funding import holds, ledger
from app.funding.amounts import InsufficientFunds, check_amount, currency_code, format_amount
from app.funding.policy import approvals_required
from app.funding.withdrawal_checks import blocking, destinations_for, parse_amount, prechecks, sources_for

OPEN = ("moving", "requested", "approved", "paying")
STATUS_LABELS = {
    "moving": "moving from your trading account",
    "requested": "waiting for approval",
    "approved": "approved, paying out",
    "paying": "paying out",
    "paid": "paid",
    "rejected": "rejected",
    "cancelled": "cancelled",
    "failed": "failed",
}


class WithdrawalRefused(FormErrors):
    """The pre-checks block it; `messages` are what the client reads."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__({"__all__": " ".join(messages)})
        self.messages = messages


def hold_key(withdrawal_id: int) -> str:
    return f"withdrawal:{withdrawal_id}:hold"


# --- reading ----------------------------------------------------------------------------------


_SELECT = (
    "SELECT w.*, c.email AS client_email, c.first_name, c.last_name, c.language, "
    "a.login AS account_login FROM funding_withdrawals w JOIN clients c ON c.id = w.client_id "
    "LEFT JOIN trading_accounts a ON a.id = w.trading_account_id "
)


async def get_withdrawal(withdrawal_id: int, *, lock: bool = False) -> dict[str, Any]:
    if lock:
        await db.fetchrow("SELECT id FROM funding_withdrawals WHERE id = $1 FOR UPDATE", withdrawal_id)
    row = await db.fetchrow(_SELECT + "WHERE w.id = $1", withdrawal_id)
    if row is None:
        raise NotFound("withdrawal")
    return decorate(row)


def decorate(row: dict[str, Any]) -> dict[str, Any]:
    for name in ("destination", "prechecks"):
        if isinstance(row.get(name), str):
            row[name] = json.loads(row[name])
    row["status_label"] = STATUS_LABELS.get(row["status"], row["status"])
    row["amount_text"] = format_amount(row["amount"], row["currency"])
    row["requested_text"] = format_amount(row["requested_amount"], row["currency"])
    row["client_name"] = f"{row.get('first_name', '')} {row.get('last_name', '')}".strip()
    return row


async def get_withdrawal_for(p: Principal, withdrawal_id: int) -> dict[str, Any]:
    """The withdrawal if `p` may see it: the client it belongs to, or finance; 404 for anyone else."""
    row = await get_withdrawal(withdrawal_id)
    if p.is_client and row["client_id"] == p.id:
        return row
    if p.is_staff and p.has_role("admin", "finance"):
        return row
    raise NotFound("withdrawal")


async def approvals_of(withdrawal_id: int) -> list[dict[str, Any]]:
    return await db.fetch(
        "SELECT step, staff_user_id, staff_label, created_at FROM funding_withdrawal_approvals "
        "WHERE withdrawal_id = {} ORDER BY step",
        withdrawal_id,
    )


async def recent_for_client(client_id: int, limit: int = 10) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT id, amount, currency, status, destination_label, source, created_at FROM funding_withdrawals "
        "WHERE client_id = {} ORDER BY id DESC LIMIT {}",
        client_id,
        limit,
    )
    for r in rows:
        r["status_label"] = STATUS_LABELS.get(r["status"], r["status"])
        r["amount_text"] = format_amount(r["amount"], r["currency"])
    return rows


async def notify(client_id: int, withdrawal_id: int, *, wallet: bool = False) -> None:
    """Live events, delivered at commit: the client's pages and finance's queue."""
    await live.publish(
        f"client:{client_id}", "funding.withdrawal", withdrawal_id=withdrawal_id, client_id=client_id
    )
    await live.publish(
        "staff:finance", "funding.withdrawal", withdrawal_id=withdrawal_id, client_id=client_id
    )
    if wallet:
        await live.publish(f"client:{client_id}", "funding.wallet", client_id=client_id)


def view(row: dict[str, Any]) -> dict[str, Any]:
    """What the audit trail keeps of a withdrawal."""
    keys = ("status", "amount", "requested_amount", "currency", "source", "trading_account_id", "destination_label",
            "approvals_required", "hold_id", "op_id", "rejection_reason", "payout_reference", "payout_error")  # fmt: skip
    return {k: str(row[k]) if isinstance(row[k], Decimal) else row[k] for k in keys if k in row}


# --- requesting -------------------------------------------------------------------------------


async def form_context(client_id: int, values: Mapping[str, str]) -> dict[str, Any]:
    """The withdrawal form, the client's own or staff's on their behalf: the sources, the
    destinations in the chosen source's currency and the pre-checks of what is typed so far."""
    sources = await sources_for(client_id)
    chosen = next((s for s in sources if s["value"] == values.get("source")), sources[0] if sources else None)
    currency = chosen["currency"] if chosen else "USD"
    kind, _, ident = (chosen["value"] if chosen else "wallet:USD").partition(":")
    destinations = await destinations_for(client_id, currency)
    kept = {**values, "source": chosen["value"] if chosen else ""}
    if kept.get("destination") not in {d["key"] for d in destinations}:
        kept["destination"] = destinations[0]["key"] if destinations else ""
    checks = []
    if chosen:
        checks = await prechecks(
            client_id, source=kind, trading_account_id=int(ident) if kind == "account" else None,
            amount=kept.get("amount", ""), currency=currency, destination=kept["destination"],
        )  # fmt: skip
    return {
        "sources": sources,
        "destinations": destinations,
        "currency": currency,
        "values": kept,
        "checks": checks,
        "blocked": bool(blocking(checks)) or not chosen,
        "idempotency_key": kept.get("idempotency_key") or uuid.uuid4().hex,
        "errors": {},
        "recent": await recent_for_client(client_id),
    }


async def request_withdrawal(
    actor: Actor,
    who: Principal | int,
    *,
    client_id: int | None = None,
    source: str,
    amount: Any,
    currency: str,
    destination: str,
    trading_account_id: int | None = None,
    idempotency_key: str = "",
    audit_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Request a withdrawal after the pre-checks pass (WithdrawalRefused with their messages if not).

    `who`: the client's Principal, a staff Principal creating it for `client_id` (the creator may
    then never approve it), or a client id (the JSON API acting for that client). A repeat of
    `idempotency_key` returns the first withdrawal (a double-clicked submit creates one).
    `audit_extra`: kept in the request's audit record (staff: their name and why they create it)."""
    if isinstance(who, Principal):
        if who.is_client:
            client_id, kind, requester = who.id, "client", who.id
        else:
            if client_id is None:
                raise ValueError("staff must name the client they request for")
            kind, requester = "staff", who.id
    else:
        client_id, kind, requester = who, "api", who
    assert client_id is not None
    key = (idempotency_key or "").strip()[:200] or None
    source = "account" if source == "account" else "wallet"
    op_id = ""
    async with db.transaction():
        if key is not None:
            await db.fetchrow("SELECT pg_advisory_xact_lock($1, hashtext($2))", 0x66787764, key)
            first = await db.fetchrow(
                "SELECT id, client_id FROM funding_withdrawals WHERE idempotency_key = $1", key
            )
            if first is not None:
                if first["client_id"] != client_id:
                    raise FormErrors({"idempotency_key": "This form was already used; reload the page."})
                return await get_withdrawal(first["id"])
        checks = await prechecks(
            client_id, source=source, trading_account_id=trading_account_id, amount=amount,
            currency=currency, destination=destination,
        )  # fmt: skip
        stop = blocking(checks)
        if stop:
            raise WithdrawalRefused([c.message for c in stop])
        currency = currency_code(currency)
        value = check_amount(parse_amount(amount), currency)
        chosen = next(d for d in await destinations_for(client_id, currency) if d["key"] == destination)
        required, why = await approvals_required(value, currency)
        row = await db.fetchrow(
            "INSERT INTO funding_withdrawals (client_id, source, trading_account_id, method_id, provider, destination, "
            "destination_label, amount, requested_amount, currency, status, approvals_required, prechecks, "
            "requested_by, requester_kind, requester_id, idempotency_key, created_at, updated_at) VALUES "
            "($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $8, $9, $10, $11, $12::jsonb, $13, $14, $15, $16, now(), now()) "
            "RETURNING id",
            client_id,
            source,
            trading_account_id if source == "account" else None,
            chosen["method_id"],
            chosen["provider"],
            json.dumps(chosen["destination"]),
            chosen["destination"]["label"][:200],
            value,
            currency,
            "moving" if source == "account" else "requested",
            required,
            json.dumps([c.as_dict() for c in checks]),
            actor.label[:320],
            kind,
            requester,
            key,
        )
        assert row is not None
        wid = int(row["id"])
        if source == "wallet":
            wallet = await ledger.wallet_for(client_id, currency)
            assert wallet is not None
            try:
                held = await holds.hold(actor, wallet, value, hold_key(wid), reference=f"withdrawal:{wid}")
            except InsufficientFunds as exc:
                raise WithdrawalRefused([exc.message]) from exc
            await db.fetchrow("UPDATE funding_withdrawals SET hold_id = $2 WHERE id = $1", wid, held.id)
        else:
            from app.trading.operations import create_operation
            from app.trading.platform import BalanceType

            assert trading_account_id is not None
            op_id = await create_operation(
                actor, trading_account_id, BalanceType.BALANCE, -value, reference=f"withdrawal:{wid}",
                comment=f"withdrawal {wid}", inline=True,
            )  # fmt: skip
            await db.fetchrow("UPDATE funding_withdrawals SET op_id = $2 WHERE id = $1", wid, op_id)
        created = await get_withdrawal(wid)
        await audit.record(
            actor, "funding.withdrawal.requested", "funding_withdrawal", wid,
            after={**view(created), "requester_kind": kind, "approvals_why": why, **(audit_extra or {})},
        )  # fmt: skip
        await notify(client_id, wid, wallet=source == "wallet")
    if op_id:
        await _execute(op_id, actor)
        created = await get_withdrawal(wid)
    return created


async def _execute(op_id: str, actor: Actor) -> None:
    """Send the MT5 operation now; whatever happens it is settled later by its job or sweep."""
    from app.trading.operations import execute_operation

    try:
        await execute_operation(op_id, actor=actor)
    except Exception:  # noqa: BLE001 (the operation's own sweep finishes it)
        logging.getLogger(__name__).exception("withdrawal operation %s: first attempt failed", op_id)


async def on_operation_settled(op: dict[str, Any], status: str, actor: Actor) -> None:
    """Finish an account withdrawal's move off MT5 (called in that operation's settling transaction):
    done → account → wallet, then held; failed → the withdrawal fails with the server's reason."""
    ref = str(op["reference"])
    ident = ref.removeprefix("withdrawal:")
    if not ident.isdigit():
        return None
    row = await db.fetchrow("SELECT * FROM funding_withdrawals WHERE id = $1 FOR UPDATE", int(ident))
    if row is None or row["status"] != "moving" or row["op_id"] != op["op_id"]:
        return None  # an operation with no matching row of ours books nothing
    wid, client_id, amount, currency = row["id"], row["client_id"], row["amount"], row["currency"]
    if status == "done":
        trading = await ledger.account_for_trading(int(op["account_id"]))
        wallet = await ledger.wallet_for(client_id, currency)
        assert trading is not None and wallet is not None
        await ledger.transfer(
            actor, "transfer", debit=trading, credit=wallet, amount=amount,
            idempotency_key=f"withdrawal:{wid}:move", reference=f"withdrawal:{wid}",
            memo=f"withdrawal {wid} from login {op.get('login', '')}",
        )  # fmt: skip
        held = await holds.hold(actor, wallet, amount, hold_key(wid), reference=f"withdrawal:{wid}")
        await db.fetchrow(
            "UPDATE funding_withdrawals SET status = 'requested', hold_id = $2, updated_at = now() WHERE id = $1",
            wid,
            held.id,
        )
    else:
        reason = str(op.get("last_error") or "the trading server refused the operation")
        await db.fetchrow(
            "UPDATE funding_withdrawals SET status = 'failed', payout_error = $2, updated_at = now() WHERE id = $1",
            wid,
            f"The trading server refused to take the money off the account: {reason}"[:2000],
        )
    after = await get_withdrawal(wid)
    await audit.record(
        actor, f"funding.withdrawal.{'moved' if status == 'done' else 'failed'}", "funding_withdrawal", wid,
        before={"status": "moving"}, after=view(after),
    )  # fmt: skip
    await notify(client_id, wid, wallet=status == "done")


# --- the client cancels -----------------------------------------------------------------------


async def cancel(p: Principal, withdrawal_id: int, actor: Actor) -> dict[str, Any]:
    """The client takes back a request nobody has approved yet: the hold goes back to the wallet."""
    await get_withdrawal_for(p, withdrawal_id)
    async with db.transaction():
        row = await get_withdrawal(withdrawal_id, lock=True)
        if not p.is_client or row["client_id"] != p.id:
            raise NotFound("withdrawal")
        if row["status"] != "requested" or await approvals_of(withdrawal_id):
            raise FormErrors(
                {"__all__": "This withdrawal can no longer be cancelled: finance has started on it."}
            )
        if row["hold_id"] is not None:
            await holds.release(
                actor, row["hold_id"], f"withdrawal:{withdrawal_id}:release", reason="cancelled by the client"
            )
        await db.fetchrow(
            "UPDATE funding_withdrawals SET status = 'cancelled', decided_at = now(), updated_at = now() WHERE id = $1",
            withdrawal_id,
        )
        after = await get_withdrawal(withdrawal_id)
        await audit.record(
            actor, "funding.withdrawal.cancelled", "funding_withdrawal", withdrawal_id,
            before=view(row), after=view(after),
        )  # fmt: skip
        await notify(row["client_id"], withdrawal_id, wallet=True)
    return after
