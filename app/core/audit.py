"""The tamper-evident audit trail: one helper writes it, inside the caller's transaction.

Each row's hash is SHA-256 over the previous row's hash and the row's own canonical JSON, so
any edit, deletion, insertion or reordering breaks the chain. Writers serialise on a
transaction-scoped advisory lock, so concurrent transactions extend the chain one after the
other instead of forking it; the lock is released at commit, when the row becomes visible.

Every audited write holds that lock from its audit row to its commit, so `record` keeps that
stretch short: one round trip (`audit_append()`, migrations/core/core_0004_audit_append.py) takes
the lock, reads the last row, hashes and inserts; Python only builds the canonical JSON around the
time and the sequence number, which are known under the lock. A SQL function that writes a change
and its audit rows in one statement (the ledger's `funding_post_batch()`) gets the canonical JSON
from `pending()` with holes for what only it knows, and chains them itself with `audit_hash()`
(migrations/core/core_0005_audit_hash.py), the one SQL definition of the hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from app.core import db
from app.core.db import DB
from app.core.tables import AuditEvent

GENESIS = "0" * 64
LOCK_KEY = 0x66786372  # "fxcr": one chain, one lock


@dataclass(frozen=True)
class Actor:
    """Who did it, and from where. Services receive it explicitly from their callers."""

    kind: str  # staff | client | system | anonymous
    id: str | None = None
    label: str = ""
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(kind="system", label=label)


class _NotExact(Exception):
    """A value JSONB may store differently from how Python reads it back (floats, NaN)."""


def _reject(_text: str) -> Any:
    raise _NotExact


def _as_stored_here(value: Any) -> tuple[str | None, Any]:
    """(JSON text to store, the value as JSONB will give it back), without asking the database.

    Strings, integers, booleans, nulls, lists and objects come back from JSONB exactly as Python
    reads its own JSON text; numbers with a fraction or exponent may not (JSONB rewrites 1e16 as
    10000000000000000), so those raise `_NotExact` and take the round trip through the database.
    """
    if value is None:
        return None, None
    text = json.dumps(value, default=str, sort_keys=True)
    return text, json.loads(text, parse_float=_reject, parse_constant=_reject)


async def _as_stored(before: Any, after: Any) -> tuple[Any, Any]:
    """The values as JSONB will give them back (it rewrites numbers such as 1e16), so the hash
    written now is the one verify() recomputes from the stored row."""
    if before is None and after is None:
        return None, None
    texts = [None if v is None else json.dumps(v, default=str, sort_keys=True) for v in (before, after)]
    row = await db.fetchrow("SELECT $1::jsonb::text AS b, $2::jsonb::text AS a", *texts)
    assert row is not None
    stored_before, stored_after = (None if row[k] is None else json.loads(row[k]) for k in ("b", "a"))
    return stored_before, stored_after


async def _stored_texts(before: Any, after: Any) -> tuple[Any, Any, str | None, str | None]:
    """(before, after) as JSONB will give them back, and the JSON texts to store them from."""
    try:
        before_text, stored_before = _as_stored_here(before)
        after_text, stored_after = _as_stored_here(after)
    except _NotExact:
        stored_before, stored_after = await _as_stored(before, after)
        before_text = None if stored_before is None else json.dumps(stored_before)
        after_text = None if stored_after is None else json.dumps(stored_after)
    return stored_before, stored_after, before_text, after_text


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(row: dict[str, Any]) -> str:
    body = {"seq": int(row["seq"]), "occurred_at": _iso(row["occurred_at"]), **_fields(row)}
    return _dumps(body)


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    """What the hash covers besides seq and occurred_at."""
    return {
        "actor_kind": row["actor_kind"],
        "actor_id": row["actor_id"],
        "actor_label": row["actor_label"],
        "action": row["action"],
        "subject_type": row["subject_type"],
        "subject_id": row["subject_id"],
        "before": _parse(row["before"]),
        "after": _parse(row["after"]),
        "ip": row["ip"],
        "user_agent": row["user_agent"],
    }


def _dumps(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _parse(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value)
    return value


def chain_hash(prev_hash: str, row: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(row)).encode()).hexdigest()


async def record(
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: Any = None,
    *,
    before: Any = None,
    after: Any = None,
) -> int:
    """Append one audit row inside the current transaction; returns its sequence number."""
    tx = DB.current_transaction.get()
    if tx is None:
        raise RuntimeError("audit.record() must run inside the transaction of the change it records")
    before, after, before_text, after_text = await _stored_texts(before, after)
    row: dict[str, Any] = _actor_columns(actor) | {
        "action": action,
        "subject_type": subject_type,
        "subject_id": None if subject_id is None else str(subject_id),
        "before": before,
        "after": after,
    }
    head, mid, tail = canonical_parts(row)
    seq = await tx.connection.fetchval(
        _APPEND_SQL,
        LOCK_KEY,
        head.encode(),
        mid.encode(),
        tail.encode(),
        row["actor_kind"],
        row["actor_id"],
        row["actor_label"],
        action,
        subject_type,
        row["subject_id"],
        before_text,
        after_text,
        row["ip"],
        row["user_agent"],
    )
    return int(seq)


_APPEND_SQL = "SELECT audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"


def canonical_cut(fields: dict[str, Any], holes: Sequence[str]) -> list[str]:
    """`_dumps(fields)` cut out around the values of `holes` (keys of `fields`, whose values are
    ignored): len(holes) + 1 pieces, to be joined with those values' canonical JSON in key order."""
    pieces: list[str] = []
    current = "{"
    for i, key in enumerate(sorted(fields)):
        current += ("," if i else "") + _dumps(key) + ":"
        if key in holes:
            pieces.append(current)
            current = ""
        else:
            current += _dumps(fields[key])
    pieces.append(current + "}")
    return pieces


@dataclass(frozen=True)
class Pending:
    """An audit row that a SQL function writes once it knows the row's `after` (its canonical JSON
    text) and `subject_id`, as well as the time and the sequence number it fills in under the
    chain's lock: the hash covers parts[0] + after + parts[1] + occurred_at +
    parts[2] + seq + parts[3] + subject_id + parts[4] (UTF-8), the same canonical JSON as `record`.
    `migrations/funding/funding_0013_post_batch.py` is the one user."""

    action: str
    subject_type: str
    actor: tuple[str | None, ...]  # kind, id, label, ip, user_agent: the columns, in that order
    parts: tuple[bytes, ...]


@lru_cache(maxsize=1024)
def pending(actor: Actor, action: str, subject_type: str) -> Pending:
    """The audit row `record(actor, action, subject_type, <id>, after=<object>)` would write, with
    `after` and the subject id left for the database (an object's canonical JSON is sorted, compact
    and ensure_ascii=False: `canonical_cut` builds it). Cached: an actor makes many of them."""
    row = _actor_columns(actor) | {"action": action, "subject_type": subject_type}
    row |= {"subject_id": None, "before": None, "after": None}
    fields = {"seq": None, "occurred_at": None, **_fields(row)}
    head, after_ip, mid, tail_head, tail = canonical_cut(
        fields, ("after", "occurred_at", "seq", "subject_id")
    )
    parts = (head, after_ip + '"', '"' + mid, tail_head + '"', '"' + tail)
    columns = tuple(row[k] for k in ("actor_kind", "actor_id", "actor_label", "ip", "user_agent"))
    return Pending(action, subject_type, columns, tuple(p.encode() for p in parts))


def _actor_columns(actor: Actor) -> dict[str, Any]:
    return {
        "actor_kind": actor.kind,
        "actor_id": None if actor.id is None else str(actor.id),
        "actor_label": actor.label[:255],
        "ip": actor.ip,
        "user_agent": (actor.user_agent or None) and actor.user_agent[:400],
    }


def canonical_parts(row: dict[str, Any]) -> tuple[str, str, str]:
    """`canonical(row)` cut around its occurred_at and seq, which `audit_append()` fills in under
    the lock: canonical = head + isoformat(occurred_at) + mid + str(seq) + tail. The keys sort as
    (action … ip) < occurred_at < seq < (subject_id … user_agent), so the cut is exact."""
    fields = _fields(row)
    left = _dumps({k: v for k, v in fields.items() if k < "occurred_at"})
    right = _dumps({k: v for k, v in fields.items() if k > "seq"})
    return left[:-1] + ',"occurred_at":"', '","seq":', "," + right[1:]


class Entry(NamedTuple):
    """One event for `record_many`: what `record` takes after the actor."""

    action: str
    subject_type: str
    subject_id: Any = None
    before: Any = None
    after: Any = None


async def record_many(actor: Actor, entries: Sequence[Entry]) -> list[int]:
    """Append many audit rows (one actor) inside the current transaction, in one statement.

    For bulk work (imports): the same chain rule as `record`, under the same lock, so `verify()`
    checks these rows like any other; values with non-integer numbers take one round trip through
    JSONB together (see `_as_stored_here`).
    """
    tx = DB.current_transaction.get()
    if tx is None:
        raise RuntimeError("audit.record_many() must run inside the transaction of the change it records")
    if not entries:
        return []
    try:
        values = [_as_stored_here(v)[1] for e in entries for v in (e.before, e.after)]
    except _NotExact:
        texts = [
            None if v is None else json.dumps(v, default=str, sort_keys=True)
            for e in entries
            for v in (e.before, e.after)
        ]
        stored = await tx.connection.fetch(
            "SELECT t::jsonb::text AS v FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n", texts
        )
        values = [None if r["v"] is None else json.loads(r["v"]) for r in stored]
    await tx.connection.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
    last = await tx.connection.fetchrow("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
    prev_hash = last["hash"] if last else GENESIS
    seq = (last["seq"] + 1) if last else 1
    now = datetime.now(UTC)
    columns: dict[str, list[Any]] = {name: [] for name in _MANY_COLUMNS}
    for i, e in enumerate(entries):
        row: dict[str, Any] = {
            "seq": seq + i,
            "occurred_at": now,
            "actor_kind": actor.kind,
            "actor_id": None if actor.id is None else str(actor.id),
            "actor_label": actor.label[:255],
            "action": e.action,
            "subject_type": e.subject_type,
            "subject_id": None if e.subject_id is None else str(e.subject_id),
            "before": values[2 * i],
            "after": values[2 * i + 1],
            "ip": actor.ip,
            "user_agent": (actor.user_agent or None) and actor.user_agent[:400],
        }
        digest = chain_hash(prev_hash, row)
        row["before"] = None if row["before"] is None else json.dumps(row["before"])
        row["after"] = None if row["after"] is None else json.dumps(row["after"])
        row["prev_hash"], row["hash"] = prev_hash, digest
        for name in _MANY_COLUMNS:
            columns[name].append(row[name])
        prev_hash = digest
    await tx.connection.execute(
        "INSERT INTO audit_events (seq, occurred_at, actor_kind, actor_id, actor_label, action, subject_type, "
        "subject_id, before, after, ip, user_agent, prev_hash, hash) "
        "SELECT seq, occurred_at, actor_kind, actor_id, actor_label, action, subject_type, subject_id, "
        "before::jsonb, after::jsonb, ip, user_agent, prev_hash, hash FROM unnest("
        "$1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], "
        "$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[]) "
        "AS u(seq, occurred_at, actor_kind, actor_id, actor_label, action, subject_type, subject_id, "
        "before, after, ip, user_agent, prev_hash, hash)",
        *(columns[name] for name in _MANY_COLUMNS),
    )
    return list(range(seq, seq + len(entries)))


_MANY_COLUMNS = (
    "seq",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "subject_type",
    "subject_id",
    "before",
    "after",
    "ip",
    "user_agent",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    bad_seq: int | None = None
    bad_id: int | None = None
    reason: str = ""


async def verify(batch: int = 5000) -> VerifyResult:
    """Recompute the whole chain; name the first row that does not fit."""
    prev_hash = GENESIS
    expected_seq = 1
    checked = 0
    after_seq = 0
    while True:
        rows = (
            await AuditEvent.select().where(AuditEvent.seq > after_seq).order_by(AuditEvent.seq).limit(batch)
        )
        if not rows:
            return VerifyResult(ok=True, checked=checked)
        for row in rows:
            if row["seq"] != expected_seq:
                return VerifyResult(
                    False,
                    checked,
                    row["seq"],
                    row["id"],
                    f"expected seq {expected_seq}, found {row['seq']} (a row is missing or was inserted)",
                )
            if row["prev_hash"] != prev_hash:
                return VerifyResult(
                    False, checked, row["seq"], row["id"], "prev_hash does not match the previous row's hash"
                )
            if chain_hash(prev_hash, row) != row["hash"]:
                return VerifyResult(
                    False,
                    checked,
                    row["seq"],
                    row["id"],
                    "content does not match its hash (the row was altered)",
                )
            prev_hash = row["hash"]
            expected_seq += 1
            checked += 1
            after_seq = row["seq"]
