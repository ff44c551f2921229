"""`fxcrm screening …`: load a list release, re-screen everyone now."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from app.screening.loaders import FORMATS


def add_commands(sub: Any) -> None:
    p = sub.add_parser("screening", help="sanctions lists: load a release, re-screen every client")
    ssub = p.add_subparsers(dest="screening_command", required=True)
    load = ssub.add_parser(
        "load",
        help="import one release of an official list (the same file twice changes nothing)",
        description="Import one list release: OFAC sdn.csv (alt.csv and add.csv are taken from beside "
        "it) or sdn.xml, the UN consolidated list XML, the EU consolidated list XML or CSV; a folder or "
        "a zip holding one release works too. A newer release of a source replaces the active one and "
        "queues a re-screening of every client. Exit code 1 when the file is refused.",
    )
    load.add_argument("paths", nargs="+", type=Path, metavar="file")
    load.add_argument(
        "--format", choices=sorted(FORMATS), help="the format (default: detected from the file)"
    )
    load.set_defaults(func=cmd_load)
    rescreen = ssub.add_parser(
        "rescreen", help="screen every client against the active lists now, in this process"
    )
    rescreen.set_defaults(func=cmd_rescreen)


def _actor(what: str) -> Any:
    from app.core.audit import Actor

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor.system(f"fxcrm screening {what} ({user})")


def cmd_load(args: argparse.Namespace) -> int:
    from app.cli import _database, _with_pool
    from app.core import jobs
    from app.core.migrate import migrate
    from app.screening import lists, loaders

    try:
        files = loaders.read_paths(args.paths)
    except loaders.ListFileError as exc:
        print(f"not loaded: {exc}", file=sys.stderr)
        return 1
    url = _database()

    async def go() -> Any:
        await migrate()
        try:
            await jobs.connect(url)  # so the re-screening reaches the worker at once
        except Exception as exc:  # the worker's sweep queues the re-screening later
            print(f"job queue unavailable ({exc}); the worker will pick the re-screening up", file=sys.stderr)
        try:
            return await lists.load_release(
                files, _actor("load"), fmt=args.format, filename=", ".join(p.name for p in args.paths)
            )
        finally:
            await jobs.disconnect()

    try:
        result = _with_pool(go)
    except loaders.ListFileError as exc:
        print(f"not loaded: {exc}", file=sys.stderr)
        return 1
    print(result.message)
    return 0


def cmd_rescreen(args: argparse.Namespace) -> int:
    from app.cli import _database, _with_pool
    from app.core.db import transaction
    from app.core.migrate import migrate
    from app.screening import lists, runs

    _database()

    async def go() -> dict[str, Any] | None:
        await migrate()
        active = await lists.active_lists()
        if not active:
            return None
        async with transaction():
            run_id = await lists.queue_rescreen(active[0]["id"], _actor("rescreen"))
        return await runs.process(run_id)

    figures = _with_pool(go)
    if figures is None:
        print("no list is loaded: nothing to screen against", file=sys.stderr)
        return 1
    print(", ".join(f"{k} {v}" for k, v in figures.items()))
    return 0
