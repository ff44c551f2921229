"""Group commit for ledger postings that are their own transaction (`ledger.post` outside a
caller's `db.transaction()`).

Such a posting used to be one statement and one commit of its own. Under load (one worker serving
many transfers at once) most of PostgreSQL's time then went to what each statement and each commit
costs, not to the posting, and each audited posting queued for the audit chain's lock on its own.
Here the postings waiting at the same moment go to the database together, as one statement
(`funding_post_batch()`, migrations/funding/funding_0013) and one commit: each is still its own
ledger transaction with its own key, checks, refusal and audit row. Nobody waits for a batch to
fill: a posting goes as soon as a connection is free, with whatever arrived while the ones before
were in flight (a posting alone is a batch of one). A posting inside a caller's transaction goes
through the same statement (`post_in_transaction`), so the rules of a posting are written once.

What a caller sees does not change: the rows `funding_post_batch()` answers for its posting, once
they are durable. A refusal of one posting is that posting's answer only. If the statement fails as a
whole (it should not: nothing in it raises by design), nothing of it was written, and each posting
is tried again on its own so that each caller gets its own answer. A lost connection is every
waiting caller's error, as it would have been alone; their idempotency keys make a retry safe.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.core import audit
from app.core.db import DB

MAX_BATCH = 256  # postings per statement: bounds the statement's locks and the first caller's wait
IN_FLIGHT = 2  # statements at once: one's Python and commit overlap the other's work in PostgreSQL

_BATCH_SQL = (
    "SELECT * FROM funding_post_batch($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::bigint[], $8::boolean[], $9::int[], $10::int[], $11::int[], $12::numeric[], $13::boolean[], $14, "
    "$15::text[], $16::text[], $17::text[], $18::bytea[], $19::text[], $20)"
)
# After postings that committed early (funding_0013): a transaction with an xid commits
# synchronously, so this returns once the WAL is on disk up to and past them.
_DURABLE_SQL = "SELECT pg_current_xact_id()"
_DONE = ("posted", "replay")


@dataclass
class Stats:
    """Since the process started: statements sent and postings they carried (the bench prints the
    ratio; a test checks that simultaneous postings really share a statement)."""

    statements: int = 0
    postings: int = 0


stats = Stats()


@dataclass
class Request:
    """One posting: kind, key, fingerprint, reference, memo, created_by, reverses_id, accounts,
    amounts, holds_ok; with an audit record the pending row and the `after` view cut around its
    postings (see funding_0013)."""

    args: list[Any]
    row: audit.Pending | None = None
    view: list[str] | None = None
    future: asyncio.Future[list[Any]] | None = field(default=None, repr=False)


class _Batcher:
    """One per event loop: the postings waiting, and the flushes under way."""

    def __init__(self) -> None:
        self.waiting: list[Request] = []
        self.flushing = 0  # flushes under way (counted down as each ends, before it yields again)
        self.tasks: set[asyncio.Task[None]] = set()  # held so that they are not collected

    async def post(self, request: Request) -> list[Any]:
        loop = asyncio.get_running_loop()
        request.future = loop.create_future()
        self.waiting.append(request)
        if self.flushing < IN_FLIGHT:
            self.flushing += 1
            task = loop.create_task(self._flush())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await request.future

    async def _flush(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:MAX_BATCH], self.waiting[MAX_BATCH:]
                batch = [r for r in batch if r.future is not None and not r.future.done()]  # not cancelled
                if not batch:
                    continue
                try:
                    answers = await _run(batch)
                except BaseException as exc:
                    for request in batch:
                        _settle(request, exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for request, answer in zip(batch, answers, strict=True):
                    _settle(request, answer)
        except BaseException:  # the flush itself was cancelled (the loop is closing)
            waiting, self.waiting = self.waiting, []
            for request in waiting:
                _settle(request, asyncio.CancelledError())
            raise
        finally:
            self.flushing -= 1


def _settle(request: Request, answer: list[Any] | BaseException) -> None:
    future = request.future
    if future is None or future.done():  # its caller was cancelled: the posting's fate is its key's
        return
    if isinstance(answer, BaseException):
        future.set_exception(answer)
    else:
        future.set_result(answer)


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batcher] = weakref.WeakKeyDictionary()


async def post(request: Request) -> list[Any]:
    """The rows `funding_post_batch()` answers for this posting, committed and durable (or its
    refusal), posted together with the others waiting at the same moment."""
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = _Batcher()
    return await batcher.post(request)


async def post_in_transaction(conn: Any, request: Request) -> list[Any]:
    """One posting in the caller's transaction (on its connection): it commits or rolls back with
    the caller, who holds the audit chain's lock until then."""
    return list(await conn.fetch(_BATCH_SQL, *_batch_args([request]), False))


async def _run(batch: list[Request]) -> list[list[Any] | BaseException]:
    assert DB.pool is not None, "database pool not started"
    async with DB.pool.acquire() as conn:
        stats.statements += 1
        stats.postings += len(batch)
        try:
            return await _statement(conn, batch)
        except asyncpg.PostgresError as exc:  # rolled back whole: each on its own, for its own answer
            if len(batch) == 1:
                return [exc]
            answers: list[list[Any] | BaseException] = []
            for request in batch:
                try:
                    answers += await _statement(conn, [request])
                except asyncpg.PostgresError as one:
                    answers.append(one)
            return answers


async def _statement(conn: Any, batch: list[Request]) -> list[list[Any] | BaseException]:
    """The batch as its own transaction, committed early, answered once durable."""
    rows = await conn.fetch(_BATCH_SQL, *_batch_args(batch), True)
    per_item: list[list[Any] | BaseException] = [[] for _ in batch]
    for row in rows:
        answer = per_item[row["item"] - 1]
        assert isinstance(answer, list)
        answer.append(row)
    if any(row["outcome"] in _DONE for row in rows):  # durable before any is reported
        await conn.fetchval(_DURABLE_SQL)
    return per_item


def _batch_args(batch: list[Request]) -> list[Any]:
    columns: list[list[Any]] = [[] for _ in range(8)]  # kind … holds_ok: a posting's scalar arguments
    first: list[int] = []
    count: list[int] = []
    accounts: list[int] = []
    amounts: list[Any] = []
    audited: list[bool] = []
    actions: list[str] = []
    subject_types: list[str] = []
    actors: list[str | None] = []
    canonical: list[bytes] = []
    views: list[str] = []
    for request in batch:
        kind, key, fingerprint, reference, memo, created_by, reverses_id, accts, amts, holds_ok = request.args
        for column, value in zip(
            columns, (kind, key, fingerprint, reference, memo, created_by, reverses_id, holds_ok), strict=True
        ):
            column.append(value)
        first.append(len(accounts) + 1)
        count.append(len(accts))
        accounts += accts
        amounts += amts
        row = request.row
        audited.append(row is not None)
        actions.append(row.action if row else "")
        subject_types.append(row.subject_type if row else "")
        if row is not None:
            actors += row.actor
            canonical += row.parts
            views += request.view or ["", ""]
        else:
            actors += [None] * 5
            canonical += [b""] * 5
            views += ["", ""]
    return [*columns, first, count, accounts, amounts, audited, audit.LOCK_KEY, actions, subject_types] + [
        actors,
        canonical,
        views,
    ]
