"""Sanctions re-screening benchmark: 100,000 clients against a 20,000-entry list, end to end.

Creates a dedicated database (dropped afterwards unless --keep), migrates it, writes a synthetic
UN Security Council consolidated list (the official XML format: individuals with aliases, some in
Cyrillic or Arabic script, dates of birth and nationalities; entities with aliases) and loads it
through the real loader (`app.screening.lists.load_release`), COPYs the synthetic clients (names
from the same pools as the list, so common names collide as they do in life, plus a few hundred
deliberate near-variants of listed names), then times the re-screening job the load queued
(`app.screening.runs.process`: the match index built from the database, every client screened in
batches, cases opened, subjects recorded, progress published) and prints the figures with
PASS/FAIL against the issue's target (under 2 minutes).

    .venv/bin/python bench/screening_bench.py [--clients 100000] [--entries 20000] [--seed 2026]
                                              [--database fxcrm_screening_bench] [--keep]

The server is $BENCH_DATABASE_URL (its database name, if any, is ignored) or
postgresql://postgres@127.0.0.1:5432. Exit code 1 on FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
TARGET_SECONDS = 120.0

FIRST = (
    "james john robert michael william david richard joseph thomas charles daniel matthew mark paul "
    "steven andrew kevin brian george edward mary patricia jennifer linda elizabeth barbara susan "
    "jessica sarah karen nancy lisa betty sandra ashley emily donna michelle carol amanda melissa "
    "mohammed muhammad mohamed ahmed ahmad ali omar umar hassan hasan hussein husain ibrahim yusuf "
    "yousef khalid abdullah abdulrahman mahmoud mustafa tariq tareq said saeed karim nasser samir "
    "walid faisal hamza bilal jamal rashid fatima aisha maryam zainab layla noor huda amina salma "
    "rania ivan dmitri dmitry sergei sergey alexei alexey vladimir nikolai andrei mikhail pavel yuri "
    "oleg igor boris viktor anatoly arkady olga tatiana elena natalia irina svetlana anna ekaterina "
    "yulia wei li zhang wang chen liu yang huang zhao hui jun ming jose juan carlos luis miguel jorge "
    "pedro antonio francisco manuel sofia lucia carmen isabel rosa ana pierre jean michel philippe "
    "francois marie claire hans klaus stefan wolfgang jurgen andreas markus sabine katrin petra "
    "monika giuseppe marco luca giovanni paolo francesca giulia chiara kwame kofi ama emeka chinedu "
    "ngozi oluwaseun aditya rahul amit priya anjali vikram arjun sanjay deepak sunita kenji hiroshi "
    "yuki haruto sakura minh anh tuan linh hyun jisoo minjun seoyeon mehmet mustafa emre elif zeynep "
    "ayse can burak reza ali-reza hossein mehdi narges parisa dariush kamal nabil youssef mounir"
).split()
ONSET = "b d k m n p r s t v z kh sh ch g l f h y br kr st tr gr dr pl sl".split()
VOWEL = "a e i o u a e o ai ou ia".split()
CODA = ["", "", "n", "r", "s", "v", "k", "l", "m", "d", "t", "ov", "in", "ez", "son", "ski", "ani", "ian"]
ENTITY_WORDS = (
    "global trading shipping marine petroleum logistics holdings capital industrial commercial "
    "bank investment construction energy services general import export engineering resources "
    "technologies maritime partners group alliance union national international development"
).split()
ENTITY_FORMS = ["LLC", "LTD", "JSC", "FZE", "GMBH", "S.A.", "CO.", "OOO", "INC"]
COUNTRIES = [
    "Iran",
    "Iraq",
    "Syria",
    "Russian Federation",
    "Afghanistan",
    "Yemen",
    "Libya",
    "Somalia",
    "Sudan",
]
CLIENT_COUNTRIES = "DE FR GB IT ES NL PL RU AE SA EG TR IN CN BR MX NG ZA US CA IQ SY IR".split()
CYRILLIC = dict(zip("abvgdezikl", "абвгдезикл", strict=True)) | dict(
    zip("mnoprstufh", "мнопрстуфх", strict=True)
)


def server_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_SERVER
    return urlunsplit(urlsplit(url)._replace(path=""))


def database_url(server: str, name: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path="/" + name))


def surnames(rng: random.Random, n: int) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        parts = [rng.choice(ONSET) + rng.choice(VOWEL) for _ in range(rng.choice((2, 2, 3)))]
        out.add(("".join(parts) + rng.choice(CODA)).capitalize())
    return sorted(out)


def variant(rng: random.Random, name: str) -> str:
    """A spelling another source (or the client) might use: a vowel changed, a letter doubled or dropped."""
    if len(name) < 4:
        return name
    i = rng.randrange(1, len(name) - 1)
    move = rng.random()
    if move < 0.4 and name[i] in "aeiou":
        return name[:i] + rng.choice("aeiou") + name[i + 1 :]
    if move < 0.7:
        return name[:i] + name[i] + name[i:]
    return name[:i] + name[i + 1 :]


def cyrillic(name: str) -> str:
    return "".join(CYRILLIC.get(ch, ch) for ch in name.lower()).title()


def write_un_list(
    path: Path, rng: random.Random, n_entries: int, first: list[str], last: list[str]
) -> list[tuple[str, str]]:
    """The list as the UN publishes it; returns (first, last) of some listed people to plant near-variants of."""
    people: list[tuple[str, str]] = []
    n_entities = n_entries // 7
    with path.open("w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n')
        f.write(
            '<CONSOLIDATED_LIST xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:noNamespaceSchemaLocation="https://www.un.org/sc/resources/sc-sanctions.xsd" '
            f'dateGenerated="{datetime.now(UTC).isoformat(timespec="milliseconds")}">\n<INDIVIDUALS>\n'
        )
        for i in range(n_entries - n_entities):
            fn, ln = rng.choice(first).title(), rng.choice(last)
            middle = rng.choice(first).title() if rng.random() < 0.5 else ""
            people.append((fn, ln))
            parts = [fn, middle, ln] if middle else [fn, ln]
            f.write(f"<INDIVIDUAL><DATAID>{7_000_000 + i}</DATAID><VERSIONNUM>1</VERSIONNUM>")
            for tag, value in zip(("FIRST_NAME", "SECOND_NAME", "THIRD_NAME"), parts, strict=False):
                f.write(f"<{tag}>{escape(value.upper())}</{tag}>")
            f.write(f"<UN_LIST_TYPE>Bench</UN_LIST_TYPE><REFERENCE_NUMBER>BEi.{i:05d}</REFERENCE_NUMBER>")
            if rng.random() < 0.15:
                f.write(f"<NAME_ORIGINAL_SCRIPT>{escape(cyrillic(fn + ' ' + ln))}</NAME_ORIGINAL_SCRIPT>")
            if rng.random() < 0.7:
                f.write(f"<NATIONALITY><VALUE>{rng.choice(COUNTRIES)}</VALUE></NATIONALITY>")
            for _ in range(rng.choice((0, 1, 1, 2, 3))):
                alias = (
                    f"{variant(rng, fn)} {variant(rng, ln)}"
                    if rng.random() < 0.7
                    else f"{rng.choice(first).title()} {ln}"
                )
                f.write(
                    f"<INDIVIDUAL_ALIAS><QUALITY>Good</QUALITY><ALIAS_NAME>{escape(alias)}</ALIAS_NAME></INDIVIDUAL_ALIAS>"
                )
            if rng.random() < 0.8:
                born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 60))
                if rng.random() < 0.6:
                    f.write(
                        f"<INDIVIDUAL_DATE_OF_BIRTH><TYPE_OF_DATE>EXACT</TYPE_OF_DATE><DATE>{born.isoformat()}</DATE></INDIVIDUAL_DATE_OF_BIRTH>"
                    )
                else:
                    f.write(
                        f"<INDIVIDUAL_DATE_OF_BIRTH><TYPE_OF_DATE>APPROXIMATELY</TYPE_OF_DATE><YEAR>{born.year}</YEAR></INDIVIDUAL_DATE_OF_BIRTH>"
                    )
            f.write("</INDIVIDUAL>\n")
        f.write("</INDIVIDUALS>\n<ENTITIES>\n")
        for i in range(n_entities):
            name = (
                " ".join(w.upper() for w in rng.sample(ENTITY_WORDS, rng.choice((2, 3))))
                + " "
                + rng.choice(ENTITY_FORMS)
            )
            f.write(
                f"<ENTITY><DATAID>{8_000_000 + i}</DATAID><VERSIONNUM>1</VERSIONNUM><FIRST_NAME>{escape(name)}</FIRST_NAME>"
                f"<UN_LIST_TYPE>Bench</UN_LIST_TYPE><REFERENCE_NUMBER>BEe.{i:05d}</REFERENCE_NUMBER>"
            )
            if rng.random() < 0.5:
                alias = " ".join(w.upper() for w in rng.sample(ENTITY_WORDS, 2))
                f.write(
                    f"<ENTITY_ALIAS><QUALITY>Good</QUALITY><ALIAS_NAME>{escape(alias)}</ALIAS_NAME></ENTITY_ALIAS>"
                )
            f.write("</ENTITY>\n")
        f.write("</ENTITIES>\n</CONSOLIDATED_LIST>\n")
    return people


async def copy_clients(
    rng: random.Random, n: int, first: list[str], last: list[str], listed: list[tuple[str, str]]
) -> int:
    from app.core.db import DB

    now = datetime.now(UTC)
    planted = min(300, n // 100)
    records = []
    for i in range(n):
        if i < planted:  # a near-variant of a listed person
            fn, ln = listed[rng.randrange(len(listed))]
            fn, ln = (variant(rng, fn), ln) if rng.random() < 0.5 else (fn, variant(rng, ln))
        else:
            fn, ln = rng.choice(first).title(), rng.choice(last)
        records.append(
            (f"client{i}@bench.screening.test", fn, ln, rng.choice(CLIENT_COUNTRIES), "registered", now, now)
        )
    rng.shuffle(records)
    assert DB.pool is not None
    async with DB.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "clients",
            records=records,
            columns=[
                "email",
                "first_name",
                "last_name",
                "country",
                "stage",
                "stage_changed_at",
                "created_at",
            ],
        )
    return planted


async def main(args: argparse.Namespace) -> int:
    import psycopg

    server = server_url()
    url = database_url(server, args.database)
    with psycopg.connect(database_url(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    os.environ["DATABASE_URL"] = url
    from app.core import db
    from app.core.audit import Actor
    from app.core.migrate import migrate
    from app.screening import lists, loaders, runs
    from app.settings import load_settings, use_settings

    use_settings(load_settings())
    db.configure(url)
    await db.start_pool(min_size=1, max_size=4)
    rng = random.Random(args.seed)
    try:
        await migrate()
        first, last = FIRST, surnames(rng, 8000)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "consolidated.xml"
            t0 = time.perf_counter()
            listed = write_un_list(path, rng, args.entries, first, last)
            t_write = time.perf_counter() - t0
            t0 = time.perf_counter()
            loaded = await lists.load_release(loaders.read_paths([path]), Actor.system("screening bench"))
            t_load = time.perf_counter() - t0
            size_mb = path.stat().st_size / 1_048_576
        t0 = time.perf_counter()
        planted = await copy_clients(rng, args.clients, first, last, listed)
        t_clients = time.perf_counter() - t0
        assert loaded.run_id is not None
        lists.forget_indexes()  # the timed run builds its index from the database, as a worker would
        t0 = time.perf_counter()
        figures = await runs.process(loaded.run_id)
        t_run = time.perf_counter() - t0
        names = (await db.fetch("SELECT count(*) AS n FROM screening_entries"))[0]["n"]
        aliases = (await db.fetch("SELECT sum(jsonb_array_length(aliases)) AS n FROM screening_entries"))[0][
            "n"
        ]
    finally:
        await db.close_pool()
        if not args.keep:
            with psycopg.connect(database_url(server, "postgres"), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')

    ok = figures.get("status") == "finished" and figures["done"] == args.clients and t_run < TARGET_SECONDS
    per_client = figures["pairs_scored"] / max(1, figures["done"])
    print()
    print("Sanctions re-screening benchmark")
    print(f"  list            UN consolidated XML, {names} entries ({aliases} aliases), {size_mb:.1f} MB")
    print(f"                  written in {t_write:.1f} s, loaded through the loader in {t_load:.1f} s")
    print(
        f"  clients         {figures['done']} screened ({planted} planted near-variants), COPY in {t_clients:.1f} s"
    )
    print(
        f"  pairs scored    {figures['pairs_scored']} ({per_client:.1f} per client; all pairs would be "
        f"{args.clients * (names + (aliases or 0)):,})"
    )
    print(f"  hits            {figures['hits']}, cases opened {figures['cases_opened']}")
    print(f"  re-screening    {t_run:.1f} s end to end ({figures['done'] / t_run:,.0f} clients/s)")
    print(f"  target          < {TARGET_SECONDS:.0f} s: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--database", default="fxcrm_screening_bench")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    sys.exit(asyncio.run(main(parser.parse_args())))


if __name__ == "__main__":
    cli()
