"""Deal sync: every deal of every managed account, stored once, close behind the server.

The MT5 Web API has no push, so sync polls `deal/get_batch` for all managed logins (in chunks)
over a window of *platform* time: from the high-water mark (the newest deal time seen) minus a
few seconds of overlap, because several deals share a second and a deal may become visible a
moment after its timestamp. Rows go in by COPY into a temporary table and one
`INSERT … SELECT … ON CONFLICT (server_id, deal) DO NOTHING`, which resolves account and client
by login on the way; the deal ticket is the natural key, so overlap and repeated runs never store
a deal twice. The high-water mark moves only after every chunk of the window has committed, so a
run that dies half-way is simply repeated (an outage is caught up the same way, from the mark).

Gaps — what can and cannot be detected through the Web API:
- Deal tickets are server-wide and we only read our own logins, so a skipped ticket number means
  nothing by itself (it is usually another broker client's deal). Gaps are detected differently:
- *Late arrival*: a deal we had not stored, timed before the previous high-water mark and with a
  ticket below the highest one stored. It got in only thanks to the overlap; others like it may
  have missed it, so a `SyncGap` is opened and the next run re-reads the last ten minutes.
- *Clock change*: the server's clock offset is measured on every run (`time/server` against UTC).
  If it moves back, deals from then on carry platform times behind the mark; the mark is pulled
  back by the change and a gap is opened until a run has read past it.
- *Missed deals*: `backfill` (hourly job) re-reads the last hours up to the mark; anything it
  finds was missed by the incremental runs and is recorded as a (resolved) gap.
- *New logins*: a login linked since the last run (or, after a restart, one with no deal stored)
  gets its whole history read, since its earlier deals lie before the mark.
What cannot be seen: a deal deleted on the server after we stored it (MT5 does not say). A deal
arriving later than the overlap is found only by the next back-fill (within the hour), and not at
all if it is timestamped before the back-fill's window (2 h).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.core import db
from app.core.db import DB
from app.trading import platform as p
from app.trading.sync_core import (
    DEALS,
    LOCK_DEALS,
    State,
    accounts_of,
    chunks,
    ensure_state,
    measure_clock,
    record_error,
    server_lock,
    uncancellable,
)

OVERLAP_SECONDS = 5
FUTURE_SLACK_SECONDS = 60  # read a little past the server's "now": a deal stamped this second is not missed
CHUNK_LOGINS = 1000  # logins per fetch; the platform splits further into its own request size
PARALLEL = 2  # chunks fetched and stored at once: one fetch overlaps the other's COPY
LATE_REREAD_SECONDS = 600
CLOCK_TOLERANCE_SECONDS = 1
CATCHING_UP_SECONDS = 60
BACKFILL_HOURS = 2
LOCK_BACKFILL = 0x5D04

# fmt: off
IN_COLUMNS = (  # the order of p.DEAL_ROW_COLUMNS
    "deal", "login", "action", "entry", "reason", "ptime", "tmsc", "symbol", "price", "volume", "profit",
    "storage", "commission", "fee", "position_id", "order_id", "comment", "contract_size", "digits", "dealer",
)
# fmt: on

_TEMP = """
CREATE TEMP TABLE IF NOT EXISTS trading_deals_in (
  deal bigint, login bigint, action smallint, entry smallint, reason smallint, ptime bigint, tmsc bigint,
  symbol text, price numeric, volume bigint, profit numeric, storage numeric, commission numeric,
  fee numeric, position_id bigint, order_id bigint, comment text, contract_size numeric, digits smallint,
  dealer bigint
) ON COMMIT DELETE ROWS
"""

# $1 server, $2 clock offset (s), $3 synced_at, $4 previous max ticket, $5 previous high-water mark.
_INSERT = """
WITH ins AS (
  INSERT INTO trading_deals (server_id, deal, login, account_id, client_id, action, entry, reason, symbol,
    volume, price, profit, commission, storage, fee, position_id, order_id, comment, contract_size, time,
    platform_time, time_msc, synced_at)
  SELECT $1, i.deal, i.login, a.id, a.client, i.action, i.entry, i.reason, left(i.symbol, 32), i.volume,
    i.price, i.profit, i.commission, i.storage, i.fee, i.position_id, i.order_id, left(i.comment, 64),
    NULLIF(i.contract_size, 0),
    to_timestamp(((CASE WHEN i.tmsc > 0 THEN i.tmsc ELSE i.ptime * 1000 END) - $2::bigint * 1000) / 1000.0),
    i.ptime, i.tmsc, $3
  FROM trading_deals_in i
  LEFT JOIN trading_accounts a ON a.server = $1 AND a.login = i.login
  ON CONFLICT (server_id, deal) DO NOTHING
  RETURNING deal, platform_time, CASE WHEN time_msc > 0 THEN time_msc ELSE platform_time * 1000 END AS msc
)
SELECT count(*) AS inserted,
  min(msc) AS min_msc,
  count(*) FILTER (WHERE deal < $4 AND platform_time < $5) AS late,
  min(deal) FILTER (WHERE deal < $4 AND platform_time < $5) AS late_from,
  max(deal) FILTER (WHERE deal < $4 AND platform_time < $5) AS late_to,
  min(platform_time) FILTER (WHERE deal < $4 AND platform_time < $5) AS late_time,
  (SELECT max(ptime) FROM trading_deals_in) AS max_time,
  (SELECT max(deal) FROM trading_deals_in) AS max_deal
FROM ins
"""

_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})
_SPECIAL = re.compile(r"[\\\t\n\r\x00]").search
_known_logins: dict[tuple[str, int], set[int]] = {}


@dataclass
class DealsResult:
    server_id: int
    skipped: bool = False  # another run holds this server's deal sync
    fetched: int = 0
    inserted: int = 0
    since: int = 0
    until: int = 0
    clock_offset: int = 0
    lag_ms: int | None = None
    late: int = 0
    gaps_opened: int = 0
    gaps_resolved: int = 0
    new_logins: int = 0
    seconds: float = 0.0


@dataclass
class _Totals:
    fetched: int = 0
    inserted: int = 0
    min_msc: int | None = None
    late: int = 0
    late_from: int | None = None
    late_to: int | None = None
    late_time: int | None = None
    max_time: int = 0
    max_deal: int = 0
    per_chunk: list[int] = field(default_factory=list)

    def add(self, fetched: int, row: dict[str, Any]) -> None:
        self.fetched += fetched
        self.inserted += row["inserted"]
        self.per_chunk.append(row["inserted"])
        self.min_msc = _min(self.min_msc, row["min_msc"])
        self.late += row["late"]
        self.late_from = _min(self.late_from, row["late_from"])
        self.late_to = _max(self.late_to, row["late_to"])
        self.late_time = _min(self.late_time, row["late_time"])
        self.max_time = max(self.max_time, row["max_time"] or 0)
        self.max_deal = max(self.max_deal, row["max_deal"] or 0)


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


async def sync_deals(server_id: int) -> DealsResult:
    """One incremental run for one server (a no-op `skipped` result while another run holds it).

    Platform errors are recorded for ops and raised again, so the caller can back off."""
    started = time.monotonic()
    async with server_lock(LOCK_DEALS, server_id) as mine:
        if not mine:
            return DealsResult(server_id, skipped=True)
        try:
            result = await _incremental(server_id)
        except Exception as exc:
            await record_error(server_id, DEALS, exc)
            raise
    result.seconds = time.monotonic() - started
    return result


async def _incremental(server_id: int) -> DealsResult:
    from app.trading.connections import platform_for

    state = await ensure_state(server_id)
    platform = await platform_for(server_id)
    offset = await measure_clock(platform)
    now = int(time.time())
    until = now + offset + FUTURE_SLACK_SECONDS
    result = DealsResult(server_id, clock_offset=offset, until=until)
    first_run = state.deals_synced_at is None
    if not first_run and abs(offset - state.clock_offset_seconds) > CLOCK_TOLERANCE_SECONDS:
        state = await _clock_moved(state, offset)
        result.gaps_opened += 1
    elif not first_run:  # a second either way is the resolution of a whole-second clock
        offset = result.clock_offset = state.clock_offset_seconds
    open_gaps = await db.fetch(
        "SELECT id, detected_at FROM trading_sync_gaps WHERE server = {} AND resolved_at IS NULL", server_id
    )
    since = max(0, state.last_deal_time - OVERLAP_SECONDS) if state.last_deal_time else 0
    for gap in open_gaps:
        since = min(since, int(gap["detected_at"].timestamp()) + offset - LATE_REREAD_SECONDS)
    since = max(0, since)
    result.since = since

    accounts = await accounts_of(server_id, active_only=False)
    logins = [a.login for a in accounts]
    new = await _new_logins(server_id, logins, first_run=first_run or since == 0)
    if new:  # a login linked since the last run may have history before the mark: read all of it
        await _load(server_id, platform, new, 0, until, offset, prev_ticket=0, prev_time=0)
        result.new_logins = len(new)
    behind = first_run or (now - state.deals_synced_at.timestamp() > CATCHING_UP_SECONDS)  # type: ignore[union-attr]
    if behind:  # the first run, or the first after an outage: say so while it reads
        await db.fetch("UPDATE trading_sync_state SET status = 'catching_up' WHERE server = {}", server_id)

    totals = await _load(
        server_id, platform, logins, since, until, offset,
        prev_ticket=state.last_deal_ticket, prev_time=state.last_deal_time,
    )  # fmt: skip
    result.fetched, result.inserted, result.late = totals.fetched, totals.inserted, totals.late
    synced_at = datetime.now(UTC)  # every chunk has committed
    if totals.min_msc is not None and not first_run:  # history read by a first run has no lag to speak of
        lag = synced_at.timestamp() * 1000 - (totals.min_msc - offset * 1000)
        result.lag_ms = max(0, min(int(lag), 2**31 - 1))

    await uncancellable(_commit_run(server_id, state, result, totals, open_gaps, synced_at))
    return result


async def _commit_run(
    server_id: int,
    state: State,
    result: DealsResult,
    totals: _Totals,
    open_gaps: list[dict[str, Any]],
    synced_at: datetime,
) -> None:
    """Move the mark (only now that every chunk has committed), resolve the gaps this run re-read,
    open one for late arrivals."""
    since, offset = result.since, result.clock_offset
    async with db.transaction():
        await db.fetch(
            "UPDATE trading_sync_state SET last_deal_time = GREATEST(last_deal_time, {}), "
            "last_deal_ticket = GREATEST(last_deal_ticket, {}), clock_offset_seconds = {}, "
            "deals_synced_at = {}, last_ok_at = {}, lag_ms = COALESCE({}, lag_ms), "
            "status = CASE WHEN status = 'error' AND last_error LIKE 'states:%' THEN status ELSE 'ok' END "
            "WHERE server = {}",
            totals.max_time, totals.max_deal, offset, synced_at, synced_at, result.lag_ms, server_id,
        )  # fmt: skip
        if open_gaps:
            ids = [g["id"] for g in open_gaps]
            await db.fetch(
                "UPDATE trading_sync_gaps SET resolved_at = {}, note = note || {} WHERE id = ANY({}::int[])",
                synced_at,
                f" Re-read from platform time {since}: back-filled.",
                ids,
            )
            result.gaps_resolved = len(ids)
        if totals.late:
            behind = state.last_deal_time - (totals.late_time or state.last_deal_time)
            await _open_gap(
                server_id, totals.late_from or 0, totals.late_to or 0,
                f"{totals.late} deal(s) arrived late (timed up to {behind} s before deals already stored); "
                f"re-reading the last {LATE_REREAD_SECONDS // 60} minutes.",
            )  # fmt: skip
            result.gaps_opened += 1


async def _clock_moved(state: State, offset: int) -> State:
    """The server's clock offset changed: pull the mark back if the clock went back, and open a gap
    that the next successful run resolves."""
    delta = offset - state.clock_offset_seconds
    rewind = min(0, delta)
    await uncancellable(_record_clock(state, offset, delta, rewind))
    return State(
        state.server_id, max(0, state.last_deal_time + rewind), state.last_deal_ticket, offset,
        state.status, state.deals_total, state.deals_synced_at,
    )  # fmt: skip


async def _record_clock(state: State, offset: int, delta: int, rewind: int) -> None:
    async with db.transaction():
        await db.fetch(
            "UPDATE trading_sync_state SET clock_offset_seconds = {}, "
            "last_deal_time = GREATEST(0, last_deal_time + {}) WHERE server = {}",
            offset, rewind, state.server_id,
        )  # fmt: skip
        await _open_gap(
            state.server_id, state.last_deal_ticket, state.last_deal_ticket,
            f"Server clock moved {delta:+d} s (UTC{state.clock_offset_seconds:+d} s → UTC{offset:+d} s); "
            f"high-water mark moved back {-rewind} s.",
        )  # fmt: skip


async def _open_gap(
    server_id: int, from_ticket: int, to_ticket: int, note: str, resolved: bool = False
) -> None:
    now = datetime.now(UTC)
    await db.fetch(
        "INSERT INTO trading_sync_gaps (server, from_ticket, to_ticket, detected_at, resolved_at, note) "
        "VALUES ({}, {}, {}, {}, {}, {})",
        server_id, from_ticket, to_ticket, now, now if resolved else None, note,
    )  # fmt: skip


async def _new_logins(server_id: int, logins: list[int], *, first_run: bool) -> list[int]:
    """Logins whose earlier history may never have been read: linked since this process's last run,
    or, on a process's first run, those with no deal stored at all (linked while no sync ran). The
    very first run of a server reads everything anyway."""
    key = (db.current_url(), server_id)
    known = _known_logins.get(key)
    _known_logins[key] = set(logins)
    if first_run:
        return []
    if known is None:
        rows = await db.fetch(
            "SELECT a.login FROM trading_accounts a WHERE a.server = {} AND a.login IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM trading_deals d WHERE d.login = a.login AND d.server_id = a.server)",
            server_id,
        )
        return [r["login"] for r in rows]
    return [login for login in logins if login not in known]


async def _load(
    server_id: int,
    platform: p.TradingPlatform,
    logins: Sequence[int],
    since: int,
    until: int,
    offset: int,
    *,
    prev_ticket: int,
    prev_time: int,
) -> _Totals:
    """Fetch and store every deal of `logins` in [since, until], `PARALLEL` chunks at a time; each
    chunk commits on its own (harmless: the mark moves only once all of them have)."""
    totals = _Totals()
    gate = asyncio.Semaphore(PARALLEL)

    async def one(chunk: Sequence[int]) -> None:
        async with gate:
            rows = await _fetch_rows(platform, list(chunk), since, until)
            if rows:
                row = await uncancellable(_store(server_id, rows, offset, prev_ticket, prev_time))
                totals.add(len(rows), row)

    async with asyncio.TaskGroup() as group:
        for chunk in chunks(logins, CHUNK_LOGINS):
            group.create_task(one(chunk))
    return totals


async def _fetch_rows(platform: p.TradingPlatform, logins: list[int], since: int, until: int) -> list[tuple]:
    if isinstance(platform, p.DealRowSource):
        return await platform.fetch_deal_rows(logins, since, until)
    return [_row_of(d) for d in await platform.fetch_deals(logins, since, until)]


def _row_of(d: p.Deal) -> tuple[str, ...]:
    return tuple(
        str(v)
        for v in (
            d.deal, d.login, d.action, d.entry, d.reason, d.time, d.time_msc, d.symbol, d.price, d.volume,
            d.profit, d.storage, d.commission, d.fee, d.position_id, d.order, d.comment, d.contract_size,
            d.digits, d.dealer,
        )
    )  # fmt: skip


def copy_text(rows: Sequence[Sequence[str]]) -> bytes:
    """Rows in COPY's text format. Only the symbol and the comment can hold a tab, newline or
    backslash; numbers are passed through as the server wrote them (PostgreSQL parses them)."""
    esc, special = _ESCAPE, _SPECIAL
    out = []
    for r in rows:
        symbol, comment = r[7], r[16]
        if special(symbol) or special(comment):
            r = (*r[:7], symbol.translate(esc), *r[8:16], comment.translate(esc), *r[17:])
        out.append("\t".join(r))
    out.append("")
    return "\n".join(out).encode()


async def _store(
    server_id: int,
    rows: Sequence[Sequence[str]],
    offset: int,
    prev_ticket: int,
    prev_time: int,
) -> dict[str, Any]:
    data = copy_text(rows)
    async with db.transaction():
        tx = DB.current_transaction.get()
        assert tx is not None
        conn = tx.connection
        await conn.execute(_TEMP)
        await conn.copy_to_table(
            "trading_deals_in", source=memoryview(data), columns=list(IN_COLUMNS), format="text"
        )
        row = dict(await conn.fetchrow(_INSERT, server_id, offset, datetime.now(UTC), prev_ticket, prev_time))
        if row["inserted"]:
            await conn.execute(
                "UPDATE trading_sync_state SET deals_total = deals_total + $1 WHERE server = $2",
                row["inserted"],
                server_id,
            )
    return row


async def backfill(server_id: int, hours: float = BACKFILL_HOURS) -> DealsResult:
    """Re-read the last `hours` up to the high-water mark (minus the overlap the incremental runs
    still cover). Whatever this stores was missed by them: recorded as a resolved gap.

    Runs beside the incremental loop (inserts are idempotent), one back-fill per server at a time."""
    from app.trading.connections import platform_for

    started = time.monotonic()
    async with server_lock(LOCK_BACKFILL, server_id) as mine:
        if not mine:
            return DealsResult(server_id, skipped=True)
        try:
            state = await ensure_state(server_id)
            if state.deals_synced_at is None:
                return DealsResult(server_id, skipped=True)  # nothing synced yet: the first run reads all
            platform = await platform_for(server_id)
            offset = state.clock_offset_seconds
            until = state.last_deal_time - OVERLAP_SECONDS
            since = max(0, int(time.time()) + offset - int(hours * 3600))
            logins = [a.login for a in await accounts_of(server_id, active_only=False)]
            totals = await _load(
                server_id, platform, logins, since, until, offset,
                prev_ticket=2**62, prev_time=2**62,
            )  # fmt: skip
        except Exception as exc:
            await record_error(server_id, DEALS, exc)
            raise
        if totals.inserted:
            async with db.transaction():
                await _open_gap(
                    server_id, totals.late_from or 0, totals.late_to or 0,
                    f"{totals.inserted} deal(s) missed by incremental sync, found by the back-fill of "
                    f"the last {hours:g} h.",
                    resolved=True,
                )  # fmt: skip
    return DealsResult(
        server_id, fetched=totals.fetched, inserted=totals.inserted, since=since, until=until,
        clock_offset=offset, gaps_opened=1 if totals.inserted else 0, seconds=time.monotonic() - started,
    )  # fmt: skip


async def backfill_logins(server_id: int, logins: list[int]) -> DealsResult:
    """The whole history of some logins (an existing MT5 account just linked to a client): no gap
    is recorded, these deals were never expected before."""
    from app.trading.connections import platform_for

    state = await ensure_state(server_id)
    platform = await platform_for(server_id)
    offset = state.clock_offset_seconds if state.deals_synced_at else await measure_clock(platform)
    until = int(time.time()) + offset + FUTURE_SLACK_SECONDS
    totals = await _load(server_id, platform, logins, 0, until, offset, prev_ticket=0, prev_time=0)
    return DealsResult(server_id, fetched=totals.fetched, inserted=totals.inserted, until=until)
