"""Client workbench benchmark on the million-client database: the list with a filter and a search
term, its next page, and the client 360 page with each of its htmx panels, on one worker.

One uvicorn worker process serves the real application against the database that
`bench/gen_clients.py` loaded (run that first, or `make bench-clients`). Requests are sequential,
over one keep-alive connection, after a warm-up; each case rotates through several clients or
cursors so it is not one cached row measured a hundred times. Prints p50/p95/p99 per case and
PASS/FAIL against the issue's target (p95 < 100 ms), for an admin (sees every client) and for a
desk-scoped sales agent (two desks, about a quarter of the book).

    .venv/bin/python bench/clients_bench.py [--samples 60] [--warmup 5] [--only list|360] [--strict]
    .venv/bin/python bench/clients_bench.py --explain     # EXPLAIN (ANALYZE, BUFFERS) of every query

`--explain` runs each case's first request in-process with auto_explain (after six unmeasured runs
on the same connection, so PostgreSQL's plan cache is in the state a busy server's is), and prints
the plan of every SQL statement the request ran, slowest first (no server is started).
`--custom-plans` makes the server's connections plan each statement for its own values
(plan_cache_mode=force_custom_plan), the setting bench/README.md recommends.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import logging
import os
import random
import re
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for p in (str(ROOT), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from gen_clients import ADMIN_EMAIL, DEFAULT_DATABASE, DOMAIN, MARKER, database_url, server_url  # noqa: E402
from http_bench import VAR, _cpu_seconds, _free_port, start_server, wait_healthy  # noqa: E402

TARGET_P95_MS = 100.0
AGENT_EMAIL = f"agent01@{DOMAIN}"  # DACH desk, and a second membership on the LATAM desk
NEXT_RE = re.compile(r'id="next-page"[^>]*href="/staff/clients\?([^"]+)"')
OLDER_RE = re.compile(r'href="/staff/clients/\d+/timeline\?before=(\d+)"')
ROW_RE = re.compile(r'<tr class="clickable">')
PANEL_RE = re.compile(r'hx-get="/staff/clients/\d+/(\w+)"[^>]*hx-trigger="load"')


@dataclass
class Case:
    group: str  # "list" | "next page" | "360"
    label: str
    viewer: str  # "admin" | "agent"
    paths: list[str]  # rotated through, one per request
    htmx: bool = False
    walk: bool = False  # each request follows the previous page's "Next page" link
    sequence: list[str] = field(default_factory=list)  # per client: the page and its panels in a row
    samples: list[float] = field(default_factory=list)
    note: str = ""

    def pct(self, q: float) -> float:
        s = sorted(self.samples)
        return s[min(len(s) - 1, int(q * len(s)))] * 1000 if s else 0.0


# --- setup: sessions and the rows to ask for ----------------------------------------------------


async def _setup(url: str, migrate_first: bool) -> dict[str, Any]:
    """Sessions for the admin and the agent, and the clients and search terms the cases use."""
    import app  # noqa: F401
    from app.core import db
    from app.core.auth import sessions
    from app.core.migrate import migrate

    db.configure(url)
    await db.start_pool(min_size=1, max_size=2)
    try:
        if migrate_first:
            t0 = time.perf_counter()
            await migrate()
            took = time.perf_counter() - t0
            if took > 2:
                print(f"applied pending migrations in {took:.1f} s", flush=True)
        staff = {
            r["email"]: r["id"]
            for r in await db.fetch(
                "SELECT id, email FROM staff_users WHERE email = ANY({})", [ADMIN_EMAIL, AGENT_EMAIL]
            )
        }
        if len(staff) != 2:
            raise SystemExit("bench staff missing: run bench/gen_clients.py first")
        life = {"idle": timedelta(hours=3), "absolute": timedelta(hours=3), "ip": "127.0.0.1"}
        keys = {}
        for who, email in (("admin", ADMIN_EMAIL), ("agent", AGENT_EMAIL)):
            keys[who], _ = await sessions.create(
                "staff", staff[email], mfa_passed=True, user_agent="fxcrm-clients-bench", **life
            )
        agent = staff[AGENT_EMAIL]
        desks = [
            r["desk"]
            for r in await db.fetch(
                "SELECT desk FROM routing_desk_members WHERE staff = {} AND active ORDER BY desk", agent
            )
        ]
        visible = "EXISTS (SELECT 1 FROM routing_assignments a WHERE a.client = t.client AND (a.owner = {} OR a.desk = ANY({})))"
        heavy = await db.fetch(
            "SELECT client, n FROM (SELECT client, count(*) AS n FROM client_timeline GROUP BY client) t "
            "ORDER BY n DESC, client LIMIT 400"
        )
        heavy_agent = await db.fetch(
            "SELECT t.client, t.n FROM unnest({}::int[], {}::int[]) AS t(client, n) WHERE " + visible,
            [r["client"] for r in heavy],
            [r["n"] for r in heavy],
            agent,
            desks,
        )
        top = (await db.fetchrow("SELECT max(id) AS top FROM clients") or {}).get("top") or 1
        sample = random.Random(7).sample(range(1, top + 1), min(3000, top))
        light = await db.fetch(
            "SELECT t.client, count(e.id) AS n FROM unnest({}::int[]) AS t(client) "
            "JOIN client_timeline e ON e.client = t.client GROUP BY t.client HAVING count(e.id) <= 5",
            sample,
        )
        light_agent = await db.fetch(
            "SELECT t.client, t.n FROM unnest({}::int[], {}::int[]) AS t(client, n) WHERE " + visible,
            [r["client"] for r in light],
            [r["n"] for r in light],
            agent,
            desks,
        )
        # search terms taken from the data: a phone fragment and an exact e-mail in the agent's desk
        probe = await db.fetchrow(
            "SELECT c.phone, c.email, c.stage FROM clients c JOIN routing_assignments a ON a.client = c.id "
            "WHERE a.desk = $1 AND c.country = 'DE' AND c.phone <> '' AND c.id > 500000 ORDER BY c.id LIMIT 1",
            desks[0],
        )
        desk_names = {
            r["id"]: r["name"] for r in await db.fetch("SELECT id, name FROM routing_desks ORDER BY id")
        }
    finally:
        await db.close_pool()
    assert probe is not None
    digits = re.sub(r"\D", "", probe["phone"])
    return {
        "keys": keys,
        "desk": desks[0],
        "agent_id": agent,
        "other_desk": min(d for d in desk_names if d not in desks),
        "desk_names": desk_names,
        "agent_desks": desks,
        "heavy": {
            "admin": [r["client"] for r in heavy[:20]],
            "agent": [r["client"] for r in heavy_agent[:20]],
        },
        "heavy_n": (heavy[min(19, len(heavy) - 1)]["n"], heavy[0]["n"]),
        "light": {
            "admin": [r["client"] for r in light[:50]],
            "agent": [r["client"] for r in light_agent[:50]],
        },
        "phone_q": f"+{digits[:2]} {digits[2:6]} {digits[6:9]}",
        "email_q": probe["email"].split("@")[0],
        "email_stage": probe["stage"],
    }


def panels_of(page: str) -> list[str]:
    """The fragments the client page loads as soon as it is shown (hx-trigger="load"), in page order,
    and the stage panel (a fragment too, reloaded after a change)."""
    found = PANEL_RE.findall(page)
    return list(dict.fromkeys([*found, "stage"]))


def plan(s: dict[str, Any], only: str | None, panels: list[str]) -> list[Case]:
    def lst(**params: Any) -> str:
        return "/staff/clients?" + urlencode(params)

    desk = s["desk"]
    list_variants = [
        ("no filter, no search (first page)", lst()),
        ("stage + name fragment 'schmidt'", lst(stage="funded", q="schmidt")),
        ("country + e-mail fragment 'web.de'", lst(country="DE", q="web.de")),
        (f"desk + phone digits '{s['phone_q']}'", lst(desk=desk, q=s["phone_q"])),
        ("stage + rare term (one exact e-mail)", lst(stage=s["email_stage"], q=s["email_q"])),
        ("stage + term matching nothing 'qxzvj'", lst(stage="active", q="qxzvj")),
        ("stage + common term 'mar'", lst(stage="lead", q="mar")),
        ("country + very common term 'gmail'", lst(country="AT", q="gmail")),
        ("language + two-letter term 'an'", lst(language="de", q="an")),
        ("owner + term 'mar'", lst(owner=s["agent_id"], q="mar")),
        ("owner only (the agent's own book)", lst(owner=s["agent_id"])),
        ("tag + term 'mar'", lst(tag="vip", q="mar")),
        ("IB + term 'mar' (the biggest IB)", lst(ib="IB0001", q="mar")),
    ]
    # what a desk-scoped agent can ask for that has (next to) nothing in their scope
    outside = [
        ("desk outside the agent's desks", lst(desk=s["other_desk"])),
        ("country outside the agent's desks + 'gmail'", lst(country="GB", q="gmail")),
    ]
    cases: list[Case] = []
    if only in (None, "list"):
        # the whole page (a link, a reload) and the rows fragment the search box fetches as one types
        for htmx, group in ((False, "list"), (True, "list rows")):
            for viewer in ("admin", "agent"):
                for label, path in list_variants:
                    cases.append(Case(group, label, viewer, [path], htmx=htmx))
            for label, path in outside:
                cases.append(Case(group, label, "agent", [path], htmx=htmx))
        cases.append(
            Case("next page", "next pages, no filter (walk 1→N)", "admin", [lst()], htmx=True, walk=True)
        )
        cases.append(
            Case("next page", "next pages, no filter (walk 1→N)", "agent", [lst()], htmx=True, walk=True)
        )
        cases.append(
            Case(
                "next page",
                "next pages, country + 'gmail' (walk)",
                "admin",
                [lst(country="GB", q="gmail")],
                htmx=True,
                walk=True,
            )
        )
        cases.append(
            Case(
                "next page",
                "next pages, stage + 'mar' (walk)",
                "agent",
                [lst(stage="lead", q="mar")],
                htmx=True,
                walk=True,
            )
        )
    if only in (None, "360"):
        for viewer in ("admin", "agent"):
            for kind in ("heavy", "light"):
                ids = s[kind][viewer]
                if not ids:
                    continue
                what = f"{kind} clients ({len(ids)})"
                cases.append(Case("360", f"page, {what}", viewer, [f"/staff/clients/{c}" for c in ids]))
                for panel in panels:
                    cases.append(
                        Case(
                            "360",
                            f"{panel} panel, {what}",
                            viewer,
                            [f"/staff/clients/{c}/{panel}" for c in ids],
                            htmx=True,
                        )
                    )
                if kind == "heavy":
                    cases.append(
                        Case(
                            "360",
                            f"timeline older page, {what}",
                            viewer,
                            [f"/staff/clients/{c}/timeline" for c in ids],
                            htmx=True,
                            walk=True,
                        )
                    )
                cases.append(
                    Case(
                        "360",
                        f"page + its {len(panels) - 1} loaded panels in a row, {what}",
                        viewer,
                        [str(c) for c in ids],
                        sequence=["", *(f"/{p}" for p in panels if p != "stage")],
                    )
                )
    return cases


# --- measuring ----------------------------------------------------------------------------------


def _get(http: httpx.Client, path: str, htmx: bool) -> httpx.Response:
    r = http.get(path, headers={"HX-Request": "true"} if htmx else None)
    if r.status_code != 200:
        raise SystemExit(f"GET {path} answered {r.status_code} ({r.headers.get('location') or r.text[:200]})")
    return r


def run_case(http: httpx.Client, case: Case, samples: int, warmup: int, budget: float = 15.0) -> None:
    """`samples` timed requests after `warmup` untimed ones. A slow case warms up for at most two
    requests and stops after `budget` seconds once it has 20 samples (column n says how many)."""
    if case.sequence:
        ids = case.paths
        for n in range(warmup + samples):
            base = f"/staff/clients/{ids[n % len(ids)]}"
            t0 = time.perf_counter()
            for step in case.sequence:
                _get(http, base + step, htmx=bool(step))
            if n >= warmup:
                case.samples.append(time.perf_counter() - t0)
        return
    if case.walk:
        walk(http, case, samples, warmup)
        return
    spent, n, warming = 0.0, 0, warmup
    while len(case.samples) < samples and not (len(case.samples) >= 20 and spent > budget):
        path = case.paths[n % len(case.paths)]
        t0 = time.perf_counter()
        r = _get(http, path, case.htmx)
        took = time.perf_counter() - t0
        if n == 0 and case.group.startswith("list"):
            rows = len(ROW_RE.findall(r.text))
            case.note = f"{rows} rows" + (", more" if NEXT_RE.search(r.text) else "")
        n += 1
        if warming > 0:
            warming = 0 if n >= 2 and took > 0.5 else warming - 1
            continue
        spent += took
        case.samples.append(took)


def _follow(case: Case, path: str, page: str) -> str | None:
    """The URL of the page after this one (the list's "Next page", the timeline's "Older"), if any."""
    if case.group == "next page":
        m = NEXT_RE.search(page)
        return "/staff/clients?" + html.unescape(m.group(1)) if m else None
    m = OLDER_RE.search(page)
    return f"{path}?before={m.group(1)}" if m else None


def walk(http: httpx.Client, case: Case, samples: int, warmup: int) -> None:
    """Page after page, as someone clicking "Next" would; at the end, start again at the next start."""
    starts, i, taken, misses = case.paths, 0, 0, 0
    path = starts[0]
    following: str | None = None
    while len(case.samples) < samples:
        if following is None:
            path = starts[i % len(starts)]
            i += 1
            following = _follow(case, path, _get(http, path, case.htmx).text)
            misses = 0 if following else misses + 1
            if misses > len(starts):
                raise SystemExit(f"{case.label}: nothing to page through")
            continue
        t0 = time.perf_counter()
        r = _get(http, following, case.htmx)
        took = time.perf_counter() - t0
        taken += 1
        if taken > warmup:
            case.samples.append(took)
        following = _follow(case, path, r.text)


def report(cases: list[Case], meta: dict[str, Any]) -> bool:
    print()
    print(
        f"fxcrm client workbench benchmark: one uvicorn worker, sequential requests over one connection; "
        f"{meta['samples']} samples per case after {meta['warmup']} warm-up requests"
    )
    print(
        f"database {meta['database']}: {meta['clients']:,} clients, {meta['events']:,} timeline events "
        f"({meta['size']}); heavy clients have {meta['heavy_n'][0]}-{meta['heavy_n'][1]} events, light ones <= 5"
    )
    print(f"admin: {ADMIN_EMAIL} (all clients); agent: {AGENT_EMAIL} (sales, desks {meta['agent_desks']})")
    print(f"plan_cache_mode of the server's connections: {meta['plans']}")
    print(
        f"load average before/after: {meta['load_before']} / {meta['load_after']}; "
        f"server CPU during the run: {meta['server_cpu']}"
    )
    print()
    ok = True
    head = (
        f"{'group':<9} {'case':<50} {'viewer':<6} {'n':>4} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'max ms':>7}  {'target':<6} note"
    )
    print(head)
    print("-" * len(head))
    for c in cases:
        p95 = c.pct(0.95)
        composite = bool(c.sequence)
        verdict = "info" if composite else ("PASS" if p95 < TARGET_P95_MS else "FAIL")
        ok = ok and (composite or p95 < TARGET_P95_MS)
        note = f"sum of {len(c.sequence)} requests" if composite else c.note
        print(
            f"{c.group:<9} {c.label[:50]:<50} {c.viewer:<6} {len(c.samples):>4} {c.pct(0.5):>7.1f} {p95:>7.1f} "
            f"{c.pct(0.99):>7.1f} {max(c.samples) * 1000:>7.1f}  {verdict:<6} {note}"
        )
    print()
    judged = [c for c in cases if not c.sequence]
    failed = [c for c in judged if c.pct(0.95) >= TARGET_P95_MS]
    print(
        f"target p95 < {TARGET_P95_MS:g} ms per request: "
        + ("met by every case" if not failed else f"MISSED by {len(failed)} of {len(judged)} cases")
    )
    return ok


def _database_facts(url: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT reltuples::bigint FROM pg_class WHERE relname = 'clients'), "
            "(SELECT reltuples::bigint FROM pg_class WHERE relname = 'client_timeline'), "
            "pg_size_pretty(pg_database_size(current_database())), "
            "shobj_description((SELECT oid FROM pg_database WHERE datname = current_database()), 'pg_database')"
        ).fetchone()
    assert row is not None
    return {"clients": row[0], "events": row[1], "size": row[2], "marker": row[3] or ""}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- explain mode -------------------------------------------------------------------------------


async def explain(
    url: str, setup: dict[str, Any], only: str | None, threshold_ms: float, custom_plans: bool = False
) -> None:
    """Each case's first request in-process; auto_explain sends every statement's plan as a NOTICE."""
    import app  # noqa: F401
    from app.asgi import create_app
    from app.core import db
    from app.core.auth import sessions
    from app.settings import load_settings, use_settings

    plans: list[tuple[float, str]] = []

    def listener(_conn: Any, message: Any) -> None:
        text = str(message.message)
        m = re.search(r"duration: ([\d.]+) ms", text)
        if m and "plan:" in text:
            plans.append((float(m.group(1)), text))

    async def init(conn: Any) -> None:
        await conn.execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on; "
            "SET auto_explain.log_buffers = on; SET auto_explain.log_timing = on; "
            "SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = notice"
        )
        if custom_plans:
            await conn.execute("SET plan_cache_mode = force_custom_plan")

    async def setup_conn(conn: Any) -> None:  # asyncpg drops log listeners when a connection is released
        conn.add_log_listener(listener)

    warnings.filterwarnings("ignore", message=".*active log listener")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    keys = setup["keys"]

    settings = load_settings(
        {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "x" * 48, "APP_ENV": "development"}
    )
    use_settings(settings)
    db.configure(url)
    await db.DB.start_connection_pool(
        min_size=1, max_size=1, init=init, setup=setup_conn, reset=db._no_session_reset
    )
    application = create_app(settings, start_queue=False)
    for hook in application.on_startup:
        await hook()
    try:
        transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.local") as http:
            http.cookies.set(sessions.COOKIE, keys["admin"])
            page = await http.get(f"/staff/clients/{setup['heavy']['admin'][0]}")
            cases = plan(setup, only, panels_of(page.text))
            for case in cases:
                path = case.paths[0] if not case.sequence else f"/staff/clients/{case.paths[0]}"
                http.cookies.set(sessions.COOKIE, keys[case.viewer])
                headers = {"HX-Request": "true"} if case.htmx else {}
                for _ in range(6):  # as on a busy server: PostgreSQL may switch to a generic plan after 5
                    await http.get(path, headers=headers)
                plans.clear()
                t0 = time.perf_counter()
                r = await http.get(path, headers=headers)
                took = (time.perf_counter() - t0) * 1000
                print(
                    f"\n=== {case.group} | {case.label} | {case.viewer} | GET {path} -> {r.status_code} ({took:.1f} ms)"
                )
                for ms, text in sorted(plans, key=lambda p: -p[0]):
                    if ms >= threshold_ms:
                        print(f"--- {ms:.2f} ms\n{text}")
                small = [ms for ms, _ in plans if ms < threshold_ms]
                print(
                    f"--- and {len(small)} statements under {threshold_ms:g} ms ({sum(small):.2f} ms together)"
                )
    finally:
        for hook in application.on_shutdown:
            await hook()
        await db.close_pool()


# --- the run ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--samples", type=int, default=60, help="measured requests per case (default 60)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured requests first (default 5)")
    parser.add_argument("--only", choices=("list", "360"), help="run one group of cases")
    parser.add_argument("--explain", action="store_true", help="print the query plans instead of timing")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a case misses the target")
    parser.add_argument(
        "--custom-plans",
        action="store_true",
        help="the server's connections plan every statement for its values (plan_cache_mode=force_custom_plan)",
    )
    parser.add_argument(
        "--explain-min-ms", type=float, default=0.5, help="plans of statements at least this slow"
    )
    args = parser.parse_args()
    if not 5 <= args.samples <= 10_000 or not 0 <= args.warmup <= 1000:
        parser.error("--samples must be in [5, 10000] and --warmup in [0, 1000]")

    url = database_url(server_url(), args.database)
    try:
        facts = _database_facts(url)
    except Exception as exc:  # noqa: BLE001  (any connection problem: say what to run)
        raise SystemExit(f"cannot open {args.database} ({exc}); run bench/gen_clients.py first") from exc
    if not facts["marker"].startswith(MARKER):
        raise SystemExit(f"{args.database} holds no bench data; run bench/gen_clients.py first")
    setup = asyncio.run(_setup(url, migrate_first=True))
    if args.explain:
        asyncio.run(explain(url, setup, args.only, args.explain_min_ms, args.custom_plans))
        return 0

    VAR.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    load_before = _load()
    server_url_ = url + ("?options=-c%20plan_cache_mode%3Dforce_custom_plan" if args.custom_plans else "")
    server = start_server(server_url_, port, VAR / "clients_server.log")
    try:
        wait_healthy(base, server)
        print(f"server up at {base} (pid {server.pid}); load average {load_before}", flush=True)
        cpu0, wall0 = _cpu_seconds(server.pid), time.perf_counter()
        https: dict[str, httpx.Client] = {}
        for who in ("admin", "agent"):
            https[who] = httpx.Client(base_url=base, cookies={"fxsid": setup["keys"][who]}, timeout=30)
        try:
            page = _get(https["admin"], f"/staff/clients/{setup['heavy']['admin'][0]}", htmx=False)
            panels = panels_of(page.text)
            print(f"client page panels: {', '.join(panels)}", flush=True)
            cases = plan(setup, args.only, panels)
            for case in cases:
                run_case(https[case.viewer], case, args.samples, args.warmup)
                print(
                    f"  {case.group:<9} {case.label[:52]:<52} {case.viewer:<6} p95 {case.pct(0.95):6.1f} ms",
                    flush=True,
                )
        finally:
            for h in https.values():
                h.close()
        cpu1, wall1 = _cpu_seconds(server.pid), time.perf_counter()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    cpu = f"{(cpu1 - cpu0) / (wall1 - wall0) * 100:.0f} %" if cpu0 is not None and cpu1 is not None else "n/a"
    meta = {
        **facts,
        "database": args.database,
        "samples": args.samples,
        "warmup": args.warmup,
        "heavy_n": setup["heavy_n"],
        "agent_desks": ", ".join(setup["desk_names"][d] for d in setup["agent_desks"]),
        "load_before": load_before,
        "load_after": _load(),
        "server_cpu": cpu,
        "plans": "force_custom_plan (--custom-plans)" if args.custom_plans else "PostgreSQL's default (auto)",
    }
    ok = report(cases, meta)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
