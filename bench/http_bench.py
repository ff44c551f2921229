"""HTTP benchmark: the staff home and the client dashboard beside a bare route, on one server.

One uvicorn worker serves the real application (`create_app()`) plus `/bench/bare`, a route that
renders a trivial template and touches no database. A separate load-generator process (wrk when
installed, else a raw HTTP/1.1 asyncio loop) keeps 50 connections busy against each route in turn and
the script prints requests/s, p50 and p99 latency and the authenticated/bare ratios.

Everything stays on loopback and every step is bounded in time. The database is `DATABASE_URL`
when set (a scratch database: the script loads demo data and adds a bench admin), else a fresh
`fxcrm_bench` database on the PostgreSQL at 127.0.0.1:5432, else the embedded PostgreSQL.

    .venv/bin/python bench/http_bench.py [--seconds 10] [--connections 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VAR = ROOT / "var" / "bench"
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "fxcrm_bench"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105  (loopback only)
STAFF_EMAIL = "bench.admin@bench.fxcrm.test"
CLIENT_EMAIL = "active@demo.fxcrm.test"  # a demo client with a verified e-mail and no 2FA
TARGET_RATIO = 0.50
TARGET_P99_MS = 50.0


@dataclass
class Result:
    label: str
    path: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    server_cpu: float | None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# --- database -------------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _fresh_database(server_url: str) -> str:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    return _with_database(server_url, BENCH_DB)


def _drop_database(server_url: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def choose_database() -> tuple[str, str, str | None]:
    """(database url, description, server url to drop the bench database from afterwards)."""
    import psycopg

    explicit = os.environ.get("DATABASE_URL")
    if explicit:
        return explicit, "DATABASE_URL", None
    try:
        with psycopg.connect(LOCAL_PG, connect_timeout=3) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        return (
            _fresh_database(LOCAL_PG),
            f"PostgreSQL {version} on 127.0.0.1:5432, fresh {BENCH_DB}",
            LOCAL_PG,
        )
    except psycopg.OperationalError:
        pass
    from app.core import db

    server = _with_database(db.start_embedded(ROOT / "var"), "postgres")
    return _fresh_database(server), f"embedded PostgreSQL, fresh {BENCH_DB}", server


async def _seed(url: str) -> dict[str, str]:
    """Migrate, load the demo broker, and open one staff and one client session (cookie keys)."""
    import pyotp

    from app.clients.tables import Client
    from app.core import db
    from app.core.auth import passwords, sessions
    from app.core.migrate import migrate
    from app.demo import load_demo
    from app.staff.tables import StaffUser

    db.configure(url)
    await db.start_pool(min_size=1, max_size=4)
    try:
        await migrate()
        await load_demo()
        # A dedicated admin with 2FA enrolled (staff sessions need it); nobody knows its password.
        staff = await StaffUser.select(StaffUser.id).where(StaffUser.email == STAFF_EMAIL).first()
        if staff is None:
            row = StaffUser(
                email=STAFF_EMAIL,
                name="Bench Admin",
                roles=["admin"],
                password_hash=passwords.hash_password(secrets.token_urlsafe(24)),
                totp_secret=pyotp.random_base32(),
                totp_enabled=True,
                created_at=datetime.now(UTC),
            )
            await row.save()
            staff_id = int(row.id)
        else:
            staff_id = int(staff["id"])
        client = await Client.select(Client.id).where(Client.email == CLIENT_EMAIL).first()
        if client is None:
            raise SystemExit(f"demo client {CLIENT_EMAIL} is missing after loading demo data")
        life = {
            "idle": timedelta(hours=2),
            "absolute": timedelta(hours=2),
            "ip": "127.0.0.1",
            "user_agent": "fxcrm-bench",
        }
        staff_key, _ = await sessions.create("staff", staff_id, mfa_passed=True, **life)  # type: ignore[arg-type]
        client_key, _ = await sessions.create("client", int(client["id"]), mfa_passed=True, **life)  # type: ignore[arg-type]
        return {"staff": staff_key, "client": client_key}
    finally:
        await db.close_pool()


# --- server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(database_url: str, port: int, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or SECRET,
        "APP_ENV": os.environ.get("APP_ENV") or "development",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "BASE_URL": f"http://127.0.0.1:{port}",
        "FXCRM_VAR_DIR": str(VAR),
        # as in production: templates are compiled once, not re-checked on disk at every render
        "TEMPLATE_RELOAD": os.environ.get("TEMPLATE_RELOAD") or "false",
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "app_with_bare:app_factory",
        "--factory",
        "--app-dir",
        str(BENCH),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--ws",
        "websockets-sansio",
    ]  # the same server options as `fxcrm web`, one worker process
    log = open(log_path, "w")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; see {VAR / 'server.log'}")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server not up within {timeout:.0f}s; see {VAR / 'server.log'}")


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# --- load generation ------------------------------------------------------------------------


def _wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5, check=False)
    return (out.stdout + out.stderr).split("[")[0].strip() or "wrk"


def _parse(stdout: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line[len("WRK_JSON ") :])
    raise SystemExit(f"load generator printed no result:\n{stdout[-2000:]}")


def run_load(url: str, cookie: str, seconds: float, connections: int, use_wrk: bool) -> dict:
    """One bounded load run in a separate process; times in microseconds."""
    if use_wrk:
        cmd = [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{seconds:g}s",
            "--timeout",
            "5s",
            "-s",
            str(BENCH / "wrk_report.lua"),
        ]
        if cookie:
            cmd += ["-H", f"Cookie: {cookie}"]
        cmd.append(url)
    else:
        cmd = [
            sys.executable,
            __file__,
            "--load",
            url,
            "--cookie",
            cookie,
            "--seconds",
            str(seconds),
            "--connections",
            str(connections),
        ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if out.returncode != 0:
        raise SystemExit(f"load generator failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return _parse(out.stdout)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; (status, server wants to close)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    status = int(head.split(" ", 2)[1])
    headers = dict(line.split(":", 1) for line in head.split("\r\n")[1:] if ":" in line)
    if "chunked" in headers.get("transfer-encoding", ""):
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, "close" in headers.get("connection", "")


async def _python_load(url: str, cookie: str, seconds: float, connections: int) -> dict:
    """The fallback generator: `connections` keep-alive connections, each one request at a time.

    Raw HTTP/1.1 on asyncio streams: an HTTP client library in one Python process saturates long
    before one uvicorn worker does, and would flatten the ratios this benchmark is about.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: fxcrm-bench\r\n"
    if cookie:
        request += f"Cookie: {cookie}\r\n"
    payload = (request + "\r\n").encode()
    latencies: list[float] = []
    failures = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def one_connection() -> None:
        nonlocal failures
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while (sent := time.perf_counter()) < deadline:
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
                reader, writer = conn
                writer.write(payload)
                status, close = await asyncio.wait_for(_read_response(reader), 5)
                latencies.append(time.perf_counter() - sent)
                failures += status != 200
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
                failures, close = failures + 1, True
            if close and conn is not None:
                conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6 if latencies else 0.0

    return {
        "requests": len(latencies),
        "duration_us": elapsed * 1e6,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "max_us": latencies[-1] * 1e6 if latencies else 0.0,
        "status": failures,
    }


def measure(
    label: str, base: str, path: str, cookie: str, seconds: float, connections: int, pid: int, use_wrk: bool
) -> Result:
    run_load(base + path, cookie, min(2.0, seconds), connections, use_wrk)  # warm-up: pools, template cache
    cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
    raw = run_load(base + path, cookie, seconds, connections, use_wrk)
    cpu1, wall = _cpu_seconds(pid), time.perf_counter() - t0
    errors = sum(int(raw.get(k, 0)) for k in ("connect", "read", "write", "status", "timeout"))
    return Result(
        label=label,
        path=path,
        requests=int(raw["requests"]),
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=errors,
        server_cpu=(cpu1 - cpu0) / wall if cpu0 is not None and cpu1 is not None else None,
    )


# --- the run --------------------------------------------------------------------------------


def check_pages(base: str, cookies: dict[str, str]) -> str:
    """Each route answers 200 with its real page (not a redirect to a login); returns the CSRF cookie."""
    r = httpx.get(base + "/bench/bare", timeout=10)
    if r.status_code != 200 or "Bare route" not in r.text:
        raise SystemExit(f"/bench/bare answered {r.status_code}")
    csrf = r.cookies.get("fxcsrf") or ""
    for path, who in (("/staff", "staff"), ("/portal", "client")):
        r = httpx.get(base + path, cookies={"fxsid": cookies[who], "fxcsrf": csrf}, timeout=10)
        if r.status_code != 200:
            raise SystemExit(
                f"{path} answered {r.status_code} for the {who} session ({r.headers.get('location')})"
            )
    return csrf


def report(results: list[Result], generator: str, database: str, seconds: float, connections: int) -> bool:
    bare = results[0]
    print()
    print(f"fxcrm HTTP benchmark: one uvicorn worker, {connections} connections, {seconds:g} s per route")
    print(f"load generator: {generator}; database: {database}; {os.cpu_count()} CPUs")
    print()
    print(
        f"{'route':<30} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'server CPU':>10} {'errors':>7} {'vs bare':>8}"
    )
    for r in results:
        cpu = f"{r.server_cpu * 100:.0f} %" if r.server_cpu is not None else "n/a"
        ratio = r.rps / bare.rps if bare.rps else 0.0
        print(
            f"{r.label + '  ' + r.path:<30} {r.rps:>8.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.max_ms:>8.1f} "
            f"{cpu:>10} {r.errors:>7} {ratio * 100:>7.0f}%"
        )
    print()
    print(
        f"targets for authenticated pages: >= {TARGET_RATIO:.0%} of bare throughput, p99 < {TARGET_P99_MS:g} ms"
    )
    ok = True
    for r in results[1:]:
        if r.path == bare.path:
            continue
        ratio = r.rps / bare.rps if bare.rps else 0.0
        good_ratio, good_p99 = ratio >= TARGET_RATIO, r.p99_ms < TARGET_P99_MS
        ok = ok and good_ratio and good_p99
        print(
            f"  {r.label:<14} throughput {ratio:.0%} of bare: {'met' if good_ratio else 'MISSED'}; "
            f"p99 {r.p99_ms:.1f} ms: {'met' if good_p99 else 'MISSED'}"
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement per route (default 10)")
    parser.add_argument("--connections", type=int, default=50, help="concurrent connections (default 50)")
    parser.add_argument(
        "--python-load", action="store_true", help="use the Python load generator even if wrk exists"
    )
    parser.add_argument("--keep", action="store_true", help="keep the fxcrm_bench database afterwards")
    parser.add_argument("--load", help=argparse.SUPPRESS)  # internal: run the Python generator on this URL
    parser.add_argument("--cookie", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.load:
        load = _python_load(args.load, args.cookie, args.seconds, args.connections)
        try:
            import uvloop  # installed with uvicorn[standard]; the faster generator
        except ImportError:
            result = asyncio.run(load)
        else:
            result = uvloop.run(load)
        print("WRK_JSON " + json.dumps(result))
        return 0
    if args.seconds <= 0 or args.seconds > 120 or not 1 <= args.connections <= 1000:
        parser.error("--seconds must be in (0, 120] and --connections in [1, 1000]")

    import app  # noqa: F401  (sets PICCOLO_CONF before Piccolo is imported)

    VAR.mkdir(parents=True, exist_ok=True)
    url, database, drop_from = choose_database()
    print(f"database: {database}", flush=True)
    keys = asyncio.run(_seed(url))
    print("migrated, demo data loaded, staff and client sessions created", flush=True)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    use_wrk = bool(shutil.which("wrk")) and not args.python_load
    results: list[Result] = []
    server = start_server(url, port, VAR / "server.log")
    try:
        wait_healthy(base, server)
        csrf = check_pages(base, keys)
        generator = (
            _wrk_version() + " (1 thread)" if use_wrk else "Python asyncio, raw HTTP/1.1 (one process)"
        )
        print(f"server up at {base} (pid {server.pid}); measuring with {generator}", flush=True)
        plan = [
            ("bare template", "/bench/bare", f"fxcsrf={csrf}"),
            ("staff home", "/staff", f"fxsid={keys['staff']}; fxcsrf={csrf}"),
            ("client portal", "/portal", f"fxsid={keys['client']}; fxcsrf={csrf}"),
            # The bare route once more at the end: if its tail grows too, the drift belongs to the
            # process and the machine over time, not to the authenticated pages.
            ("bare again", "/bench/bare", f"fxcsrf={csrf}"),
        ]
        for label, path, cookie in plan:
            results.append(
                measure(label, base, path, cookie, args.seconds, args.connections, server.pid, use_wrk)
            )
            print(f"  {path}: {results[-1].rps:.0f} req/s", flush=True)
        report(results, generator, database, args.seconds, args.connections)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        if drop_from and not args.keep:
            _drop_database(drop_from)
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
