"""State sync: balances, equity, margin and open positions of every active account, every couple
of seconds, and a live event for each client whose account changed.

The Web API cannot say "what changed since", so every active account is read each run
(`user/account/get_batch`, `position/get_batch`, in chunks the platform sends concurrently) and
PostgreSQL decides what changed: one `UPDATE … FROM unnest(…)` touches only the rows whose figures
differ, one upsert only the positions that moved, one delete the positions that are gone. Only
those accounts' clients get a `trading.account` event (inside the transaction, so a page never
shows figures that were rolled back), which keeps a quiet server quiet for the browsers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from app.core import db, live
from app.core.db import DB
from app.trading import platform as p
from app.trading.sync_core import (
    LOCK_STATES,
    STATES,
    accounts_of,
    ensure_state,
    record_error,
    record_states_ok,
    server_lock,
    uncancellable,
)

PUBLISH_ONE_BY_ONE = 50  # above this many changed accounts, the events go out in one statement

_ACCOUNTS = """
UPDATE trading_accounts a SET balance = v.balance, credit = v.credit, equity = v.equity, margin = v.margin,
  margin_free = v.margin_free, margin_level = v.margin_level, profit = v.profit,
  currency_digits = v.digits, state_at = $2
FROM unnest($3::bigint[], $4::numeric[], $5::numeric[], $6::numeric[], $7::numeric[], $8::numeric[],
            $9::numeric[], $10::numeric[], $11::smallint[])
  AS v(login, balance, credit, equity, margin, margin_free, margin_level, profit, digits)
WHERE a.server = $1 AND a.login = v.login AND a.status = 'active'
  AND (a.balance, a.credit, a.equity, a.margin, a.margin_free, a.margin_level, a.profit)
      IS DISTINCT FROM (v.balance, v.credit, v.equity, v.margin, v.margin_free, v.margin_level, v.profit)
RETURNING a.id, a.client
"""

_POSITIONS = """
INSERT INTO trading_positions AS t (server_id, position, login, account_id, symbol, action, volume,
  price_open, price_current, price_sl, price_tp, profit, storage, digits, time_create, time_update, synced_at)
SELECT $1, v.position, v.login, a.id, left(v.symbol, 32), v.action, v.volume, v.price_open, v.price_current,
  v.price_sl, v.price_tp, v.profit, v.storage, v.digits, to_timestamp(v.time_create - $2),
  to_timestamp(v.time_update - $2), $3
FROM unnest($4::bigint[], $5::bigint[], $6::text[], $7::smallint[], $8::bigint[], $9::numeric[],
            $10::numeric[], $11::numeric[], $12::numeric[], $13::numeric[], $14::numeric[], $15::smallint[],
            $16::bigint[], $17::bigint[])
  AS v(position, login, symbol, action, volume, price_open, price_current, price_sl, price_tp, profit,
       storage, digits, time_create, time_update)
LEFT JOIN trading_accounts a ON a.server = $1 AND a.login = v.login
ON CONFLICT (server_id, position) DO UPDATE SET login = EXCLUDED.login, account_id = EXCLUDED.account_id,
  symbol = EXCLUDED.symbol, action = EXCLUDED.action, volume = EXCLUDED.volume,
  price_open = EXCLUDED.price_open, price_current = EXCLUDED.price_current, price_sl = EXCLUDED.price_sl,
  price_tp = EXCLUDED.price_tp, profit = EXCLUDED.profit, storage = EXCLUDED.storage,
  time_update = EXCLUDED.time_update, synced_at = EXCLUDED.synced_at
WHERE (t.login, t.volume, t.price_open, t.price_current, t.price_sl, t.price_tp, t.profit, t.storage, t.action)
  IS DISTINCT FROM (EXCLUDED.login, EXCLUDED.volume, EXCLUDED.price_open, EXCLUDED.price_current,
                    EXCLUDED.price_sl, EXCLUDED.price_tp, EXCLUDED.profit, EXCLUDED.storage, EXCLUDED.action)
RETURNING t.account_id
"""

# Positions of this server not among those just read: closed (or their account is no longer managed).
_CLOSED = """
DELETE FROM trading_positions t WHERE t.server_id = $1
  AND NOT EXISTS (SELECT 1 FROM unnest($2::bigint[]) AS open(position) WHERE open.position = t.position)
RETURNING t.account_id
"""


@dataclass
class StatesResult:
    server_id: int
    skipped: bool = False
    accounts: int = 0
    accounts_changed: int = 0
    positions: int = 0
    positions_changed: int = 0
    positions_closed: int = 0
    published: int = 0
    seconds: float = 0.0


async def sync_states(server_id: int) -> StatesResult:
    """One state run for one server (`skipped` while another holds it). Platform errors are
    recorded for ops and raised again."""
    started = time.monotonic()
    async with server_lock(LOCK_STATES, server_id) as mine:
        if not mine:
            return StatesResult(server_id, skipped=True)
        try:
            result = await _run(server_id)
        except Exception as exc:
            await record_error(server_id, STATES, exc)
            raise
    result.seconds = time.monotonic() - started
    return result


async def _run(server_id: int) -> StatesResult:
    from app.trading.connections import platform_for

    state = await ensure_state(server_id)
    accounts = await accounts_of(server_id, active_only=True)
    result = StatesResult(server_id, accounts=len(accounts))
    client_of = {a.id: a.client_id for a in accounts}
    if accounts:
        platform = await platform_for(server_id)
        logins = [a.login for a in accounts]
        states = await platform.fetch_accounts(logins)
        positions = await platform.fetch_positions(logins)
    else:
        states, positions = [], []
    result.positions = len(positions)
    await uncancellable(_write(server_id, state.clock_offset_seconds, states, positions, client_of, result))
    return result


async def _write(
    server_id: int,
    offset: int,
    states: list[p.AccountState],
    positions: list[p.Position],
    client_of: dict[int, int],
    result: StatesResult,
) -> None:
    """Everything a state run changes, and its live events, in one transaction."""
    now = datetime.now(UTC)
    async with db.transaction():
        tx = DB.current_transaction.get()
        assert tx is not None
        conn = tx.connection
        changed: set[int] = set()
        if states:
            rows = await conn.fetch(_ACCOUNTS, server_id, now, *_account_columns(states))
            result.accounts_changed = len(rows)
            changed.update(r["id"] for r in rows)
        if positions:
            rows = await conn.fetch(_POSITIONS, server_id, offset, now, *_position_columns(positions))
            result.positions_changed = len(rows)
            changed.update(r["account_id"] for r in rows if r["account_id"] is not None)
        rows = await conn.fetch(_CLOSED, server_id, [x.position for x in positions])
        result.positions_closed = len(rows)
        changed.update(r["account_id"] for r in rows if r["account_id"] is not None)
        events = [(client_of[a], a) for a in sorted(changed) if a in client_of]
        result.published = await publish_accounts(events)
        await record_states_ok(server_id)


def _account_columns(states: list[p.AccountState]) -> list[list]:
    return [
        [s.login for s in states],
        [s.balance for s in states],
        [s.credit for s in states],
        [s.equity for s in states],
        [s.margin for s in states],
        [s.margin_free for s in states],
        [s.margin_level for s in states],
        [s.profit for s in states],
        [s.currency_digits for s in states],
    ]


def _position_columns(positions: list[p.Position]) -> list[list]:
    return [
        [x.position for x in positions],
        [x.login for x in positions],
        [x.symbol for x in positions],
        [x.action for x in positions],
        [x.volume for x in positions],
        [x.price_open for x in positions],
        [x.price_current for x in positions],
        [x.price_sl for x in positions],
        [x.price_tp for x in positions],
        [x.profit for x in positions],
        [x.storage for x in positions],
        [x.digits for x in positions],
        [x.time_create for x in positions],
        [x.time_update for x in positions],
    ]


async def publish_accounts(events: list[tuple[int, int]]) -> int:
    """`trading.account` for each (client, account), inside the current transaction (contract 5).

    A market move can change thousands of accounts at once; one NOTIFY statement per account
    would cost a round trip each, so past a few dozen the same payloads go out in one statement."""
    if len(events) <= PUBLISH_ONE_BY_ONE:
        for client_id, account_id in events:
            await live.publish(f"client:{client_id}", "trading.account", account_id=account_id)
        return len(events)
    origin = live.ORIGIN.get()
    payloads = [
        json.dumps(
            {"topic": f"client:{c}", "type": "trading.account", "ids": {"account_id": a}, "origin": origin}
        )
        for c, a in events
    ]
    await db.fetch("SELECT pg_notify({}, x) FROM unnest({}::text[]) AS x", live.CHANNEL, payloads)
    return len(events)
