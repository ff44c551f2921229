"""MT5 sync benchmark: initial deal sync of 10,000 accounts / 1,000,000 deals against the simulator,
beside a raw COPY of the same rows, then steady-state lag with the simulator trading 50 deals/s.

Not a test: it prints figures and exits non-zero only when something goes wrong. The database is
`DATABASE_URL` when set (treat it as a scratch database), else a fresh `fxcrm_mt5_bench` database
on the PostgreSQL at 127.0.0.1:5432, dropped afterwards unless `--keep`. The simulator is started
here (`fxcrm mt5-sim --accounts N --history-deals M`, a fresh state in a temporary directory) and
stopped at the end.

    .venv/bin/python bench/mt5_sync_bench.py [--accounts 10000] [--history-deals 1000000]
        [--trade-rate 50] [--steady-seconds 60] [--tls] [--pool-size 4] [--keep]

1. Initial sync: `app.trading.sync.sync_deals` from an empty CRM (every account's whole history),
   wall time from the first request to the committed high-water mark → deals/s.
2. Raw COPY: the rows just stored, read back with `COPY … TO STDOUT (FORMAT binary)` into memory,
   then timed `COPY … FROM STDIN` into a fresh table of the same shape (`LIKE trading_deals
   INCLUDING ALL`: the same columns, keys and indexes) → the rate PostgreSQL alone manages.
3. Steady state: the simulator's traders produce `--trade-rate` deals/s while the sync loop runs
   exactly as in the worker (deals every 1 s, states every 1.5 s) for `--steady-seconds`. Per-deal
   lag = stored (`synced_at`) − the deal's UTC time on the server (`time`, millisecond precision).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "fxcrm_mt5_bench"
MANAGER = "1000:Manager#2026"
TARGET_RATIO = 0.30
TARGET_P99_S = 2.0


def server_and_db(keep_db: bool) -> tuple[str, str | None]:
    import psycopg

    given = os.environ.get("DATABASE_URL")
    if given:
        return given, None
    with psycopg.connect(LOCAL_PG, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    return urlunsplit(urlsplit(LOCAL_PG)._replace(path="/" + BENCH_DB)), None if keep_db else BENCH_DB


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sim(args: argparse.Namespace, state: Path, port: int) -> subprocess.Popen:
    """The simulator with its benchmark history; waits (generation takes a while) until it answers."""
    import httpx

    cmd = [sys.executable, "-m", "app", "mt5-sim", "--host", "127.0.0.1", "--port", str(port),
           "--tls" if args.tls else "--no-tls", "--manager", MANAGER, "--seed", "7", "--state", str(state),
           "--trade-rate", "0", "--accounts", str(args.accounts), "--history-deals", str(args.history_deals)]  # fmt: skip
    log = open(state.with_suffix(".log"), "w")  # noqa: SIM115 (lives as long as the process)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"{'https' if args.tls else 'http'}://127.0.0.1:{port}/sim/status"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mt5-sim exited: {state.with_suffix('.log').read_text()[-2000:]}")
        try:
            httpx.get(url, verify=False, timeout=5).raise_for_status()  # noqa: S501 (the local self-signed simulator)
            return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("mt5-sim did not answer within 15 minutes")


def sim_call(args: argparse.Namespace, port: int, path: str, body: dict | None = None) -> dict:
    import httpx

    url = f"{'https' if args.tls else 'http'}://127.0.0.1:{port}{path}"
    r = (
        httpx.post(url, json=body, verify=False, timeout=30)  # noqa: S501
        if body is not None
        else httpx.get(url, verify=False, timeout=30)  # noqa: S501
    )
    r.raise_for_status()
    return r.json()


async def setup_crm(args: argparse.Namespace, port: int) -> int:
    """Migrate, one server row, N clients and N trading accounts (logins 100001…): returns the server id."""
    from app.core import db
    from app.core.migrate import migrate
    from app.trading import credentials
    from app.trading.tables import TradingServer

    await migrate()
    now = datetime.now(UTC)
    server = TradingServer(
        name="MT5 bench", platform="mt5", address=f"127.0.0.1:{port}", use_tls=args.tls, verify_tls=False,
        manager_login=1000, password_enc=credentials.encrypt(MANAGER.split(":", 1)[1], "MT5 bench"),
        active=True, timeout_seconds=120, pool_size=args.pool_size, created_at=now, updated_at=now,
    )  # fmt: skip
    await server.save()
    n = args.accounts
    await db.fetch(
        "INSERT INTO clients (email, first_name, last_name, country, language, password_hash, stage, "
        "stage_changed_at, is_active, totp_enabled, created_at) "
        "SELECT 'trader' || i || '@mt5.bench.test', 'Trader', 'No ' || i, 'DE', 'en', '!', 'active', {}, true, "
        "false, {} FROM generate_series(1, {}) AS i",
        now, now, n,
    )  # fmt: skip
    await db.fetch(
        "INSERT INTO trading_accounts (client, server, login, group_name, currency, leverage, is_demo, status, "
        "trading_disabled, error, currency_digits, created_at, updated_at) "
        "SELECT c.id, {}, 100000 + row_number() OVER (ORDER BY c.id), 'real\\standard-usd', 'USD', 500, false, "
        "'active', false, '', 2, {}, {} FROM clients c WHERE c.email LIKE '%@mt5.bench.test'",
        server.id, now, now,
    )  # fmt: skip
    return int(server.id)


async def raw_copy(*, indexes: bool) -> tuple[int, float]:
    """The stored deals, COPY'd again into a fresh table: (rows, seconds). With `indexes`, the same
    shape as `trading_deals` (columns, keys, indexes: the fair comparison); without, a bare heap."""
    from app.core.db import DB

    assert DB.pool is not None
    like = "INCLUDING ALL" if indexes else "INCLUDING DEFAULTS"
    async with DB.pool.acquire() as conn:
        await conn.execute("DROP TABLE IF EXISTS bench_deals_copy")
        await conn.execute(f"CREATE TABLE bench_deals_copy (LIKE trading_deals {like})")
        buf = io.BytesIO()

        async def write(chunk: bytes) -> None:
            buf.write(chunk)

        await conn.copy_from_table("trading_deals", output=write, format="binary")
        data = buf.getvalue()
        started = time.perf_counter()
        await conn.copy_to_table("bench_deals_copy", source=memoryview(data), format="binary")
        seconds = time.perf_counter() - started
        rows = await conn.fetchval("SELECT count(*) FROM bench_deals_copy")
        await conn.execute("DROP TABLE bench_deals_copy")
    return int(rows), seconds


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU of this process, or of another one (from /proc)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace, url: str, port: int, sim_pid: int) -> int:
    from app.core import db
    from app.settings import load_settings, use_settings
    from app.trading import connections, sync
    from app.trading.sync_core import ensure_state

    db.configure(url)
    use_settings(load_settings({"APP_ENV": "development", "DATABASE_URL": url, "SECRET_KEY": "x" * 48}))
    await db.start_pool(min_size=2, max_size=10)
    try:
        server_id = await setup_crm(args, port)
        status = sim_call(args, port, "/sim/status")
        print(f"simulator: {status['accounts']:,} accounts, {status['deals']:,} deals, "
              f"{status['positions']:,} open positions ({'TLS' if args.tls else 'plain HTTP'}, "
              f"client pool {args.pool_size})", flush=True)  # fmt: skip

        started, cpu0, sim_cpu0 = time.perf_counter(), cpu_seconds(), cpu_seconds(sim_pid)
        result = await sync.sync_deals(server_id)
        initial = time.perf_counter() - started
        cpu, sim_cpu = cpu_seconds() - cpu0, cpu_seconds(sim_pid) - sim_cpu0
        rate = result.inserted / initial
        print(f"initial sync: {result.inserted:,} deals in {initial:.1f} s = {rate:,.0f} deals/s "
              f"(fetched {result.fetched:,}; CPU: sync process {cpu:.1f} s, simulator {sim_cpu:.1f} s)", flush=True)  # fmt: skip
        rows, copy_seconds = await raw_copy(indexes=True)
        copy_rate = rows / copy_seconds
        ratio = rate / copy_rate
        print(f"raw COPY of the same {rows:,} rows into a table of the same shape: {copy_seconds:.1f} s = "
              f"{copy_rate:,.0f} rows/s")  # fmt: skip
        bare_rows, bare_seconds = await raw_copy(indexes=False)
        print(f"  (for reference, into a bare table without keys or indexes: {bare_seconds:.1f} s = "
              f"{bare_rows / bare_seconds:,.0f} rows/s)")  # fmt: skip
        print(
            f"sync / COPY: {ratio:.0%} (target ≥ {TARGET_RATIO:.0%}: {'PASS' if ratio >= TARGET_RATIO else 'FAIL'})"
        )

        await sync.sync_states(server_id)  # the first state run reads every account once (not timed)
        state = await ensure_state(server_id)
        sim_call(args, port, "/sim/control", {"trade_rate": args.trade_rate})
        window_start = datetime.now(UTC)
        stop = asyncio.Event()
        loop = asyncio.create_task(sync.run_loop(server_id, stop=stop))
        await asyncio.sleep(args.steady_seconds)
        sim_call(args, port, "/sim/control", {"trade_rate": 0})
        await asyncio.sleep(3)  # let the loop store the last deals
        stop.set()
        why = await loop
        rows_lag = await db.fetch(
            "SELECT extract(epoch FROM synced_at - time) AS lag FROM trading_deals "
            "WHERE server_id = {} AND deal > {} AND time >= {}",
            server_id, state.last_deal_ticket, window_start,
        )  # fmt: skip
        lags = [float(r["lag"]) for r in rows_lag]
        sync_state = await db.fetchrow("SELECT * FROM trading_sync_state WHERE server = $1", server_id)
        assert sync_state is not None
        if not lags:
            print("steady state: no deals were produced")
            return 1
        p99 = percentile(lags, 0.99)
        print(f"steady state: {len(lags):,} deals in {args.steady_seconds} s at {args.trade_rate:g} deals/s "
              f"(loop ended: {why}); lag p50 {percentile(lags, 0.5):.2f} s, p95 {percentile(lags, 0.95):.2f} s, "
              f"p99 {p99:.2f} s, max {max(lags):.2f} s "
              f"(target p99 < {TARGET_P99_S:g} s: {'PASS' if p99 < TARGET_P99_S else 'FAIL'})")  # fmt: skip
        started = time.perf_counter()
        states = await sync.sync_states(server_id)
        print(f"one state run: {states.accounts:,} accounts and {states.positions:,} positions read, "
              f"{states.accounts_changed:,} accounts changed, in {time.perf_counter() - started:.2f} s "
              f"(the loop starts one every 1.5 s, resting at least as long as a run took)")  # fmt: skip
        print(f"sync state: status {sync_state['status']}, errors {sync_state['errors_total']}, "
              f"deals_total {sync_state['deals_total']:,}, last error {sync_state['last_error'] or 'none'}")  # fmt: skip
        await connections.close_all()
    finally:
        await db.close_pool()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--history-deals", type=int, default=1_000_000)
    parser.add_argument("--trade-rate", type=float, default=50.0)
    parser.add_argument("--steady-seconds", type=int, default=60)
    parser.add_argument("--pool-size", type=int, default=4, help="client sessions to the simulator")
    parser.add_argument("--tls", action="store_true", help="HTTPS to the simulator (default plain HTTP)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    url, drop = server_and_db(args.keep)
    tmp = Path(tempfile.mkdtemp(prefix="mt5-bench-"))
    port = free_port()
    started = time.perf_counter()
    print(
        f"generating the simulator's state ({args.accounts:,} accounts, {args.history_deals:,} deals) …",
        flush=True,
    )
    sim = start_sim(args, tmp / "sim.sqlite3", port)
    print(f"simulator ready in {time.perf_counter() - started:.0f} s", flush=True)
    try:
        return asyncio.run(run(args, url, port, sim.pid))
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=15)
        except subprocess.TimeoutExpired:
            sim.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        if drop:
            import psycopg

            with psycopg.connect(LOCAL_PG, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
