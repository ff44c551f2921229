"""Where one authenticated request spends its CPU: each step of the request path, in-process.

Sequential calls (no concurrency, no uvicorn), timed with the process's CPU clock so that a busy
machine disturbs the figures less than wall-clock timing would. Uses the same database set-up as
`http_bench.py`. With `--pyinstrument` (install it yourself: it is not a project dependency)
it also writes a call tree for each page to var/bench/profile_<page>.txt.

    .venv/bin/python bench/profile_request.py [--pyinstrument]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import http_bench as hb  # noqa: E402

N = 500


async def cost(label: str, fn: Callable[[], Awaitable[Any]], n: int = N) -> float:
    for _ in range(20):
        await fn()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await fn()
    cpu_ms = (time.process_time() - cpu) / n * 1000
    wall_ms = (time.perf_counter() - wall) / n * 1000
    print(f"  {label:<52} {cpu_ms:7.3f} ms CPU  {wall_ms:7.3f} ms wall", flush=True)
    return cpu_ms


async def main(pyinstrument: bool) -> None:
    url, database, drop_from = hb.choose_database()
    print(f"database: {database}")
    keys = await hb._seed(url)
    os.environ.update(
        DATABASE_URL=url, SECRET_KEY=os.environ.get("SECRET_KEY") or hb.SECRET, FXCRM_VAR_DIR=str(hb.VAR)
    )

    from app_with_bare import app_factory

    from app.clients import services as client_services
    from app.core import db, jobs
    from app.core.auth import sessions
    from app.core.auth.middleware import principal_from_row
    from app.staff import overview

    application = app_factory()
    for hook in application.on_startup:
        await hook()
    try:
        idle = timedelta(minutes=30)
        staff = principal_from_row(await sessions.lookup(keys["staff"], idle) or {})
        client = principal_from_row(await sessions.lookup(keys["client"], idle) or {})
        assert staff is not None and client is not None

        async def select_1() -> None:
            async with db.DB.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")

        print("building blocks")
        await cost("asyncpg round trip (pool acquire + SELECT 1)", select_1)
        await cost("session lookup (middleware, asyncpg)", lambda: sessions.lookup(keys["client"], idle))
        print("client dashboard /portal")
        await cost(
            "clients.get_client_for (Piccolo select)",
            lambda: client_services.get_client_for(client, client.id),
        )
        await cost("clients.unread_count (Piccolo count)", lambda: client_services.unread_count(client.id))
        print("staff home /staff (admin)")
        await cost("overview.for_staff (all queries)", lambda: overview.for_staff(staff), 200)
        await cost("  of which jobs.health", jobs.health, 200)

        transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            csrf = (await http.get("/bench/bare")).cookies.get("fxcsrf") or ""
            pages = {
                "bare": ("/bench/bare", {"fxcsrf": csrf}),
                "staff": ("/staff", {"fxsid": keys["staff"], "fxcsrf": csrf}),
                "portal": ("/portal", {"fxsid": keys["client"], "fxcsrf": csrf}),
            }
            http.cookies.clear()
            print("whole request through the ASGI app (includes the httpx client's own cost)")
            for path, cookies in pages.values():
                r = await http.get(path, cookies=cookies)
                assert r.status_code == 200, (path, r.status_code)

                async def get(path: str = path, cookies: dict[str, str] = cookies) -> None:
                    await http.get(path, cookies=cookies)

                await cost(f"GET {path}", get)
            if pyinstrument:
                from pyinstrument import Profiler

                for name in ("staff", "portal"):
                    path, cookies = pages[name]
                    profiler = Profiler(interval=0.0005, async_mode="enabled")
                    profiler.start()
                    for _ in range(300):
                        await http.get(path, cookies=cookies)
                    profiler.stop()
                    out = hb.VAR / f"profile_{name}.txt"
                    out.write_text(profiler.output_text(unicode=False, color=False))
                    print(f"call tree for {path}: {out}")
    finally:
        for hook in application.on_shutdown:
            await hook()
        if drop_from:
            hb._drop_database(drop_from)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pyinstrument", action="store_true", help="also write pyinstrument call trees")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    import app  # noqa: F401  (sets PICCOLO_CONF before Piccolo is imported)

    hb.VAR.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(args.pyinstrument))
