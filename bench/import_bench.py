"""CSV import benchmark: 100,000 generated rows through the real upload, start and run.

Not a test: it prints figures (the issue's target is under a minute for 100,000 rows) and exits
non-zero only when the import itself goes wrong. The database is `DATABASE_URL` when set (treat it
as a scratch database: a bench admin is added), else a fresh `fxcrm_import_bench` database on the
PostgreSQL at 127.0.0.1:5432, dropped afterwards unless `--keep`.

    .venv/bin/python bench/import_bench.py [--rows 100000] [--bad 0.02] [--mode create|upsert] [--keep]

`--mode upsert` first imports the same people once (not timed), then times an upsert of the file
with every third row changed: the update path (lock, compare, update) instead of the insert path.
The audit chain is verified at the end (timed separately).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "fxcrm_import_bench"
ADMIN_EMAIL = "import.admin@bench.fxcrm.test"
COUNTRIES = ["DE", "AT", "CH", "FR", "ES", "IT", "GB", "PL", "BR", "MX"]
MOBILE = {
    "DE": "+4915123456",
    "AT": "+43664123",
    "CH": "+41781234",
    "FR": "+33612345",
    "ES": "+34612345",
    "IT": "+393123456",
    "GB": "+447400123",
    "PL": "+48512345",
    "BR": "+5511961234",
    "MX": "+522221234",
}  # phonenumbers' example mobile numbers; the last three digits varied, all are valid
LANGS = ["de", "en", "fr", "es", "it", "pl", "pt"]


def generate(rows: int, bad: float, *, seed: int = 7, changed: bool = False) -> bytes:
    """A realistic file: valid people, and a share of rows with one problem each."""
    rnd = random.Random(seed)
    out = ["email;first_name;last_name;phone;country;language;tags;utm_source"]
    problems = ["bad-email", "bad-phone", "bad-country", "no-name", "duplicate"]
    for i in range(rows):
        country = COUNTRIES[i % len(COUNTRIES)]
        phone = f"{MOBILE[country]}{rnd.randrange(1000):03d}"
        first = f"Name{i}" + ("x" if changed and i % 3 == 0 else "")
        email = f"person{i}@import.bench.test"
        fields = [
            email,
            first,
            f"Family{i % 977}",
            phone,
            country,
            LANGS[i % len(LANGS)],
            "bench;imported",
            "bench",
        ]
        if rnd.random() < bad:
            kind = problems[i % len(problems)]
            if kind == "bad-email":
                fields[0] = f"person{i}-at-nowhere"
            elif kind == "bad-phone":
                fields[3] = "12"
            elif kind == "bad-country":
                fields[4] = "Atlantis"
            elif kind == "no-name":
                fields[1] = ""
            elif i > 0:
                fields[0] = f"person{i - 1}@import.bench.test"
        out.append(";".join(f'"{f}"' if ";" in f else f for f in fields))
    return ("\n".join(out) + "\n").encode()


def server_and_db(keep_db: bool) -> tuple[str, str | None]:
    """(database URL, name of the database to drop afterwards or None)."""
    import psycopg

    given = os.environ.get("DATABASE_URL")
    if given:
        return given, None
    with psycopg.connect(LOCAL_PG, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    url = urlunsplit(urlsplit(LOCAL_PG)._replace(path="/" + BENCH_DB))
    return url, None if keep_db else BENCH_DB


async def run(args: argparse.Namespace, url: str) -> int:
    from app.core import audit, db
    from app.core.auth.principal import Principal
    from app.core.migrate import migrate
    from app.imports import runner, services
    from app.settings import load_settings, use_settings
    from app.staff.tables import StaffUser

    db.configure(url)
    use_settings(load_settings({"APP_ENV": "development", "DATABASE_URL": url, "SECRET_KEY": "x" * 48}))
    await db.start_pool(min_size=1, max_size=4)
    try:
        await migrate()
        admin_row = await StaffUser.select(StaffUser.id).where(StaffUser.email == ADMIN_EMAIL).first()
        if admin_row is None:
            staff = StaffUser(
                email=ADMIN_EMAIL,
                name="Import Bench",
                password_hash="!",  # noqa: S106  (no password: nobody signs in as the bench admin)
                roles=["admin"],
                created_at=datetime.now(UTC),
                totp_enabled=True,
            )
            await staff.save()
            admin_id = staff.id
        else:
            admin_id = admin_row["id"]
        admin = Principal("staff", admin_id, ADMIN_EMAIL, "Import Bench", 0, True, True, frozenset({"admin"}))
        actor = admin.actor("127.0.0.1", "import-bench")
        form = {"col_0": "email", "col_1": "first_name", "col_2": "last_name", "col_3": "phone",
                "col_4": "country", "col_5": "language", "col_6": "tags", "col_7": "utm_source",
                "mode": args.mode, "assign": ""}  # fmt: skip

        async def one(data: bytes, mode: str, label: str) -> dict:
            t0 = time.perf_counter()
            run_id = await services.upload(admin, f"bench-{label}.csv", data, actor)
            t1 = time.perf_counter()
            await services.start(admin, run_id, {**form, "mode": mode}, actor)
            t2 = time.perf_counter()
            status = await runner.run_import(run_id)
            t3 = time.perf_counter()
            row = await services.load_run(run_id)
            assert row is not None
            return {"status": status, "upload": t1 - t0, "start": t2 - t1, "run": t3 - t2, **row}

        if args.mode == "upsert":
            print(f"seeding: importing {args.rows:,} rows once (not timed) …", flush=True)
            await one(generate(args.rows, 0.0), "create", "seed")
        data = generate(args.rows, args.bad, changed=args.mode == "upsert")
        print(
            f"file: {args.rows:,} rows, {len(data) / 1_048_576:.1f} MB, ~{args.bad:.0%} bad rows, mode {args.mode}"
        )
        result = await one(data, args.mode, "timed")
        t0 = time.perf_counter()
        verified = await audit.verify()
        t_verify = time.perf_counter() - t0
    finally:
        await db.close_pool()
    total = result["upload"] + result["start"] + result["run"]
    print(f"upload (decode, delimiter, full structure scan, store): {result['upload']:7.2f} s")
    print(f"start (mapping, audit, enqueue):                        {result['start']:7.2f} s")
    print(f"run (validate, insert/update, history, timeline, audit): {result['run']:7.2f} s "
          f"= {args.rows / result['run']:,.0f} rows/s")  # fmt: skip
    print(f"total:                                                  {total:7.2f} s  (target < 60 s: "
          f"{'PASS' if total < 60 else 'FAIL'})")  # fmt: skip
    print(f"status {result['status']}: created {result['created']:,}, updated {result['updated']:,}, "
          f"unchanged {result['unchanged']:,}, rejected {result['rejected']:,}")  # fmt: skip
    print(f"audit chain: {'ok' if verified.ok else 'BROKEN: ' + verified.reason} "
          f"({verified.checked:,} events verified in {t_verify:.1f} s)")  # fmt: skip
    return 0 if result["status"] == "finished" and verified.ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--bad", type=float, default=0.02, help="share of rows with a problem (default 0.02)")
    parser.add_argument("--mode", choices=("create", "upsert"), default="create")
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
