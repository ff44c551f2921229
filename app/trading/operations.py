"""Balance operations on trading accounts, safe to retry (issue 5 item 6; contract 4).

The MT5 Web API has no idempotency key on `trade/balance`: a request that times out may or may
not have been applied. So every operation is first committed here with its own id (`op_id`),
which travels in the platform comment (`fx:<op_id>`), and every later attempt looks for that
deal on the server before sending anything again. Invariant: never credited twice, never lost.

How a send is made safe (`execute_operation`; the job, the sweep and "resolve now" use it too):

- One sender per operation: a transaction-scoped advisory lock on a connection of its own,
  held for the whole look-and-send. A worker killed with `kill -9` loses its connection and
  PostgreSQL releases the lock, so a recoverer can take over; while the sender lives, nobody can.
- The claim (`status='sending'`, `attempts+1`, `sent_at=now()`) is committed *before* the
  request goes out, so a crash at any later point leaves a row that says "may have been sent".
- Before any re-send the deal is looked for (`find_balance_operation`). A re-send also waits
  until `sent_at` is older than the server's timeout plus `RESEND_MARGIN_SECONDS`: a request
  that left a dead or impatient process may still be executing on the server, and it must have
  landed (and be findable) before we conclude that it never will.
- Only a definite refusal (not enough money, invalid, unknown account, disabled, not permitted)
  ends an operation as `failed`. Timeouts, dropped connections, malformed answers, a busy or
  unreachable server leave it `sending` with `last_error`; the minute sweep finishes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.core import audit, db, jobs, live
from app.core.audit import Actor
from app.core.db import DB
from app.core.errors import FormErrors, NotFound
from app.trading import platform as p
from app.trading.operation_rules import mt5_comment, new_op_id, validate
from app.trading.platform import BalanceType

log = logging.getLogger(__name__)

OPEN = ("pending", "sending")
RESEND_MARGIN_SECONDS = 30  # beyond the server's timeout before a request is re-sent (see above)
LOOKBACK_SECONDS = 600  # the deal is looked for from this long before the operation was created
JOB_FUNCTION = "execute_balance_operation"
_LOCK_CLASS = 0x66786F70  # "fxop": the first key of every operation's advisory lock
SYSTEM = Actor.system("trading operations")
# Each operation in hand holds one pooled connection for its lock and briefly takes a second for
# its writes: bounding them per process keeps a burst from exhausting the pool against itself.
_senders = asyncio.Semaphore(4)

# A refusal the server gave before doing anything: retrying would be refused again.
DEFINITE: tuple[type[p.PlatformError], ...] = (p.NotEnoughMoney, p.InvalidRequest, p.NotFound)
DEFINITE += (p.AccountDisabled, p.PermissionDenied, p.Duplicate)


@dataclass(frozen=True)
class BalanceOperationResult:
    """What a caller (funding, the staff form) learns. `pending`/`sending` mean "not settled yet":
    it will be completed by the job or the sweep, and never applied twice."""

    op_id: str
    status: str  # pending | sending | done | failed
    ticket: int | None
    message: str
    account_id: int
    type: BalanceType
    amount: Decimal
    currency: str
    attempts: int

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def settled(self) -> bool:
        return self.status in ("done", "failed")


# --- validation and creation ----------------------------------------------------------------------


_ACCOUNT_SQL = (
    "SELECT a.id, a.login, a.currency, a.currency_digits, a.status, s.timeout_seconds "
    "FROM trading_accounts a JOIN trading_servers s ON s.id = a.server WHERE a.id = $1"
)


async def create_operation(
    actor: Actor,
    account_id: int,
    type: BalanceType,
    amount: Decimal,
    *,
    reference: str,
    comment: str = "",
    note: str = "",
    allowed_types: frozenset[BalanceType] | None = None,
    inline: bool = False,
) -> str:
    """Validate, store (`pending`) and audit one operation; its job is enqueued after commit.

    `reference` (what asked for it, e.g. "transfer:812") is also an idempotency key per account:
    asking again with the same reference, type and amount returns the first operation's id
    instead of creating a second one (a different type or amount under it is refused).

    Called inside the caller's `db.transaction()` (funding debits a wallet in the same one), it
    joins it: the operation exists exactly when the caller's change does. `inline`: the caller
    calls `execute_operation` right after commit, so the job waits for that attempt. `note` (a
    staff member's reason) goes to the audit trail in full."""
    try:
        type = BalanceType(type)
    except ValueError:
        pass  # validate() words it
    async with db.transaction():
        account = await db.fetchrow(_ACCOUNT_SQL, account_id)
        if account is None:
            raise NotFound("trading account")
        reference = reference.strip()
        if reference:  # the caller's idempotency key on this account: a repeat gets the first one
            await db.fetchrow("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_CLASS + 1, reference)
            same = await db.fetchrow(
                "SELECT op_id, type, amount FROM trading_balance_operations WHERE account = $1 AND reference = $2",
                account_id,
                reference,
            )
            if same is not None and (same["type"], same["amount"]) == (type, amount):
                return str(same["op_id"])
            if same is not None:
                raise FormErrors(
                    {"reference": "This reference was used for another operation on this account."}
                )
        errors = validate(account, type, amount, reference, allowed_types)
        if errors:
            raise FormErrors(errors)
        op_id = new_op_id()
        text = mt5_comment(op_id, comment)
        await db.fetchrow(
            "INSERT INTO trading_balance_operations (op_id, account, type, amount, currency, comment, status, "
            "attempts, last_error, reference, requested_by, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, '', $7, $8, now(), now()) RETURNING id",
            op_id,
            account_id,
            int(type),
            amount,
            account["currency"],
            text,
            reference,
            (actor.label or f"{actor.kind}:{actor.id}")[:320],
        )
        await audit.record(
            actor,
            "trading.balance_operation.requested",
            "trading_balance_operation",
            op_id,
            after={
                "account_id": account_id,
                "login": account["login"],
                "type": BalanceType(type).name.lower(),
                "amount": str(amount),
                "currency": account["currency"],
                "reference": reference,
                "comment": text,
                **({"note": note} if note else {}),
            },
        )
        delay = float(account["timeout_seconds"] or 10) * 2 + 5 if inline else 0
        extra: dict[str, Any] = {"scheduled": int(time.time() + delay)} if delay else {}
        jobs.enqueue_after_commit(JOB_FUNCTION, key=f"balance-op:{op_id}", op_id=op_id, **extra)
    return op_id


async def balance_operation(
    actor: Actor,
    account_id: int,
    type: BalanceType,
    amount: Decimal,
    *,
    reference: str,
    comment: str = "",
    note: str = "",
    allowed_types: frozenset[BalanceType] | None = None,
) -> BalanceOperationResult:
    """Create the operation and, outside a transaction, send it at once.

    Outside a transaction: committed, then sent inline; the answer is `done` or `failed` when the
    server answers within its timeout, else `sending` (the job, scheduled for after the inline
    attempt, and the minute sweep finish it). Inside the caller's transaction: nothing can be sent
    before that commits, so the result is `pending` and the job sends it after commit (or call
    `execute_operation(op_id)` yourself once committed for a synchronous answer)."""
    inline = DB.current_transaction.get() is None
    op_id = await create_operation(
        actor,
        account_id,
        type,
        amount,
        reference=reference,
        comment=comment,
        note=note,
        allowed_types=allowed_types,
        inline=inline,
    )
    if not inline:
        return await get_result(op_id)
    return await execute_operation(op_id, actor=actor)


# --- reading --------------------------------------------------------------------------------------

OP_SQL = (
    "SELECT o.id, o.op_id, o.account AS account_id, o.type, o.amount, o.currency, o.comment, o.status, "
    "o.ticket, o.attempts, o.last_error, o.reference, o.requested_by, o.created_at, o.updated_at, "
    "o.sent_at, o.done_at, a.login, a.server AS server_id, a.client AS client_id, a.currency_digits, "
    "s.timeout_seconds, "
    "EXTRACT(EPOCH FROM now() - o.sent_at)::float8 AS sent_age "
    "FROM trading_balance_operations o JOIN trading_accounts a ON a.id = o.account "
    "JOIN trading_servers s ON s.id = a.server "
)


async def _load(op_id: str) -> dict[str, Any]:
    row = await db.fetchrow(OP_SQL + "WHERE o.op_id = $1", op_id)
    if row is None:
        raise NotFound("balance operation")
    return row


def result_of(op: dict[str, Any]) -> BalanceOperationResult:
    return BalanceOperationResult(
        op_id=op["op_id"],
        status=op["status"],
        ticket=op["ticket"],
        message=describe(op),
        account_id=op["account_id"],
        type=BalanceType(op["type"]),
        amount=op["amount"],
        currency=op["currency"],
        attempts=op["attempts"],
    )


def describe(op: dict[str, Any]) -> str:
    """One sentence on where the operation stands, for staff and for funding's client messages."""
    status = op["status"]
    if status == "done":
        return f"Done: deal #{op['ticket']} on the trading server."
    if status == "failed":
        return op["last_error"] or "Refused by the trading server."
    if status == "pending" and not op["attempts"]:
        waiting = f" ({op['last_error']})" if op["last_error"] else ""
        return "Waiting to be sent to the trading server" + waiting + "."
    why = f" Last problem: {op['last_error']}" if op["last_error"] else ""
    return (
        "Sent, not yet confirmed by the trading server. It is checked on the server and completed "
        "automatically, never applied twice." + why
    )


async def get_result(op_id: str) -> BalanceOperationResult:
    return result_of(await _load(op_id))


# --- sending, safely ------------------------------------------------------------------------------


@asynccontextmanager
async def _exclusive(pk: int) -> AsyncIterator[bool]:
    """True when this process now holds the operation's lock (until the block ends). Its own
    connection and transaction: a killed process's lock dies with its connection."""
    assert DB.pool is not None, "database pool not started"
    async with DB.pool.acquire() as conn, conn.transaction():
        yield bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", _LOCK_CLASS, pk))


async def _platform(server_id: int) -> p.TradingPlatform:
    from app.trading import connections

    return await connections.platform_for(server_id)


def resend_guard_seconds(op: dict[str, Any]) -> float:
    return float(op["timeout_seconds"] or 10) + RESEND_MARGIN_SECONDS


async def execute_operation(op_id: str, *, actor: Actor | None = None) -> BalanceOperationResult:
    """Bring one operation as far as it safely goes now. Idempotent; any process may call it."""
    actor = actor or SYSTEM
    op = await _load(op_id)
    if op["status"] not in OPEN:
        return result_of(op)
    async with _senders, _exclusive(op["id"]) as mine:
        if not mine:  # another process is looking or sending right now
            return result_of(await _load(op_id))
        op = await _load(op_id)  # what the previous holder left
        if op["status"] not in OPEN:
            return result_of(op)
        try:
            platform = await _platform(op["server_id"])
        except Exception as exc:  # server inactive, credentials unreadable, …
            await _note_error(op, _text(exc))
            return result_of(await _load(op_id))
        if op["attempts"]:
            if await _look(platform, op, actor):
                return result_of(await _load(op_id))
            if (op["sent_age"] or 0) < resend_guard_seconds(op):
                return result_of(await _load(op_id))  # the last request may still land: later
        await _send(platform, op, actor)
    return result_of(await _load(op_id))


async def _look(platform: p.TradingPlatform, op: dict[str, Any], actor: Actor) -> bool:
    """True when the operation is settled now (found, or found to be inconsistent)."""
    try:
        server_now = await platform.server_time()
        since = int(op["created_at"].timestamp()) + (server_now - int(time.time())) - LOOKBACK_SECONDS
        deal = await platform.find_balance_operation(op["login"], op["comment"], since)
    except Exception as exc:
        await _note_error(op, "Could not look for the operation on the server: " + _text(exc))
        return True  # not settled, but nothing may be sent without a look
    if deal is None:
        return False
    if deal.profit != op["amount"] or deal.action != op["type"] or deal.login != op["login"]:
        await _note_error(
            op,
            f"Deal #{deal.deal} carries this operation's comment but differs (action {deal.action}, "
            f"amount {deal.profit}); nothing more is sent, check it by hand.",
        )
        log.error("balance operation %s: deal %s differs from the operation", op["op_id"], deal.deal)
        return True
    await _finish(op, actor, "done", ticket=deal.deal, found=True)
    return True


async def _send(platform: p.TradingPlatform, op: dict[str, Any], actor: Actor) -> None:
    async with db.transaction():
        claimed = await db.fetchrow(
            "UPDATE trading_balance_operations SET status = 'sending', attempts = attempts + 1, "
            "sent_at = now(), updated_at = now() WHERE id = $1 AND status IN ('pending', 'sending') "
            "AND attempts = $2 RETURNING attempts",
            op["id"],
            op["attempts"],
        )
        if claimed is None:
            return
        await audit.record(
            actor,
            "trading.balance_operation.sent",
            "trading_balance_operation",
            op["op_id"],
            after={"attempt": claimed["attempts"], "login": op["login"]},
        )
    try:
        async with asyncio.timeout(float(op["timeout_seconds"] or 10) + 5):
            ticket = await platform.balance_operation(
                op["login"], BalanceType(op["type"]), op["amount"], op["comment"]
            )
    except DEFINITE as exc:
        await _finish(op, actor, "failed", error=exc.message)
        return
    except Exception as exc:  # may have been applied: never re-sent without a look
        if not isinstance(exc, p.PlatformError):
            log.warning("balance operation %s: %r", op["op_id"], exc)
        await _note_error(op, _text(exc), audited=actor)
        await _look(platform, op, actor)  # a dropped answer after execution is found at once
        return
    await _finish(op, actor, "done", ticket=ticket)


async def _finish(
    op: dict[str, Any],
    actor: Actor,
    status: str,
    *,
    ticket: int | None = None,
    error: str = "",
    found: bool = False,
) -> None:
    async with db.transaction():
        row = await db.fetchrow(
            "UPDATE trading_balance_operations SET status = $2, ticket = $3, last_error = $4, "
            "done_at = now(), updated_at = now() WHERE id = $1 AND status IN ('pending', 'sending') "
            "RETURNING id",
            op["id"],
            status,
            ticket,
            error,
        )
        if row is None:
            return
        after = {"status": status, "login": op["login"], "amount": str(op["amount"]), "ticket": ticket}
        after |= {"found_on_server": True} if found else {}
        after |= {"error": error} if error else {}
        await audit.record(
            actor,
            f"trading.balance_operation.{status}",
            "trading_balance_operation",
            op["op_id"],
            after=after,
        )
        from app.funding import operation_hooks  # funding builds on trading: imported when used

        await operation_hooks.on_settled(
            {**op, "ticket": ticket, "status": status, "last_error": error}, status, actor
        )
        if status == "done":
            await live.publish(f"client:{op['client_id']}", "trading.account", account_id=op["account_id"])


async def _note_error(op: dict[str, Any], message: str, *, audited: Actor | None = None) -> None:
    async with db.transaction():
        await db.fetchrow(
            "UPDATE trading_balance_operations SET last_error = $2, updated_at = now() "
            "WHERE id = $1 AND status IN ('pending', 'sending') RETURNING id",
            op["id"],
            message[:2000],
        )
        if audited is not None:
            await audit.record(
                audited,
                "trading.balance_operation.unconfirmed",
                "trading_balance_operation",
                op["op_id"],
                after={"error": message[:500]},
            )


def _text(exc: BaseException) -> str:
    if isinstance(exc, p.PlatformError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return "The trading server did not answer in time."
    return f"{type(exc).__name__}: {exc}"[:500]


# --- recovery -------------------------------------------------------------------------------------


async def resolve_operation(op_id: str, actor: Actor | None = None) -> BalanceOperationResult:
    """Look on the server and complete, or send: what the sweep does, for one operation now."""
    return await execute_operation(op_id, actor=actor)


async def recover_pending(older_than_seconds: float = 60, limit: int = 200) -> dict[str, int]:
    """Every open operation untouched for `older_than_seconds` (a crashed worker's, a lost job's,
    a timed-out one's), one by one. Safe to run in many processes at once: each operation is
    handled by whoever holds its lock; the others skip it. A server found down is not asked
    again in the same sweep (each try would cost its full timeout)."""
    rows = await db.fetch(
        "SELECT o.op_id, a.server AS server_id FROM trading_balance_operations o "
        "JOIN trading_accounts a ON a.id = o.account WHERE o.status IN ('pending', 'sending') "
        "AND o.updated_at < now() - make_interval(secs => {}) ORDER BY o.id LIMIT {}",
        float(older_than_seconds),
        limit,
    )
    counts = {"checked": 0, "done": 0, "failed": 0, "open": 0}
    down: set[int] = set()
    for row in rows:
        if row["server_id"] in down:
            counts["open"] += 1
            continue
        try:
            result = await execute_operation(row["op_id"])
        except NotFound:
            continue
        counts["checked"] += 1
        counts[result.status if result.settled else "open"] += 1
        if not result.settled and not await _answers(row["server_id"]):
            down.add(row["server_id"])
    return counts


async def _answers(server_id: int) -> bool:
    try:
        await (await _platform(server_id)).server_time()
    except Exception:
        return False
    return True
