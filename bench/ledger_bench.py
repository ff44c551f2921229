"""Ledger benchmark: transfers per second through the service layer, with the audit record and
without, and the reconciliation of 1,000,000 postings.

Not a test: it prints figures (the issue's targets: ≥ 2,000 transfers/s on one worker, and the
reconciliation of 1,000,000 postings in < 60 s) and exits non-zero only when the ledger itself
goes wrong (an error other than a refusal, a broken audit chain, or a difference where none was
made). The database is `DATABASE_URL` when set (treat it as a scratch database), else a fresh
`fxcrm_ledger_bench` on the PostgreSQL at 127.0.0.1:5432, dropped afterwards unless `--keep`.

    .venv/bin/python bench/ledger_bench.py [--wallets 1000] [--seconds 8] [--concurrency 1,8,32,64]
                                           [--rounds 1] [--compare] [--postings 1000000] [--keep]

1. Throughput: `--wallets` clients with a funded USD wallet each; every task loops on
   `ledger.transfer` (wallet → wallet, its own key, no outer transaction: each transfer is its own
   ledger transaction, and those waiting at the same moment are committed together in one
   statement, `app.funding.ledger_batch`; the last column is how many went per statement) for
   `--seconds`, in one process (one worker). For each number of tasks, twice back to back: with
   the ledger's audit record (`audit=True`, the default: each posting's audit row is written by
   the same statement) and without (`audit=False`, the baseline: a caller that audits the business
   event itself), and the ratio
   of the two. `--compare` adds the way it was done before (posting, then `audit.record()`, in
   one transaction). `--rounds` repeats all this (on a shared machine, compare within a round).
   Then the whole audit chain is verified (`audit.verify()`).
2. Reconciliation: `--postings` more postings (deposits and fees over the same wallets) loaded with
   COPY — triggers off for the load only (`session_replication_role = replica`): the commit check
   would otherwise re-sum every transaction, and this data is balanced by construction — and the
   cached balances set to match. Then `reconcile_balances()` is timed twice: clean, and after one
   cached balance was corrupted behind the service's back (it must be reported, not fixed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "fxcrm_ledger_bench"
CENT = Decimal("0.01")
HEADER = (
    f"{'tasks':>5} {'audit':>6} {'transfers':>10} {'seconds':>8} {'transfers/s':>12} "
    f"{'py CPU ms/tr':>14} {'pg CPU ms/tr':>16} {'per statement':>14}"
)


@dataclass
class Throughput:
    tasks: int
    audit: bool
    done: int
    refused: int
    seconds: float
    python_cpu: float  # CPU seconds of this process during the run
    postgres_cpu: float | None  # CPU seconds of the database's backends (None: not on this machine)
    two_step: bool = False  # the way before funding_0012: post, then audit.record()
    per_statement: float = 0.0  # transfers per statement (group commit, `ledger_batch`)

    def per_transfer_ms(self, cpu: float | None) -> str:
        return "-" if cpu is None or not self.done else f"{cpu / self.done * 1000:.2f}"

    @property
    def rate(self) -> float:
        return self.done / self.seconds

    def line(self) -> str:
        return (
            f"{self.tasks:>5} {'2-step' if self.two_step else 'yes' if self.audit else 'no':>6} {self.done:>10,} {self.seconds:>8.1f} "
            f"{self.rate:>12,.0f} {self.per_transfer_ms(self.python_cpu):>14} "
            f"{self.per_transfer_ms(self.postgres_cpu):>16} {self.per_statement:>14.1f}"
        )


def server_and_db(keep_db: bool) -> tuple[str, str | None]:
    import psycopg

    given = os.environ.get("DATABASE_URL")
    if given:
        return given, None
    with psycopg.connect(LOCAL_PG, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    return urlunsplit(urlsplit(LOCAL_PG)._replace(path="/" + BENCH_DB)), None if keep_db else BENCH_DB


async def setup_wallets(count: int) -> tuple[list[int], int]:
    """`count` clients with 1,000,000.00 USD each: (wallet ids, provider clearing account)."""
    from app.core import db
    from app.core.audit import Actor
    from app.funding import ledger

    actor = Actor.system("ledger bench")
    clients = await db.fetch(
        "INSERT INTO clients (email, first_name, last_name, country, stage, stage_changed_at, created_at) "
        "SELECT 'ledger' || g || '.' || {} || '@bench.fxcrm.test', 'Bench', 'Wallet ' || g, 'DE', 'funded', "
        "now(), now() FROM generate_series(1, {}) g RETURNING id",
        uuid.uuid4().hex[:8],
        count,
    )
    clearing = await ledger.system_account("provider_clearing", "USD", "benchpay")
    wallets = []
    for row in clients:
        wallet = await ledger.wallet_for(row["id"], "USD")
        assert wallet is not None
        await ledger.transfer(actor, "deposit", debit=clearing, credit=wallet, amount=Decimal(1_000_000),
                              idempotency_key=f"bench-fund:{wallet}", audit=False)  # fmt: skip
        wallets.append(wallet)
    return wallets, clearing


async def measure(
    wallets: list[int], tasks: int, seconds: float, audit: bool, two_step: bool = False
) -> Throughput:
    """`two_step`: what `ledger.transfer` did before funding_0012 (for comparison): the
    posting, then `audit.record()`, in one transaction: two statements and a commit, the audit
    chain's lock held from the second to the end of the commit's disk flush."""
    from app.core import audit as audit_trail
    from app.core import db
    from app.core.audit import Actor
    from app.funding import ledger, ledger_batch
    from app.funding.amounts import InsufficientFunds

    await db.close_pool()
    await db.start_pool(min_size=tasks + 1, max_size=tasks + 2)
    actor = Actor.system("ledger bench")
    done = refused = 0
    stop_at = 0.0

    async def worker(seed: int) -> None:
        nonlocal done, refused
        rnd = random.Random(seed)
        while time.perf_counter() < stop_at:
            a, b = rnd.sample(wallets, 2)
            try:
                if two_step:
                    async with db.transaction():
                        p = await ledger.transfer(actor, "transfer", debit=a, credit=b, amount=CENT,
                                                  idempotency_key=uuid.uuid4().hex, audit=False)  # fmt: skip
                        await audit_trail.record(actor, "funding.transaction.posted", "funding_transaction", p.id,
                                                 after=ledger._view(p))  # fmt: skip
                else:
                    await ledger.transfer(actor, "transfer", debit=a, credit=b, amount=CENT,
                                          idempotency_key=uuid.uuid4().hex, audit=audit)  # fmt: skip
                done += 1
            except InsufficientFunds:
                refused += 1

    stop_at = time.perf_counter() + 1.0  # warm-up: prepared statements, pool connections
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    done = refused = 0
    pids = [
        r["pid"]
        for r in await db.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'"
        )
    ]
    pg_before, py_before = backend_cpu(pids), time.process_time()
    statements, postings = ledger_batch.stats.statements, ledger_batch.stats.postings
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(worker(100 + i) for i in range(tasks)))
    elapsed = time.perf_counter() - started
    pg_after = backend_cpu(pids)
    pg = None if pg_before is None or pg_after is None else pg_after - pg_before
    sent = ledger_batch.stats.statements - statements
    per = (ledger_batch.stats.postings - postings) / sent if sent else 0.0
    return Throughput(
        tasks, audit, done, refused, elapsed, time.process_time() - py_before, pg, two_step, per
    )


def backend_cpu(pids: list[int]) -> float | None:
    """User + system CPU seconds of these PostgreSQL backends (Linux, same machine), else None."""
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


async def load_postings(wallets: list[int], clearing: int, postings: int, seed: int = 2026) -> float:
    """Balanced two-line transactions by COPY: a deposit (clearing → wallet, 10.00) then a fee
    (wallet → fees, 1.00), alternating. Returns the seconds it took."""
    from app.core import db
    from app.funding import ledger

    fees = await ledger.system_account("fees", "USD")
    rnd = random.Random(seed)
    started = time.perf_counter()
    assert db.DB.pool is not None
    async with db.DB.pool.acquire() as conn:
        first = int(await conn.fetchval("SELECT nextval('funding_transactions_id_seq')")) + 1
        count = postings // 2
        now = datetime.now(UTC)
        balances = dict(await conn.fetch("SELECT id, balance FROM funding_ledger_accounts"))
        txs, lines = [], []
        for i in range(count):
            tx = first + i
            wallet = rnd.choice(wallets)
            if i % 2 == 0:
                debit, credit, amount, kind = clearing, wallet, Decimal(10), "deposit"
            else:
                debit, credit, amount, kind = wallet, fees, Decimal(1), "fee"
            balances[debit] += amount if debit == clearing else -amount
            balances[credit] += amount
            txs.append((tx, kind, f"bench-load:{tx}", "", "", "ledger bench", now))
            lines.append((tx, debit, amount, "USD", balances[debit]))
            lines.append((tx, credit, -amount, "USD", balances[credit]))
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.copy_records_to_table(
                "funding_transactions",
                records=txs,
                columns=["id", "kind", "idempotency_key", "fingerprint", "memo", "created_by", "created_at"],
            )
            await conn.copy_records_to_table(
                "funding_postings",
                records=lines,
                columns=["transaction_id", "account_id", "amount", "currency", "balance_after"],
            )
            await conn.execute("SELECT setval('funding_transactions_id_seq', $1)", first + count)
            await conn.execute(
                "UPDATE funding_ledger_accounts a SET balance = u.b FROM unnest($1::int[], $2::numeric[]) "
                "AS u(id, b) WHERE a.id = u.id",
                list(balances),
                list(balances.values()),
            )
        await conn.execute("ANALYZE funding_postings")
        await conn.execute("ANALYZE funding_ledger_accounts")
    return time.perf_counter() - started


async def run(args: argparse.Namespace, url: str) -> int:
    from app.core import db
    from app.core.migrate import migrate
    from app.funding import reconcile
    from app.settings import load_settings, use_settings

    db.configure(url)
    use_settings(load_settings({"APP_ENV": "development", "DATABASE_URL": url, "SECRET_KEY": "x" * 48}))
    await db.start_pool(min_size=1, max_size=4)
    ok = True
    try:
        await migrate()
        t0 = time.perf_counter()
        wallets, clearing = await setup_wallets(args.wallets)
        print(f"setup: {len(wallets):,} funded wallets in {time.perf_counter() - t0:.1f} s", flush=True)
        print(HEADER)
        results: list[Throughput] = []
        for round_no in range(args.rounds):
            if args.rounds > 1:
                print(f"round {round_no + 1} of {args.rounds}", flush=True)
            for tasks in args.concurrency:
                pair = []
                for audit in (True, False):
                    r = await measure(wallets, tasks, args.seconds, audit)
                    ok &= r.refused == 0
                    pair.append(r)
                    print(r.line(), flush=True)
                print(
                    f"{'':>5} {'ratio':>6} audited / unaudited = {pair[0].rate / pair[1].rate:.2f}",
                    flush=True,
                )
                results += pair
                if args.compare:
                    r = await measure(wallets, tasks, args.seconds, True, two_step=True)
                    ok &= r.refused == 0
                    print(r.line(), flush=True)
                    results.append(r)
        await db.close_pool()
        await db.start_pool(min_size=1, max_size=4)
        t0 = time.perf_counter()
        chain = await verify_chain()
        ok &= chain.ok
        chain_line = f"audit chain: {chain.checked:,} rows verified in {time.perf_counter() - t0:.1f} s: " + (
            "ok" if chain.ok else f"BROKEN at seq {chain.bad_seq}: {chain.reason}"
        )
        print(chain_line, flush=True)
        await db.close_pool()
        await db.start_pool(min_size=1, max_size=4)
        load = await load_postings(wallets, clearing, args.postings)
        print(f"loaded {args.postings:,} postings by COPY in {load:.1f} s", flush=True)
        t0 = time.perf_counter()
        clean = await reconcile.reconcile_balances()
        t_clean = time.perf_counter() - t0
        await db.fetch("UPDATE funding_ledger_accounts SET balance = balance + 1 WHERE id = {}", wallets[0])
        t0 = time.perf_counter()
        dirty = await reconcile.reconcile_balances()
        t_dirty = time.perf_counter() - t0
        ok &= clean.ok and [d.account_id for d in dirty.differences] == [wallets[0]]
        rec = [
            f"reconcile_balances(): {clean.postings_checked:,} postings, {clean.accounts_checked:,} accounts "
            f"in {t_clean:.1f} s, {len(clean.differences)} differences (target < 60 s: "
            f"{'PASS' if t_clean < 60 else 'FAIL'})",
            f"after corrupting one cached balance: {t_dirty:.1f} s, differences: "
            + ", ".join(
                f"account {d.account_id} cached {d.found} vs postings {d.expected}" for d in dirty.differences
            ),
        ]
        print("\n".join(rec))
        print("\n".join(summary(results, args.concurrency) + [chain_line, rec[0]]))
    finally:
        await db.close_pool()
    return 0 if ok else 1


def summary(results: list[Throughput], concurrency: list[int]) -> list[str]:
    """Per configuration: the range over the rounds; then the verdict on the audited figure."""
    lines = ["", "transfers/s (min–max over rounds):"]
    steps = [r for r in results if r.two_step]
    results = [r for r in results if not r.two_step]
    for tasks in concurrency:
        rates = {
            audit: sorted(r.rate for r in results if r.tasks == tasks and r.audit == audit)
            for audit in (True, False)
        }
        ratios = sorted(a / b for a, b in zip(*(
            [r.rate for r in results if r.tasks == tasks and r.audit == audit] for audit in (True, False)
        ), strict=True))  # fmt: skip
        lines.append(
            f"  {tasks:>2} task(s): with audit {_span(rates[True])}, without {_span(rates[False])}, "
            f"ratio {ratios[0]:.2f}–{ratios[-1]:.2f}"
        )
        old = sorted(r.rate for r in steps if r.tasks == tasks)
        if old:
            lines.append(
                f"  {tasks:>2} task(s): with audit the 2-step way (before funding_0012) {_span(old)}"
            )
    best_audited = max(r.rate for r in results if r.audit)
    best_bare = max(r.rate for r in results if not r.audit)
    lines.append(
        f"best with the audit record: {best_audited:,.0f} transfers/s (target ≥ 2,000: "
        f"{'PASS' if best_audited >= 2000 else 'FAIL'}); best without: {best_bare:,.0f}/s"
    )
    return lines


def _span(values: list[float]) -> str:
    return f"{values[0]:,.0f}" if len(values) == 1 else f"{values[0]:,.0f}–{values[-1]:,.0f}"


async def verify_chain() -> Any:
    from app.core import audit

    return await audit.verify()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wallets", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32, 64]
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat the throughput runs")
    parser.add_argument("--compare", action="store_true", help="also measure the 2-step audited transfer")
    parser.add_argument("--postings", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    url, drop = server_and_db(args.keep)
    try:
        return asyncio.run(run(args, url))
    finally:
        if drop:
            import psycopg

            with psycopg.connect(LOCAL_PG, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
