"""The ledger's write side: post a balanced transaction, or reverse one (holds: `app.funding.holds`).

Sign convention: a posting's amount is positive for a debit, negative for a credit; a
transaction's postings sum to zero per currency. Balances are kept on each account's normal side,
so they read as people expect. The usual movements (debit first):

    deposit                   Dr provider_clearing   Cr client_wallet
    transfer to MT5           Dr client_wallet       Cr trading_account   (and back: the reverse)
    fee                       Dr client_wallet       Cr fees
    withdrawal requested      Dr client_wallet       Cr client_hold       (`holds.hold`)
    withdrawal rejected       Dr client_hold         Cr client_wallet     (`holds.release`)
    withdrawal paid out       Dr client_hold         Cr provider_clearing (`holds.capture`)

Holds are postings to a per-wallet hold account rather than a `held` column: a hold is then a
ledger transaction like any other (audited, immutable, reconciled from postings), and
"available = balance − held ≥ 0" holds by construction: the wallet account's own balance *is*
the available amount (the database refuses it below zero), the hold account carries what is
held (also never below zero), and the client's balance is their sum. Only `hold`, `release` and
`capture` may post to hold accounts, so a hold account always equals its open holds.

Concurrency: a posting is one statement, `funding_post_batch()` (migrations/funding/funding_0013):
it locks the accounts it touches with `SELECT … FOR UPDATE` in id order (so two transfers over the
same accounts queue instead of deadlocking), checks currencies, precision, balance per currency and
the wallets' funds under those locks, then writes the transaction, its postings, the new cached
balances and, by default, the audit row of what it posted. A refusal comes back as a row, never
half-written, so inside a caller's transaction the caller can carry on. Outside a caller's
transaction a posting is its own ledger transaction, committed together with the others waiting
at that moment in the same statement (`app.funding.ledger_batch`: group commit, each posting
still with its own checks, refusal and audit row); the audit chain's lock is then held only for
the end of that statement and its commit, not for the disk flush (it commits early, and the
callers wait for the flush before reporting success).

Idempotency: every transaction carries a unique key. Posting again with a used key returns the
first transaction (`replayed=True`) if the content (kind, postings, reference, memo) is the same,
and raises `IdempotencyConflict` if not; it never posts twice, also when both calls race.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.db import DB
from app.core.errors import NotFound
from app.funding import ledger_batch
from app.funding.accounts import (
    account_for_trading,
    get_account,
    system_account,
    wallet_for,
)
from app.funding.amounts import (
    AlreadySettled,
    IdempotencyConflict,
    InsufficientFunds,
    LedgerError,
    format_amount,
)

__all__ = [
    "Line",
    "Posted",
    "post",
    "transfer",
    "reverse",
    "wallet_for",
    "account_for_trading",
    "system_account",
    "get_account",
    "get_transaction",
]

KINDS = (
    "deposit",
    "withdrawal",
    "transfer",
    "fee",
    "reversal",
    "adjustment",
    "hold",
    "release",
    "conversion",
)
POSTABLE = ("deposit", "withdrawal", "transfer", "fee", "adjustment", "conversion")  # the rest have functions


@dataclass(frozen=True)
class Line:
    account_id: int
    amount: Decimal  # debit positive, credit negative
    currency: str
    balance_after: Decimal  # the account's normal-side balance right after this line


@dataclass(frozen=True)
class Posted:
    """A committed (or, inside the caller's transaction, about to be committed) transaction.
    `replayed`: the idempotency key had been used with the same content; nothing new was posted."""

    id: int
    kind: str
    idempotency_key: str
    reference: str
    memo: str
    created_by: str
    reverses_id: int | None
    created_at: datetime
    lines: tuple[Line, ...]
    replayed: bool = False


# --- posting --------------------------------------------------------------------------------------


async def post(
    actor: Actor,
    kind: str,
    postings: Sequence[tuple[int, Decimal]],
    *,
    idempotency_key: str,
    reference: str = "",
    memo: str = "",
    audit: bool = True,
) -> Posted:
    """Post one balanced transaction: `postings` are (ledger account id, signed amount) pairs.

    Joins the caller's `db.transaction()` when there is one, else commits its own. `audit=False`
    is for callers that write their own audit record of the business event in the same transaction.
    Raises LedgerError (nothing written) when unbalanced, in the wrong currency or precision, on an
    unknown account, or when a client wallet would go below zero (InsufficientFunds)."""
    if kind not in POSTABLE:
        raise ValueError(f"post() takes kinds {POSTABLE}; reversals and holds have their own functions")
    return await _post(actor, kind, postings, idempotency_key, reference, memo, audit)


async def transfer(
    actor: Actor,
    kind: str,
    *,
    debit: int,
    credit: int,
    amount: Decimal,
    idempotency_key: str,
    reference: str = "",
    memo: str = "",
    audit: bool = True,
) -> Posted:
    """Two-line `post`: debit one account and credit another with the same positive `amount`."""
    _positive(amount)
    return await post(
        actor,
        kind,
        [(debit, amount), (credit, -amount)],
        idempotency_key=idempotency_key,
        reference=reference,
        memo=memo,
        audit=audit,
    )


# One statement does the locking, checking and writing (`funding_post_batch`, in
# migrations/funding/funding_0013_post_batch.py), with the audit row when asked: one round trip,
# which is most of a posting's cost. It answers with a refusal row instead of raising, so nothing is
# written and the caller's transaction stays usable. Outside a caller's transaction, postings made
# at the same moment share it (`ledger_batch`, group commit).
_AUDIT_ACTION = "funding.transaction.posted"


async def _post(
    actor: Actor,
    kind: str,
    postings: Sequence[tuple[int, Decimal]],
    idempotency_key: str,
    reference: str,
    memo: str,
    audit_it: bool,
    *,
    reverses_id: int | None = None,
    holds_ok: bool = False,
) -> Posted:
    """One statement, with its audit row when `audit_it`, in the caller's transaction (the audit
    chain's lock is then held until the caller commits) or, without one, as its own transaction,
    together with the others waiting at that moment (`ledger_batch`)."""
    key = _check_key(idempotency_key)
    reference, memo = reference.strip()[:200], memo.strip()
    lines = _raw_lines(postings)
    created_by = _label(actor)
    fingerprint = _fingerprint(kind, lines, reference, memo, reverses_id)
    args: list[Any] = [kind, key, fingerprint, reference, memo, created_by, reverses_id]
    args += [[a for a, _ in lines], [m for _, m in lines], holds_ok]
    row = view = None
    if audit_it:
        row = audit.pending(actor, _AUDIT_ACTION, "funding_transaction")
        view = audit.canonical_cut(
            _view_fields(kind, key, reference, memo, reverses_id) | {"postings": None}, ("postings",)
        )
    request = ledger_batch.Request(args, row, view)
    tx = DB.current_transaction.get()
    if tx is None:
        rows = await ledger_batch.post(request)
    else:
        rows = await ledger_batch.post_in_transaction(tx.connection, request)
    return await _outcome(rows, kind, key, reference, memo, created_by, reverses_id)


async def _outcome(
    rows: list[Any], kind: str, key: str, reference: str, memo: str, created_by: str, reverses_id: int | None
) -> Posted:
    """The posted transaction, the first one for a replayed key, or the refusal as a LedgerError."""
    first = rows[0]
    outcome = first["outcome"]
    if outcome == "posted":
        return Posted(
            id=first["transaction_id"],
            kind=kind,
            idempotency_key=key,
            reference=reference,
            memo=memo,
            created_by=created_by,
            reverses_id=reverses_id,
            created_at=first["created_at"],
            lines=tuple(Line(r["account_id"], r["amount"], r["currency"], r["balance"]) for r in rows),
        )
    if outcome == "replay":
        return replace(await get_transaction(first["transaction_id"]), replayed=True)
    if outcome == "conflict":
        raise IdempotencyConflict("This idempotency key was already used for a different transaction.")
    if outcome == "unknown_account":
        raise LedgerError(f"Ledger account {first['account_id']} does not exist.", field="account")
    if outcome == "hold_account":
        raise LedgerError("Held funds move only by releasing or capturing their hold.", field="account")
    if outcome == "precision":
        digits, currency = int(first["balance"]), first["currency"]
        unit = "whole units" if digits == 0 else f"at most {digits} decimals"
        raise LedgerError(f"{currency} amounts have {unit}: {first['amount']} has more.")
    if outcome == "unbalanced":
        total = format_amount(first["amount"], first["currency"])
        raise LedgerError(f"The postings do not balance (they sum to {total}).", field="postings")
    if outcome == "insufficient":
        raise _short_of(first["kind"], first["currency"], first["amount"], first["balance"])
    raise RuntimeError(f"funding_post_batch answered {outcome!r}")


def _raw_lines(postings: Sequence[tuple[int, Decimal]]) -> list[tuple[int, Decimal]]:
    lines: list[tuple[int, Decimal]] = []
    for account_id, amount in postings:
        if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
            raise LedgerError(f"Amounts must be exact decimals, not {type(amount).__name__} ({amount!r}).")
        if not Decimal(amount).is_finite() or amount == 0:
            raise LedgerError("Every posting needs a non-zero amount.")
        lines.append((int(account_id), Decimal(amount)))
    if len(lines) < 2:
        raise LedgerError("A transaction needs at least two postings.", field="postings")
    return lines


def _positive(amount: object) -> Decimal:
    """A positive exact amount (its precision is checked against the account's currency later)."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise LedgerError(f"Amounts must be exact decimals, not {type(amount).__name__} ({amount!r}).")
    value = Decimal(amount)
    if not value.is_finite():
        raise LedgerError("The amount must be a number.")
    if value <= 0:
        raise LedgerError("The amount must be positive.")
    return value


def _check_key(key: str) -> str:
    key = (key or "").strip()
    if not key or len(key) > 200:
        raise LedgerError("An idempotency key (1 to 200 characters) is required.", field="idempotency_key")
    return key


def _fingerprint(
    kind: str, lines: list[tuple[int, Decimal]], reference: str, memo: str, reverses_id: int | None
) -> str:
    canonical = sorted((a, str(m.normalize())) for a, m in lines)
    body = json.dumps([kind, canonical, reference, memo, reverses_id], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _short_of(kind: str, currency: str, before: Decimal, after: Decimal) -> LedgerError:
    if kind == "client_hold":
        return LedgerError(f"Only {format_amount(before, currency)} is held.")
    return InsufficientFunds(
        f"Not enough available funds: {format_amount(before, currency)} available, "
        f"{format_amount(before - after, currency)} needed."
    )


def _label(actor: Actor) -> str:
    return (actor.label or f"{actor.kind}:{actor.id}")[:320]


def _view(posted: Posted) -> dict[str, Any]:
    """What the audit trail keeps of a transaction (`funding_post_batch` writes the same)."""
    return _view_fields(
        posted.kind, posted.idempotency_key, posted.reference, posted.memo, posted.reverses_id
    ) | {"postings": [[x.account_id, str(x.amount), x.currency] for x in posted.lines]}


def _view_fields(kind: str, key: str, reference: str, memo: str, reverses_id: int | None) -> dict[str, Any]:
    return {
        "kind": kind,
        "idempotency_key": key,
        "reference": reference,
        "memo": memo,
        "reverses_id": reverses_id,
    }


async def get_transaction(transaction_id: int) -> Posted:
    row = await db.fetchrow(
        "SELECT id, kind, idempotency_key, reference, memo, created_by, reverses_id, created_at "
        "FROM funding_transactions WHERE id = $1",
        transaction_id,
    )
    if row is None:
        raise NotFound("ledger transaction")
    lines = await db.fetch(
        "SELECT account_id, amount, currency, balance_after FROM funding_postings WHERE transaction_id = {} "
        "ORDER BY id",
        transaction_id,
    )
    return Posted(**row, lines=tuple(Line(**x) for x in lines))


# --- reversal -------------------------------------------------------------------------------------


async def reverse(actor: Actor, transaction_id: int, reason: str, idempotency_key: str) -> Posted:
    """Undo a transaction with a new one carrying the negated postings, once. Refused for holds
    and their settlements (release the hold instead) and when a wallet no longer has the money."""
    reason = (reason or "").strip()
    if not reason:
        raise LedgerError("Say why the transaction is reversed.", field="reason")
    async with db.transaction():
        original = await db.fetchrow(
            "SELECT id, kind, reference FROM funding_transactions WHERE id = $1 FOR UPDATE", transaction_id
        )
        if original is None:
            raise NotFound("ledger transaction")
        earlier = await db.fetchrow(
            "SELECT id, idempotency_key FROM funding_transactions WHERE reverses_id = $1", transaction_id
        )
        if earlier is not None and earlier["idempotency_key"] != (idempotency_key or "").strip():
            raise AlreadySettled(f"Transaction {transaction_id} was already reversed by {earlier['id']}.")
        if original["kind"] == "reversal":
            raise LedgerError(
                "A reversal cannot be reversed: post a new transaction instead.", field="transaction"
            )
        lines = await db.fetch(
            "SELECT p.account_id, p.amount, a.kind FROM funding_postings p "
            "JOIN funding_ledger_accounts a ON a.id = p.account_id WHERE p.transaction_id = {} ORDER BY p.id",
            transaction_id,
        )
        if any(x["kind"] == "client_hold" for x in lines):
            raise LedgerError(
                "A withdrawal hold is undone by releasing it, not by a reversal.", field="transaction"
            )
        return await _post(
            actor,
            "reversal",
            [(x["account_id"], -x["amount"]) for x in lines],
            idempotency_key,
            original["reference"],
            reason,
            True,
            reverses_id=transaction_id,
        )
