"""Transfers between a client's wallet and their trading accounts (issue 6 item 4).

A leg on MT5 is a balance operation (`app.trading.operations`): created in the same transaction as
our `funding_transfers` row (and the wallet hold, when money leaves the wallet), sent after commit,
and settled by whoever gets there first (this request, the operation's job or the minute sweep).
The ledger side is booked by `on_operation_settled`, which `app.funding.operation_hooks` calls
INSIDE the transaction that marks the operation done or failed: the ledger follows MT5 exactly,
also after a crash anywhere (a `pending` transfer with an open operation is all a crash leaves).

States (`status`) and what the ledger holds meanwhile:

- wallet → account: `pending` (the amount is held on the wallet, the deposit is on its way to
  MT5) → `done` (hold captured to the account's ledger account) | `failed` (hold released: the
  money is back in the wallet; `message` says what MT5 answered).
- account → wallet: `pending` (MT5 withdrawal on its way; nothing booked) → `done` (account →
  wallet posted) | `failed` (MT5 refused, e.g. not enough free margin: nothing to book).
- account → account: `pending`, leg 1 (`op_id`, withdrawal from the first account) → on its
  success, in the same transaction: account → wallet posted, the amount held on the wallet and
  leg 2 (`op_id_2`, deposit to the second account) created → `done` (hold captured to the second
  account) | `failed` after leg 1 (nothing booked) | `failed` after leg 2 (hold released: the
  funds are in the wallet, and the message says so).
- client → client: see `app.funding.client_transfers` (`awaiting_approval` → `done` | `rejected` | `cancelled`).

Every movement's idempotency key derives from the transfer's id (`transfer:{id}:hold`,
`transfer:{id}:capture`, …), so a replayed settlement never moves money twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.core import audit, db, live
from app.core.audit import Actor
from app.core.errors import FormErrors, NotFound
from app.funding import holds, ledger
from app.funding.amounts import IdempotencyConflict, LedgerError, check_amount, currency_code
from app.trading import operations
from app.trading.platform import BalanceType

log = logging.getLogger(__name__)

KINDS = ("wallet_to_account", "account_to_wallet", "account_to_account", "client_to_client")
REFERENCE = "transfer:"
SYSTEM = Actor.system("funding transfers")

COLUMNS = (
    "id, kind, client_id, to_client_id, from_account_id, to_account_id, amount, currency, status, hold_id, "
    "op_id, op_id_2, transaction_id, note, message, requested_by, requester_kind, requester_id, decided_by, "
    "idempotency_key, created_at, updated_at, done_at"
)
_SELECT = f"SELECT {COLUMNS} FROM funding_transfers "


# --- shared by every kind -------------------------------------------------------------------------


def check_key(idempotency_key: str) -> str:
    key = (idempotency_key or "").strip()
    if not key or len(key) > 200:
        raise LedgerError("An idempotency key (1 to 200 characters) is required.", field="idempotency_key")
    return key


async def get_transfer(transfer_id: int, *, lock: bool = False) -> dict[str, Any]:
    row = await db.fetchrow(_SELECT + "WHERE id = $1" + (" FOR UPDATE" if lock else ""), transfer_id)
    if row is None:
        raise NotFound("transfer")
    return row


async def replayed(key: str, client_id: int, kind: str, amount: Any = None) -> dict[str, Any] | None:
    """The transfer an earlier request with this key made (a double-clicked submit gets it back,
    whatever changed since); the key reused for something else is refused."""
    row = await db.fetchrow(_SELECT + "WHERE idempotency_key = $1", key)
    if row is None:
        return None
    same_amount = not isinstance(amount, Decimal) or amount == row["amount"]
    if (row["client_id"], row["kind"]) != (client_id, kind) or not same_amount:
        raise IdempotencyConflict("This form was already used for a different transfer. Please start again.")
    return {**row, "replayed": True}


def requester(actor: Actor) -> tuple[str, int | None]:
    kind = actor.kind if actor.kind in ("client", "staff", "api") else "system"
    return kind, int(actor.id) if actor.id is not None and str(actor.id).isdigit() else None


async def insert(
    actor: Actor,
    kind: str,
    client_id: int,
    amount: Decimal,
    currency: str,
    key: str,
    *,
    status: str = "pending",
    **columns: Any,
) -> int | None:
    """The new row's id, or None when a concurrent request with the same key got there first
    (the unique index makes us wait for it to commit)."""
    req_kind, req_id = requester(actor)
    names = ", ".join(columns)
    values = ", ".join(f"${i}" for i in range(10, 10 + len(columns)))
    row = await db.fetchrow(
        "INSERT INTO funding_transfers (kind, client_id, amount, currency, status, idempotency_key, requested_by, "
        "requester_kind, requester_id, created_at, updated_at" + (", " + names if columns else "") + ") "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), now()" + (", " + values if columns else "") + ") "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
        kind, client_id, amount, currency, status, key, (actor.label or f"{actor.kind}:{actor.id}")[:320],
        req_kind, req_id, *columns.values(),
    )  # fmt: skip
    return None if row is None else int(row["id"])


async def update(transfer_id: int, **columns: Any) -> dict[str, Any]:
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=2))
    row = await db.fetchrow(
        f"UPDATE funding_transfers SET {sets}, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}",
        transfer_id,
        *columns.values(),
    )
    assert row is not None
    return row


def view(t: dict[str, Any]) -> dict[str, Any]:
    """What the audit trail keeps of a transfer."""
    keys = ("kind", "client_id", "to_client_id", "from_account_id", "to_account_id", "currency", "status")
    body = {k: t[k] for k in keys if t.get(k) is not None}
    body["amount"] = str(t["amount"])
    for k in ("hold_id", "op_id", "op_id_2", "transaction_id", "message"):
        if t.get(k):
            body[k] = t[k]
    return body


async def publish(
    t: dict[str, Any], *, wallet: bool = True, finance: bool = False, recipient: bool = True
) -> None:
    """Delivered at commit: the client's pages (both clients' for client → client, the recipient's
    only once money reached them), and finance's queue."""
    clients = {t["client_id"], t["to_client_id"] if recipient else None} - {None}
    for client_id in sorted(clients):
        await live.publish(
            f"client:{client_id}", "funding.transfer", transfer_id=t["id"], client_id=client_id
        )
        if wallet:
            await live.publish(f"client:{client_id}", "funding.wallet", client_id=client_id)
    if finance:
        await live.publish("staff:finance", "funding.transfer", transfer_id=t["id"], client_id=t["client_id"])


async def live_account(account_id: int, client_id: int, *, field: str = "account") -> dict[str, Any]:
    """The client's own live, active trading account (locked for the transfer), or a refusal.
    Someone else's account is "not found", exactly like one that does not exist."""
    row = await db.fetchrow(
        "SELECT id, client AS client_id, login, currency, currency_digits, status, is_demo "
        "FROM trading_accounts WHERE id = $1 FOR SHARE",
        account_id,
    )
    if row is None or row["client_id"] != client_id:
        raise NotFound("trading account")
    if row["is_demo"]:
        raise LedgerError("Demo accounts cannot receive or send real money.", field=field)
    if row["status"] != "active" or row["login"] is None:
        raise LedgerError(f"Account {row['login'] or row['id']} is not active.", field=field)
    return row


async def not_blocked(client_id: int) -> None:
    """Money stays where it is while compliance has blocked the client (a confirmed sanctions match)."""
    from app.screening.services import is_blocked

    if await is_blocked(client_id):
        raise LedgerError(
            "Your account is restricted by our compliance team. Please contact support.", field="from"
        )


async def _requested(actor: Actor, t: dict[str, Any]) -> None:
    await audit.record(actor, "funding.transfer.requested", "funding_transfer", t["id"], after=view(t))
    await publish(t)


async def _send_after_commit(transfer_id: int, actor: Actor) -> dict[str, Any]:
    """What this request can see settle now; the job and the sweep finish anything left open."""
    for leg in ("op_id", "op_id_2"):
        t = await get_transfer(transfer_id)
        if t["status"] != "pending" or not t[leg]:
            break
        try:
            await operations.execute_operation(t[leg], actor=actor)
        except Exception:  # the operation is stored; its job and the sweep complete it
            log.exception("transfer %s: sending %s failed; left to the sweep", transfer_id, t[leg])
            break
    return await get_transfer(transfer_id)


def _same_currency(account: dict[str, Any], currency: str) -> str:
    """The account's currency; a caller who named another one (the API) is told, not converted."""
    cur = currency_code(account["currency"])
    if currency and currency_code(currency) != cur:
        raise LedgerError(
            f"Account {account['login']} is in {cur}, not {currency_code(currency)}.", field="currency"
        )
    return cur


# --- wallet → account ------------------------------------------------------------------------------


async def wallet_to_account(
    actor: Actor, client_id: int, account_id: int, amount: Any, idempotency_key: str, *, currency: str = ""
) -> dict[str, Any]:
    """Hold the amount on the wallet in the account's currency and deposit it on MT5."""
    key = check_key(idempotency_key)
    if (first := await replayed(key, client_id, "wallet_to_account", amount)) is not None:
        return first
    await not_blocked(client_id)
    async with db.transaction():
        account = await live_account(account_id, client_id)
        cur = _same_currency(account, currency)
        value = check_amount(amount, cur)
        wallet = await ledger.wallet_for(client_id, cur, create=False)
        if wallet is None:
            raise LedgerError(f"You have no {cur} wallet yet: deposit {cur} first.", field="currency")
        transfer_id = await insert(
            actor, "wallet_to_account", client_id, value, cur, key, to_account_id=account_id
        )
        if transfer_id is None:
            first = await replayed(key, client_id, "wallet_to_account", value)
            assert first is not None
            return first
        hold = await holds.hold(
            actor, wallet, value, f"transfer:{transfer_id}:hold", reference=f"transfer:{transfer_id}",
            memo=f"to account {account['login']}",
        )  # fmt: skip
        op_id = await operations.create_operation(
            actor, account_id, BalanceType.BALANCE, value, reference=f"transfer:{transfer_id}",
            comment=f"transfer {transfer_id}", inline=True,
        )  # fmt: skip
        t = await update(transfer_id, hold_id=hold.id, op_id=op_id)
        await _requested(actor, t)
    return await _send_after_commit(transfer_id, actor)


# --- account → wallet ------------------------------------------------------------------------------


async def account_to_wallet(
    actor: Actor, client_id: int, account_id: int, amount: Any, idempotency_key: str, *, currency: str = ""
) -> dict[str, Any]:
    """Withdraw from MT5 (which checks free margin) into the wallet of the account's currency."""
    key = check_key(idempotency_key)
    if (first := await replayed(key, client_id, "account_to_wallet", amount)) is not None:
        return first
    await not_blocked(client_id)
    async with db.transaction():
        account = await live_account(account_id, client_id)
        cur = _same_currency(account, currency)
        value = check_amount(amount, cur)
        await ledger.wallet_for(client_id, cur)  # opened now, so the booking at settlement finds it
        transfer_id = await insert(
            actor, "account_to_wallet", client_id, value, cur, key, from_account_id=account_id
        )
        if transfer_id is None:
            first = await replayed(key, client_id, "account_to_wallet", value)
            assert first is not None
            return first
        op_id = await operations.create_operation(
            actor, account_id, BalanceType.BALANCE, -value, reference=f"transfer:{transfer_id}",
            comment=f"transfer {transfer_id}", inline=True,
        )  # fmt: skip
        t = await update(transfer_id, op_id=op_id)
        await _requested(actor, t)
    return await _send_after_commit(transfer_id, actor)


# --- account → account -----------------------------------------------------------------------------


async def account_to_account(
    actor: Actor,
    client_id: int,
    from_account_id: int,
    to_account_id: int,
    amount: Any,
    idempotency_key: str,
    *,
    currency: str = "",
) -> dict[str, Any]:
    """Two legs through the wallet: withdraw from the first account, then deposit on the second."""
    key = check_key(idempotency_key)
    if (first := await replayed(key, client_id, "account_to_account", amount)) is not None:
        return first
    if from_account_id == to_account_id:
        raise LedgerError("Choose two different accounts.", field="to")
    await not_blocked(client_id)
    async with db.transaction():
        source = await live_account(from_account_id, client_id, field="from")
        target = await live_account(to_account_id, client_id, field="to")
        cur = _same_currency(source, currency)
        if currency_code(target["currency"]) != cur:
            raise LedgerError(
                f"Both accounts must be in the same currency ({source['login']} is in {cur}, "
                f"{target['login']} in {target['currency']}).",
                field="to",
            )
        value = check_amount(amount, cur)
        await ledger.wallet_for(client_id, cur)
        transfer_id = await insert(
            actor, "account_to_account", client_id, value, cur, key,
            from_account_id=from_account_id, to_account_id=to_account_id,
        )  # fmt: skip
        if transfer_id is None:
            first = await replayed(key, client_id, "account_to_account", value)
            assert first is not None
            return first
        op_id = await operations.create_operation(
            actor, from_account_id, BalanceType.BALANCE, -value, reference=f"transfer:{transfer_id}",
            comment=f"transfer {transfer_id}", inline=True,
        )  # fmt: skip
        t = await update(transfer_id, op_id=op_id)
        await _requested(actor, t)
    return await _send_after_commit(transfer_id, actor)


# --- settlement (inside the operation's transaction) -----------------------------------------------


def transfer_id_of(reference: str) -> int | None:
    text = str(reference or "")
    if not text.startswith(REFERENCE):
        return None
    head = text[len(REFERENCE) :].split(":", 1)[0]
    return int(head) if head.isdigit() else None


async def on_operation_settled(op: dict[str, Any], status: str, actor: Actor) -> None:
    """Finish the transfer whose MT5 operation settled (called in that operation's transaction).

    Runs at most once per operation (the operation's own update is conditional), and checks the
    transfer's state under its row lock: an operation with no matching pending transfer books nothing."""
    transfer_id = transfer_id_of(op["reference"])
    if transfer_id is None:
        return
    t = await db.fetchrow(_SELECT + "WHERE id = $1 FOR UPDATE", transfer_id)
    if t is None or t["status"] != "pending":
        log.warning("operation %s settled for transfer %s, which is not pending", op["op_id"], transfer_id)
        return
    mt5 = str(op.get("last_error") or "").strip() or "Refused by the trading server."
    first_leg = op["op_id"] == t["op_id"]
    into_account = (first_leg and t["kind"] == "wallet_to_account") or (
        bool(t["op_id_2"]) and op["op_id"] == t["op_id_2"]
    )
    if into_account:
        if status == "done":
            await _into_account(actor, t, op)
        else:
            await _back_to_wallet(actor, t, mt5)
    elif first_leg and status != "done":
        await _refused(actor, t, mt5)
    elif first_leg and t["kind"] == "account_to_wallet":
        await _out_of_account(actor, t, op)
    elif first_leg and t["kind"] == "account_to_account":
        await _first_leg_done(actor, t, op)


async def _finished(actor: Actor, t: dict[str, Any], status: str, message: str, **columns: Any) -> None:
    done = await update(t["id"], status=status, message=message, done_at=datetime.now(UTC), **columns)
    await audit.record(
        actor, f"funding.transfer.{status}", "funding_transfer", t["id"], before=view(t), after=view(done)
    )
    await publish(done)


async def _into_account(actor: Actor, t: dict[str, Any], op: dict[str, Any]) -> None:
    """The deposit on MT5 is done: the held funds belong to the trading account now."""
    to_account = await ledger.account_for_trading(int(op["account_id"]))
    assert to_account is not None and t["hold_id"] is not None
    captured = await holds.capture(
        actor, t["hold_id"], to_account, f"transfer:{t['id']}:capture", kind="transfer",
        memo=f"to account {op['login']} (deal {op.get('ticket')})",
    )  # fmt: skip
    await _finished(actor, t, "done", "", transaction_id=captured.settle_transaction_id)


async def _back_to_wallet(actor: Actor, t: dict[str, Any], mt5: str) -> None:
    assert t["hold_id"] is not None
    await holds.release(actor, t["hold_id"], f"transfer:{t['id']}:release", reason=mt5[:500])
    mt5 = mt5.rstrip(".")
    where = f"your {t['currency']} wallet"
    if t["kind"] == "account_to_account":
        message = f"The second account did not accept the money ({mt5}). The funds are in {where}."
    else:
        message = f"The trading server refused the transfer ({mt5}). The money is back in {where}."
    await _finished(actor, t, "failed", message)


async def _refused(actor: Actor, t: dict[str, Any], mt5: str) -> None:
    await _finished(
        actor, t, "failed", f"The trading server refused the withdrawal: {mt5} Nothing was moved."
    )


async def _account_to_wallet_posting(actor: Actor, t: dict[str, Any], op: dict[str, Any], key: str) -> int:
    from_account = await ledger.account_for_trading(int(op["account_id"]))
    wallet = await ledger.wallet_for(t["client_id"], t["currency"])
    assert from_account is not None and wallet is not None
    posted = await ledger.transfer(
        actor, "transfer", debit=from_account, credit=wallet, amount=t["amount"], idempotency_key=key,
        reference=f"transfer:{t['id']}", memo=f"from account {op['login']} (deal {op.get('ticket')})",
    )  # fmt: skip
    return posted.id


async def _out_of_account(actor: Actor, t: dict[str, Any], op: dict[str, Any]) -> None:
    tx_id = await _account_to_wallet_posting(actor, t, op, f"transfer:{t['id']}")
    await _finished(actor, t, "done", "", transaction_id=tx_id)


async def _first_leg_done(actor: Actor, t: dict[str, Any], op: dict[str, Any]) -> None:
    """Leg 1 of account → account is on the wallet: hold it there and start leg 2 (sent after commit
    by its job, or by the request that is waiting for it)."""
    tx_id = await _account_to_wallet_posting(actor, t, op, f"transfer:{t['id']}:out")
    wallet = await ledger.wallet_for(t["client_id"], t["currency"])
    assert wallet is not None
    hold = await holds.hold(
        actor, wallet, t["amount"], f"transfer:{t['id']}:hold", reference=f"transfer:{t['id']}",
        memo="between accounts",
    )  # fmt: skip
    try:
        op_id_2 = await operations.create_operation(
            actor, t["to_account_id"], BalanceType.BALANCE, t["amount"], reference=f"transfer:{t['id']}",
            comment=f"transfer {t['id']}",
        )  # fmt: skip
    except (FormErrors, NotFound) as exc:  # e.g. the second account was archived meanwhile: no write made
        why = "; ".join(exc.errors.values()) if isinstance(exc, FormErrors) else "the account is gone"
        held = await update(t["id"], hold_id=hold.id, transaction_id=tx_id)
        await _back_to_wallet(actor, held, why)
        return
    moved = await update(t["id"], hold_id=hold.id, op_id_2=op_id_2, transaction_id=tx_id)
    await audit.record(
        actor, "funding.transfer.second_leg", "funding_transfer", t["id"], before=view(t), after=view(moved)
    )
    await publish(moved)


# --- safety net -----------------------------------------------------------------------------------

_ORPHANS_SQL = (
    "SELECT t.id, o.op_id FROM funding_transfers t JOIN trading_balance_operations o "
    "ON o.op_id = CASE WHEN t.op_id_2 <> '' THEN t.op_id_2 ELSE t.op_id END "
    "WHERE t.status = 'pending' AND t.op_id <> '' AND o.status IN ('done', 'failed') "
    "AND o.done_at < now() - make_interval(secs => {}) ORDER BY t.id LIMIT {}"
)


async def finish_orphans(older_than_seconds: float = 300, limit: int = 100) -> int:
    """Transfers still `pending` although their current leg settled a while ago. The hook runs in
    the operation's own transaction, so this needs a bug (or a hand-edited row) to happen; if it
    does, the hook is run again here (its keys make it book at most once) and it is logged."""
    finished = 0
    for row in await db.fetch(_ORPHANS_SQL, float(older_than_seconds), limit):
        async with db.transaction():
            op = await db.fetchrow(operations.OP_SQL + "WHERE o.op_id = $1 FOR UPDATE OF o", row["op_id"])
            if op is None or op["status"] not in ("done", "failed"):
                continue
            log.error(
                "transfer %s was pending after operation %s settled: finishing it", row["id"], row["op_id"]
            )
            await on_operation_settled(op, op["status"], SYSTEM)
            finished += 1
    return finished
