"""Bench data for the client workbench: a million clients and five million timeline events.

Creates (or, with --reuse, keeps) a dedicated database, migrates it with the app's own
migrations, and loads it with COPY: staff and desks, clients with varied names, e-mails, E.164
phones, countries, languages and stages over three years, routing assignments, IBs and their
attributions, lead sources, tags, stage history, and a skewed timeline (most clients have a
handful of events, a few thousand have hundreds, eight have thousands) with the notes, tasks and
messages its events point to. Deterministic from --seed; dates are relative to the day of the run.

By default the secondary indexes and the foreign-key and unique constraints of the loaded tables
are dropped before the load and recreated afterwards from their own definitions
(`pg_get_indexdef` / `pg_get_constraintdef`), and the result is compared with the migrated schema;
`--keep-indexes` loads into the migrated schema as it is (slower; see bench/README.md).

    .venv/bin/python bench/gen_clients.py [--clients 1000000] [--events 5000000] [--seed 2026]
                                          [--database fxcrm_bench_1m] [--reuse] [--keep-indexes]

The server is $BENCH_DATABASE_URL (its database name, if any, is ignored) or
postgresql://postgres@127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import random
import sys
import threading
import time
import unicodedata
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_DATABASE = "fxcrm_bench_1m"
MARKER = "fxcrm bench data"
DOMAIN = "bench.fxcrm.test"
ADMIN_EMAIL = f"bench.admin@{DOMAIN}"
YEARS = 3
CHUNK = 25_000  # clients per generated chunk
N_PARTNERS = 300
HEAVY_SHARE = 0.004  # clients with hundreds of events
EXTREME = 8  # clients with thousands

# Tables this script fills (in load order); only these lose and regain indexes and constraints.
LOADED = tuple(
    "clients partners routing_assignments partner_attributions lead_sources client_tags "
    "client_stage_changes client_timeline client_notes client_tasks client_messages".split()
)
# desk -> countries routed there (one rule per country); ZA, NG and KE match no rule (never assigned)
DESKS = {
    "DACH desk": "DE AT CH".split(),
    "Western Europe desk": "FR BE ES PT IT NL GB IE".split(),
    "Eastern Europe desk": "PL CZ RO GR CY BG HU".split(),
    "MENA desk": "AE SA EG JO KW QA MA TR".split(),
    "APAC desk": "SG MY TH VN IN AU JP ID PH".split(),
    "LATAM desk": "BR MX CO CL AR".split(),
}
AGENTS_PER_DESK = 10
# country: weight, language, name pool, e-mail domain pool
_COUNTRY_TABLE = """
DE 120 de de de   AT 25 de de de    CH 20 de de de     FR 50 fr fr fr     BE 12 fr fr fr
ES 45 es es es    PT 12 pt pt intl  IT 45 it it it     NL 20 nl nl intl   GB 60 en en en
IE 8 en en en     PL 25 pl pl intl  CZ 10 cs pl intl   RO 10 ro pl intl   GR 8 el en intl
CY 8 en en intl   BG 6 bg pl intl   HU 6 hu pl intl    AE 55 ar ar intl   SA 35 ar ar intl
EG 25 ar ar intl  JO 8 ar ar intl   KW 8 ar ar intl    QA 6 ar ar intl    MA 10 ar ar fr
TR 30 tr tr intl  SG 20 en asia intl MY 25 ms asia intl TH 25 th asia intl VN 30 vi asia intl
IN 45 en in intl  AU 20 en en en    JP 10 ja asia intl ID 25 id asia intl PH 12 en asia intl
BR 40 pt pt intl  MX 25 es es intl  CO 15 es es intl   CL 8 es es intl    AR 10 es es intl
ZA 12 en en intl  NG 15 en en intl  KE 8 en en intl
"""
_cells = _COUNTRY_TABLE.split()
COUNTRIES = {
    _cells[i]: (int(_cells[i + 1]), _cells[i + 2], _cells[i + 3], _cells[i + 4])
    for i in range(0, len(_cells), 5)
}
NAMES: dict[str, tuple[str, str]] = {
    "de": (
        "Jonas Lea Felix Mia Lukas Hannah Paul Emma Leon Sophie Maximilian Marie Elias Lena Noah Anna "
        "Ben Laura Finn Julia Tim Katharina Moritz Sarah Niklas Johanna Jan Clara Tobias Greta",
        "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch Bauer "
        "Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange "
        "Werner Krause Lehmann Köhler Huber",
    ),
    "fr": (
        "Louis Chloé Hugo Camille Jules Léa Gabriel Manon Arthur Inès Raphaël Jade Lucas Emma Adam "
        "Louise Nathan Alice Théo Juliette Paul Zoé Mathis Lina Tom Sarah Enzo Margaux",
        "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent Lefebvre "
        "Michel Garcia David Bertrand Roux Vincent Fournier Morel Girard André Lefèvre Mercier Dupont",
    ),
    "es": (
        "Lucía Mateo Sofía Diego Valeria Pablo Martina Hugo Daniela Alejandro Paula Javier Carmen "
        "Santiago Isabella Sebastián Camila Nicolás Elena Andrés Gabriela Miguel Natalia Carlos",
        "García López Martínez Sánchez Romero Rodríguez González Fernández Pérez Gómez Díaz Moreno "
        "Muñoz Álvarez Jiménez Ruiz Hernández Torres Ramírez Flores Vargas Castro Ortiz Morales",
    ),
    "it": (
        "Giulia Marco Chiara Luca Sara Matteo Francesca Alessandro Martina Lorenzo Federica Andrea "
        "Giorgia Davide Elisa Simone Valentina Riccardo Alessia Gabriele Silvia Tommaso",
        "Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti "
        "De Luca Mancini Costa Giordano Rizzo Lombardi Moretti Barbieri Fontana",
    ),
    "en": (
        "Oliver Amelia Jack Isla Harry Grace Noah Ella George Olivia Charlie Emily Jacob Poppy Thomas "
        "Sophia James Lily William Jessica Daniel Chloe Samuel Megan Michael Lucy Joshua Hannah",
        "Smith Jones Taylor Brown Evans Walker Williams Wilson Johnson Davies Robinson Wright Thompson "
        "White Hughes Edwards Green Hall Wood Harris Lewis Martin Jackson Clarke Clark Turner Hill",
    ),
    "nl": (
        "Daan Emma Sem Julia Lucas Tess Levi Sophie Finn Zoë Milan Sara Bram Noor Jesse Eva",
        "de Jong Jansen de Vries van den Berg van Dijk Bakker Janssen Visser Smit Meijer de Boer "
        "Mulder de Groot Bos Vos Peters Hendriks",
    ),
    "pt": (
        "João Maria Pedro Ana Gabriel Beatriz Rafael Mariana Lucas Júlia Tiago Inês Miguel Larissa "
        "Gustavo Camila Bruno Letícia Diogo Fernanda",
        "Silva Santos Oliveira Souza Pereira Costa Rodrigues Almeida Nascimento Lima Araújo Ferreira "
        "Carvalho Gomes Martins Rocha Ribeiro Alves Monteiro Mendes",
    ),
    "pl": (
        "Jakub Zuzanna Jan Julia Antoni Maja Szymon Zofia Aleksander Hanna Filip Lena Tomasz Anna "
        "Piotr Katarzyna Andrei Elena Petr Tereza Ivan Maria Dimitar László Eszter",
        "Nowak Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański Woźniak "
        "Dąbrowski Novák Svoboda Popescu Ionescu Popa Ivanov Petrov Nagy Kovács Horváth Tóth",
    ),
    "ar": (
        "Omar Layla Yousef Fatima Khalid Noor Ahmed Mariam Mohammed Aisha Ali Sara Hassan Huda Ibrahim "
        "Reem Abdullah Salma Tariq Yasmin Karim Dina Faisal Rania Hamza Lina",
        "Al-Farsi Haddad Nasser Saleh Mansour Al-Sayed Khalil Hamdan Al-Rashid Aziz Farouk Qasim "
        "Darwish Habib Al-Masri Jaber Suleiman Youssef Nasr Rahman Bakr Kassem",
    ),
    "tr": (
        "Mehmet Ayşe Mustafa Fatma Ahmet Emine Ali Hatice Hüseyin Zeynep Hasan Elif Murat Merve Emre Esra",
        "Yılmaz Kaya Demir Şahin Çelik Yıldız Yıldırım Öztürk Aydın Özdemir Arslan Doğan Kılıç Aslan Çetin",
    ),
    "asia": (
        "Wei Mei Minh Siti Kenji Anh Hiroshi Yuki Somchai Nurul Budi Putri Jian Xin Linh Thanh Ahmad "
        "Aiko Haruto Sakura Arif Dewi Rizal Maria Jose Mark",
        "Tan Lim Nguyen Wong Tran Le Pham Sato Suzuki Takahashi Chen Lee Ng Ong Goh Santoso Wijaya "
        "Saputra Rahman Abdullah Reyes Cruz Bautista Srisuk Wongsakul",
    ),
    "in": (
        "Arjun Priya Rahul Ananya Vikram Sneha Amit Pooja Rohan Kavya Sanjay Neha Aditya Divya Karan Isha",
        "Sharma Patel Singh Kumar Gupta Reddy Iyer Nair Mehta Joshi Shah Rao Verma Das Menon Chopra",
    ),
}
DOMAINS = {  # pool: "domain:weight ..."
    "de": "gmx.de:25 web.de:22 gmail.com:30 t-online.de:10 outlook.de:8 yahoo.de:5",
    "fr": "gmail.com:35 orange.fr:20 free.fr:15 hotmail.fr:15 laposte.net:8 sfr.fr:7",
    "es": "gmail.com:45 hotmail.es:25 yahoo.es:10 outlook.es:12 telefonica.net:8",
    "it": "gmail.com:40 libero.it:20 hotmail.it:15 virgilio.it:10 tiscali.it:8 yahoo.it:7",
    "en": "gmail.com:45 hotmail.co.uk:15 outlook.com:15 yahoo.co.uk:10 icloud.com:10 btinternet.com:5",
    "intl": "gmail.com:55 hotmail.com:12 outlook.com:10 yahoo.com:12 icloud.com:6 proton.me:5",
}
STAGES = ("lead", "registered", "kyc_pending", "kyc_approved", "funded", "active", "dormant", "churned")
# stage weights for the oldest and for the newest clients; a client in between mixes the two
STAGE_OLD = (8, 10, 4, 5, 10, 20, 25, 18)
STAGE_NEW = (55, 20, 10, 5, 5, 5, 0, 0)
TAGS = tuple(
    "vip high-value callback crypto-interest gold-trader webinar-2025 do-not-call complaint bonus-eligible "
    "islamic-account professional retargeting conference-dubai referred-by-friend needs-translation "
    "demo-only".split()
)
NOTES = (
    "Asked about leverage on gold; sent the product sheet.",
    "Prefers a call after 18:00 local time.",
    "Interested in the ECN account, wants to start with 2,000 USD.",
    "Did not pick up, left a voicemail.",
    "Documents promised by Friday.",
    "Compared our spreads with another broker, follow up next week.",
    "Complained about a slippage on EURUSD during the NFP release; explained the execution policy.",
    "Wants an Islamic (swap-free) account.",
    "Asked for a withdrawal status; forwarded to finance.",
    "Very experienced trader, asks for professional client status.",
    "Signed up for the Thursday webinar.",
    "Wife handles the account questions; same phone number.",
)
TASKS = "Call back|Chase KYC documents|Explain the ECN account|Check first deposit|Win-back call|Send the bonus terms|Confirm proof of address|Invite to the webinar".split(
    "|"
)
SUBJECTS = "Welcome to the broker|Your documents|About your account|Market update|Your withdrawal|Following our call".split(
    "|"
)
EMAILS = (
    "Welcome e-mail sent|Verification e-mail sent|E-mail sent: KYC reminder|E-mail sent: deposit receipt|"
    "E-mail sent: weekly market outlook|E-mail sent: password reset link"
).split("|")
CAMPAIGNS = "spring-gold-2025 crypto-cfd ecn-launch webinar-ea brand-search affiliate-q3".split()
UTM_SOURCES = "google facebook instagram tiktok newsletter partner".split()
# extra (non-stage) timeline events: kind, weight
EXTRA_KINDS = (("login", 36), ("email", 26), ("note", 16), ("task", 7), ("message", 6), ("lead", 4))


def log(msg: str) -> None:
    print(msg, flush=True)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


@dataclass
class Pools:
    """Everything random choices draw from, prepared once (lists and cumulative weights)."""

    countries: list[str]
    country_cum: list[float]
    language: dict[str, str]
    names: dict[
        str, tuple[list[str], list[str], list[str], list[str]]
    ]  # first, last, ascii first, ascii last
    domains: dict[str, tuple[list[str], list[float]]]
    phone: dict[str, tuple[str, str, int]]  # country -> (+code, national prefix, random digits)
    stage_cum: list[list[float]]  # per age decile
    extra_kinds: list[str]
    extra_cum: list[float]

    @classmethod
    def build(cls) -> Pools:
        import phonenumbers

        def cum(weights: list[float]) -> list[float]:
            out, total = [], 0.0
            for w in weights:
                total += w
                out.append(total)
            return out

        names = {}
        for region, (firsts, lasts) in NAMES.items():
            f = firsts.split()
            last = [n.replace("_", " ") for n in _split_lasts(lasts)]
            names[region] = (f, last, [_ascii(n) for n in f], [_ascii(n) for n in last])
        phone = {}
        for c in COUNTRIES:
            ex = phonenumbers.example_number_for_type(c, phonenumbers.PhoneNumberType.MOBILE)
            national = str(ex.national_number)
            keep = max(2, len(national) - 7)
            phone[c] = (f"+{ex.country_code}", national[:keep], len(national) - keep)
        deciles = []
        for d in range(10):
            t = (d + 0.5) / 10  # 0 oldest, 1 newest
            deciles.append(
                cum([o * (1 - t) ** 2 + n * t**2 * 1.6 for o, n in zip(STAGE_OLD, STAGE_NEW, strict=True)])
            )
        return cls(
            countries=list(COUNTRIES),
            country_cum=cum([v[0] for v in COUNTRIES.values()]),
            language={c: v[1] for c, v in COUNTRIES.items()},
            names=names,
            domains={
                k: ([c.split(":")[0] for c in v.split()], cum([float(c.split(":")[1]) for c in v.split()]))
                for k, v in DOMAINS.items()
            },
            phone=phone,
            stage_cum=deciles,
            extra_kinds=[k for k, _ in EXTRA_KINDS],
            extra_cum=cum([w for _, w in EXTRA_KINDS]),
        )


def _split_lasts(text: str) -> list[str]:
    """Last names, keeping the particles of multi-word names ("de Jong", "van den Berg", "De Luca")."""
    out: list[str] = []
    words = text.split()
    i = 0
    while i < len(words):
        if words[i] in ("de", "van", "den", "De") and i + 1 < len(words):
            j = i
            while words[j] in ("de", "van", "den", "De") and j + 1 < len(words):
                j += 1
            out.append(" ".join(words[i : j + 1]))
            i = j + 1
        else:
            out.append(words[i])
            i += 1
    return out


@dataclass
class World:
    """The fixed cast the clients are spread over, and what later passes need per client."""

    anchor: float  # epoch seconds: midnight UTC of the day of the run
    start: float
    n: int
    staff: dict[str, int] = field(default_factory=dict)  # e-mail -> id
    desks: dict[str, int] = field(default_factory=dict)
    desk_agents: dict[int, list[int]] = field(default_factory=dict)
    country_desk: dict[str, int] = field(default_factory=dict)
    agents: list[int] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # staff id -> name
    partner_ids: list[int] = field(default_factory=list)
    partner_cum: list[float] = field(default_factory=list)
    # per client (index = id - 1)
    created: array = field(default_factory=lambda: array("d"))
    changed: array = field(default_factory=lambda: array("d"))
    stage: bytearray = field(default_factory=bytearray)
    history: bytearray = field(default_factory=bytearray)  # number of stage-change rows (1-3)
    owner: array = field(default_factory=lambda: array("i"))  # 0: none


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# --- pass A: clients and their one-to-one rows ---------------------------------------------------


@dataclass
class ChunkA:
    clients: list[tuple] = field(default_factory=list)
    assignments: list[tuple] = field(default_factory=list)
    attributions: list[tuple] = field(default_factory=list)
    sources: list[tuple] = field(default_factory=list)
    tags: list[tuple] = field(default_factory=list)


def gen_clients(w: World, p: Pools, seed: int, pw_hash: str, tags: bool) -> Iterator[ChunkA]:
    rng = random.Random(seed)
    span = w.anchor - w.start
    ids = {"assignment": 0, "attribution": 0, "source": 0, "tag": 0}
    choices, rand, randrange = rng.choices, rng.random, rng.randrange
    countries, country_cum = p.countries, p.country_cum
    for lo in range(0, w.n, CHUNK):
        ch = ChunkA()
        for i in range(lo, min(lo + CHUNK, w.n)):
            cid = i + 1
            created = w.start + (i + rand()) * span / w.n
            t = i / w.n
            country = choices(countries, cum_weights=country_cum)[0]
            _wt, lang, region, dom = COUNTRIES[country]
            if rand() < 0.12:
                lang = "en"
            firsts, lasts, afirsts, alasts = p.names[region]
            fi, li = randrange(len(firsts)), randrange(len(lasts))
            first, last = firsts[fi], lasts[li]
            if cid <= N_PARTNERS:
                stage = 5  # IBs are long-standing active clients
            else:
                stage = STAGES.index(choices(STAGES, cum_weights=p.stage_cum[min(9, int(t * 10))])[0])
            domains, dcum = p.domains[dom]
            domain = choices(domains, cum_weights=dcum)[0]
            af, al = afirsts[fi], alasts[li]
            style = cid % 5
            if style == 0:
                local = f"{af}.{al}{cid}"
            elif style == 1:
                local = f"{af[:1]}{al}{cid}"
            elif style == 2:
                local = f"{al}.{af}.{cid}"
            elif style == 3:
                local = f"{af}{cid}"
            else:
                local = f"{af}_{al}_{cid % 97}{cid}"
            email = f"{local}@{domain}"
            if rand() < 0.04:
                phone = ""
            else:
                code, prefix, digits = p.phone[country]
                phone = f"{code}{prefix}{randrange(10**digits):0{digits}d}"
            k = 1 if stage == 0 else min(3, stage + 1, 1 + randrange(3))
            changed = created if k == 1 else created + (w.anchor - created) * (0.2 + 0.75 * rand())
            lead = stage == 0
            verified = None if lead else _dt(created + 600 + rand() * 86400)
            last_login = None if lead else _dt(changed + (w.anchor - changed) * rand())
            w.created.append(created)
            w.changed.append(changed)
            w.stage.append(stage)
            w.history.append(k)
            created_dt = _dt(created)
            ch.clients.append(
                (
                    cid,
                    email,
                    first,
                    last,
                    phone,
                    country,
                    lang,
                    None if lead else pw_hash,
                    verified,
                    STAGES[stage],
                    _dt(changed),
                    True,
                    None,
                    False,
                    0,
                    created_dt,
                    last_login,
                    None,
                )
            )
            # routing: the desk of the client's country; a few are never assigned
            desk = w.country_desk.get(country)
            owner = 0
            if desk is not None and rand() < 0.95:
                agents = w.desk_agents[desk]
                owner = agents[randrange(len(agents))] if rand() < 0.88 else 0
                ids["assignment"] += 1
                contacted = None if lead and rand() < 0.6 else _dt(created + 300 + rand() * 7200)
                ch.assignments.append(
                    (
                        ids["assignment"],
                        cid,
                        desk,
                        owner or None,
                        created_dt,
                        _dt(created + 3600),
                        contacted,
                        contacted or created_dt,
                    )
                )
            w.owner.append(owner)
            if cid > N_PARTNERS and not lead and rand() < 0.11:
                partner = choices(w.partner_ids, cum_weights=w.partner_cum)[0]
                ids["attribution"] += 1
                link = rand() < 0.6
                ch.attributions.append(
                    (
                        ids["attribution"],
                        cid,
                        partner,
                        "link" if link else "code",
                        None,
                        _dt(created - 3600 * rand() * 48) if link else None,
                        "https://www.example.com/open-account" if link else "",
                        created_dt,
                    )
                )
            if rand() < 0.7:
                ids["source"] += 1
                api = rand() < 0.7
                campaign = CAMPAIGNS[randrange(len(CAMPAIGNS))]
                ch.sources.append(
                    (
                        ids["source"],
                        cid,
                        "api" if api else "form",
                        campaign,
                        UTM_SOURCES[randrange(len(UTM_SOURCES))],
                        "cpc" if api else "organic",
                        campaign,
                        "",
                        "",
                        "https://www.example.com/lp/" + campaign,
                        "",
                        ("standard", "ecn", "islamic", "")[randrange(4)],
                        None,
                        created_dt,
                    )
                )
            if tags and rand() < 0.15:
                for tag in rng.sample(TAGS, 1 + (rand() < 0.3) + (rand() < 0.1)):
                    ids["tag"] += 1
                    ch.tags.append(
                        (ids["tag"], cid, tag, _dt(created + rand() * (w.anchor - created)), owner or None)
                    )
        yield ch


# --- pass B: stage history, timeline, and the notes, tasks and messages it points to --------------


@dataclass
class ChunkB:
    changes: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    notes: list[tuple] = field(default_factory=list)
    tasks: list[tuple] = field(default_factory=list)
    messages: list[tuple] = field(default_factory=list)


def extra_counts(w: World, seed: int, total_events: int) -> array:
    """How many non-stage events each client gets: skewed, summing exactly to what is left."""
    rng = random.Random(seed + 1)
    rest = total_events - sum(w.history)
    if rest < 0:
        raise SystemExit(f"--events {total_events} is below the {sum(w.history)} stage events")
    weights = array("d")
    for i in range(w.n):
        age = (w.anchor - w.created[i]) / (w.anchor - w.start)
        base = (0.3 + 0.25 * w.stage[i]) * (0.4 + age) * rng.expovariate(1.0)
        weights.append(base)
    heavy = rng.sample(range(w.n), max(1, int(w.n * HEAVY_SHARE)))
    mean = sum(weights) / w.n
    for i in heavy:
        weights[i] = mean * rng.uniform(40, 250)
    for i in heavy[:EXTREME]:
        weights[i] = mean * rng.uniform(600, 1200)
    scale = rest / sum(weights)
    counts = array("i", (int(x * scale) for x in weights))
    left = rest - sum(counts)
    for i in rng.choices(range(w.n), k=left):
        counts[i] += 1
    return counts


def gen_history(w: World, p: Pools, seed: int, counts: array) -> Iterator[ChunkB]:
    rng = random.Random(seed + 2)
    rand, randrange, choices = rng.random, rng.randrange, rng.choices
    ids = {"change": 0, "event": 0, "note": 0, "task": 0, "message": 0}
    agents = w.agents
    anchor = w.anchor
    for lo in range(0, w.n, CHUNK):
        ch = ChunkB()
        raw: list[tuple] = []  # (ts, client, kind, summary, ref_type, detail)
        for i in range(lo, min(lo + CHUNK, w.n)):
            cid = i + 1
            created, changed, stage, k = w.created[i], w.changed[i], w.stage[i], w.history[i]
            first = stage - k + 1
            for n in range(k):
                to = first + n
                frm = None if n == 0 else STAGES[to - 1]
                at = created if n == 0 else created + (changed - created) * n / (k - 1)
                ids["change"] += 1
                actor = ("system", None, "system") if n == 0 else ("staff", None, "bench generator")
                ch.changes.append(
                    (ids["change"], cid, frm, STAGES[to], "", actor[0], actor[1], actor[2], _dt(at))
                )
                label = (frm or "new").replace("_", " ")
                raw.append(
                    (at, cid, "stage", f"Stage: {label} → {STAGES[to].replace('_', ' ')}", "client", cid)
                )
            owner = w.owner[i] or agents[cid % len(agents)]
            extra = counts[i]
            life = anchor - created
            for kind in choices(p.extra_kinds, cum_weights=p.extra_cum, k=extra) if extra else ():
                at = created + life * rand()
                raw.append((at, cid, kind, "", "", owner))
        raw.sort()
        events = ch.events
        for at, cid, kind, summary, ref_type, detail in raw:
            ref_id: int | None = None
            when = _dt(at)
            if kind == "stage":
                ref_id = detail
            elif kind == "login":
                summary = f"Signed in to the portal from 203.0.113.{randrange(1, 255)}"
            elif kind == "email":
                summary = EMAILS[randrange(len(EMAILS))]
            elif kind == "lead":
                summary, ref_type, ref_id = (
                    f"Lead merged ({'api' if rand() < 0.7 else 'form'})",
                    "client",
                    cid,
                )
            elif kind == "note":
                author = detail if rand() < 0.8 else agents[randrange(len(agents))]
                body = NOTES[randrange(len(NOTES))]
                ids["note"] += 1
                ref_type, ref_id = "note", ids["note"]
                ch.notes.append((ref_id, cid, author, body, when))
                summary = f"Note by {w.names[author]}: {body[:119]}"
            elif kind == "task":
                title = TASKS[randrange(len(TASKS))]
                due = at + 86400 * (1 + randrange(10))
                done = _dt(due - rand() * 86400) if due < anchor - 86400 and rand() < 0.85 else None
                ids["task"] += 1
                ref_type, ref_id = "task", ids["task"]
                ch.tasks.append((ref_id, cid, title, _dt(due), detail, detail, done, when))
                summary = f"Task for {_dt(due):%Y-%m-%d}: {title}"
            elif kind == "message":
                subject = SUBJECTS[randrange(len(SUBJECTS))]
                ids["message"] += 1
                ref_type, ref_id = "message", ids["message"]
                read = _dt(at + rand() * 172800) if rand() < 0.8 and at + 172800 < anchor else None
                ch.messages.append(
                    (
                        ref_id,
                        cid,
                        detail,
                        subject,
                        f"Dear client,\n\n{subject}: details inside.\n",
                        when,
                        read,
                    )
                )
                summary = f"Message from {w.names[detail]}: {subject}"
            ids["event"] += 1
            events.append((ids["event"], cid, when, kind, summary, ref_type, ref_id))
        yield ch


# --- database -----------------------------------------------------------------------------------

COLUMNS: dict[str, tuple[str, ...]] = {
    "clients": (
        "id email first_name last_name phone country language password_hash email_verified_at stage "
        "stage_changed_at is_active totp_secret totp_enabled totp_last_step created_at last_login_at "
        "password_changed_at"
    ).split(),
    "routing_assignments": (
        "id client desk owner assigned_at first_contact_due_at first_contact_at last_touched_at"
    ).split(),
    "partner_attributions": "id client partner source click clicked_at landing_page attributed_at".split(),
    "lead_sources": (
        "id client channel campaign utm_source utm_medium utm_campaign utm_term utm_content landing_page "
        "referring_ib_code account_type_interest api_key created_at"
    ).split(),
    "client_tags": "id client tag created_at created_by".split(),
    "client_stage_changes": (
        "id client from_stage to_stage reason actor_kind actor_id actor_label changed_at"
    ).split(),
    "client_timeline": "id client occurred_at kind summary ref_type ref_id".split(),
    "client_notes": "id client author body created_at".split(),
    "client_tasks": "id client title due_at assignee created_by done_at created_at".split(),
    "client_messages": "id client sender subject body created_at read_at".split(),
}


def server_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_SERVER
    return urlunsplit(urlsplit(url)._replace(path=""))


def database_url(server: str, name: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path="/" + name))


@dataclass
class Timings:
    rows: dict[str, int] = field(default_factory=dict)
    copy: dict[str, float] = field(default_factory=dict)
    build: dict[str, float] = field(default_factory=dict)

    def add(self, table: str, rows: int, seconds: float) -> None:
        self.rows[table] = self.rows.get(table, 0) + rows
        self.copy[table] = self.copy.get(table, 0.0) + seconds


async def _copy(conn: Any, table: str, rows: list[tuple], t: Timings) -> None:
    if not rows:
        return
    t0 = time.perf_counter()
    await conn.copy_records_to_table(table, records=rows, columns=COLUMNS[table])
    t.add(table, len(rows), time.perf_counter() - t0)


def _threaded(gen: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Run a generator in a thread, `depth` items ahead: Python builds rows while PostgreSQL parses."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            for item in gen:
                q.put(item)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the consumer)
            failure.append(exc)
        finally:
            q.put(done)

    threading.Thread(target=run, daemon=True).start()
    while True:
        item = q.get()
        if item is done:
            if failure:
                raise failure[0]
            return
        yield item


async def _next(it: Iterator[Any]) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, next, it, None)


async def schema_objects(conn: Any, tables: tuple[str, ...]) -> tuple[list[tuple], list[tuple]]:
    """(secondary indexes, non-primary-key constraints) of `tables`, as (table, name, definition)."""
    indexes = await conn.fetch(
        "SELECT c.relname AS tbl, i.relname AS name, pg_get_indexdef(x.indexrelid) AS def "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid "
        "JOIN pg_namespace ns ON ns.oid = c.relnamespace "
        "WHERE ns.nspname = 'public' AND c.relname = ANY($1::text[]) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid) ORDER BY 1, 2",
        list(tables),
    )
    constraints = await conn.fetch(
        "SELECT c.relname AS tbl, k.conname AS name, pg_get_constraintdef(k.oid) AS def, k.contype::text AS type "
        "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
        "JOIN pg_namespace ns ON ns.oid = c.relnamespace "
        "WHERE ns.nspname = 'public' AND c.relname = ANY($1::text[]) AND k.contype IN ('f', 'u') "
        "ORDER BY 1, 2",
        list(tables),
    )
    return (
        [(r["tbl"], r["name"], r["def"]) for r in indexes],
        [(r["tbl"], r["name"], r["def"], r["type"]) for r in constraints],
    )


async def drop_secondary(conn: Any, indexes: list[tuple], constraints: list[tuple]) -> None:
    for tbl, name, _def, _kind in sorted(constraints, key=lambda c: c[3] != "f"):  # foreign keys first
        await conn.execute(f'ALTER TABLE "{tbl}" DROP CONSTRAINT "{name}"')
    for _tbl, name, _def in indexes:
        await conn.execute(f'DROP INDEX "{name}"')


async def rebuild_secondary(
    url: str, indexes: list[tuple], constraints: list[tuple], t: Timings, workers: int = 2
) -> None:
    """Recreate what was dropped, from its own definitions, `workers` statements at a time.

    Unique constraints and indexes first (foreign keys need nothing but the primary keys).
    """
    import asyncpg

    jobs: list[tuple[str, str]] = [(tbl, definition) for tbl, _n, definition in indexes]
    jobs += [
        (tbl, f'ALTER TABLE "{tbl}" ADD CONSTRAINT "{name}" {definition}')
        for tbl, name, definition, kind in constraints
        if kind == "u"
    ]
    fks = [
        (tbl, f'ALTER TABLE "{tbl}" ADD CONSTRAINT "{name}" {definition}')
        for tbl, name, definition, kind in constraints
        if kind == "f"
    ]
    # biggest tables first, so the two workers finish together
    order = {name: n for n, name in enumerate(("client_timeline", "clients", "client_stage_changes"))}
    jobs.sort(key=lambda j: order.get(j[0], 9))

    async def worker(pending: list[tuple[str, str]]) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SET maintenance_work_mem = '512MB'")
            while pending:
                tbl, sql = pending.pop(0)
                t0 = time.perf_counter()
                await conn.execute(sql)
                t.build[tbl] = t.build.get(tbl, 0.0) + time.perf_counter() - t0
        finally:
            await conn.close()

    for batch in (jobs, fks):
        await asyncio.gather(*(worker(batch) for _ in range(workers)))


# --- the run ------------------------------------------------------------------------------------


async def migrate_database(url: str) -> None:
    import app  # noqa: F401  (sets PICCOLO_CONF before Piccolo is imported)
    from app.core import db
    from app.core.migrate import migrate

    db.configure(url)
    await db.start_pool(min_size=1, max_size=2)
    try:
        await migrate()
    finally:
        await db.close_pool()


def _marker(args: argparse.Namespace) -> str:
    return f"{MARKER}: clients={args.clients} events={args.events} seed={args.seed}"


async def prepare_database(args: argparse.Namespace) -> tuple[str, bool]:
    """(url, whether loaded data can be reused)."""
    import asyncpg

    server = server_url()
    admin = await asyncpg.connect(database_url(server, "postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", args.database)
        comment = await admin.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", args.database
        )
        if args.reuse and exists and comment and comment.startswith(_marker(args)):
            return database_url(server, args.database), True
        if args.reuse and exists:
            log(
                f"{args.database} exists but does not hold this data ({comment or 'no marker'}); regenerating"
            )
        await admin.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{args.database}"')
    finally:
        await admin.close()
    return database_url(server, args.database), False


async def seed_cast(conn: Any, w: World, rng: random.Random) -> None:
    """Staff, desks, members, rules (small: plain INSERTs)."""
    import pyotp

    from app.core.auth import passwords

    pw = passwords.hash_password(f"bench-{rng.random()}")  # nobody signs in with a password
    now = _dt(w.anchor)
    staff: list[tuple[str, str, list[str]]] = [
        (ADMIN_EMAIL, "Bench Admin", ["admin"]),
        (f"compliance1@{DOMAIN}", "Carla Compliance", ["compliance"]),
        (f"compliance2@{DOMAIN}", "Cem Compliance", ["compliance"]),
        (f"finance1@{DOMAIN}", "Fiona Finance", ["finance"]),
        (f"dealing1@{DOMAIN}", "Dario Dealing", ["dealing"]),
    ]
    firsts, lasts = NAMES["en"][0].split(), NAMES["en"][1].split()
    n_agents = AGENTS_PER_DESK * len(DESKS)
    for a in range(1, n_agents + 1):
        staff.append(
            (f"agent{a:02d}@{DOMAIN}", f"{firsts[a % len(firsts)]} {lasts[(a * 7) % len(lasts)]}", ["sales"])
        )
    rows = await conn.fetch(
        "INSERT INTO staff_users (email, name, password_hash, roles, is_active, totp_secret, totp_enabled, "
        "totp_last_step, created_at) SELECT e, n, $4, string_to_array(r, ','), true, $5, true, 0, $6 "
        "FROM unnest($1::text[], $2::text[], $3::text[]) AS x(e, n, r) RETURNING id, email",
        [s[0] for s in staff],
        [s[1] for s in staff],
        [",".join(s[2]) for s in staff],
        pw,
        pyotp.random_base32(),
        now - timedelta(days=365 * YEARS + 30),
    )
    w.staff = {r["email"]: r["id"] for r in rows}
    w.names = {w.staff[e]: name for e, name, _roles in staff}
    w.agents = [w.staff[f"agent{a:02d}@{DOMAIN}"] for a in range(1, n_agents + 1)]
    for d, (name, countries) in enumerate(DESKS.items()):
        desk = await conn.fetchval(
            "INSERT INTO routing_desks (name, active) VALUES ($1, true) RETURNING id", name
        )
        w.desks[name] = desk
        members = w.agents[d * AGENTS_PER_DESK : (d + 1) * AGENTS_PER_DESK]
        w.desk_agents[desk] = members
        # the first agent of each desk also covers the next desk (a second membership)
        extra = w.agents[((d + 1) % len(DESKS)) * AGENTS_PER_DESK]
        await conn.execute(
            "INSERT INTO routing_desk_members (desk, staff, capacity, active) "
            "SELECT $1, s, 500, true FROM unnest($2::int[]) AS s",
            desk,
            [*members, extra],
        )
        for c in countries:
            w.country_desk[c] = desk
        await conn.execute(
            "INSERT INTO routing_rules (priority, country, language, desk) SELECT 20, c, '', $2 "
            "FROM unnest($1::text[]) AS c",
            list(countries),
            desk,
        )


def plan_partners(w: World) -> None:
    """Clients 1..N_PARTNERS are the IBs; a few of them bring most referrals (Zipf-like)."""
    w.partner_ids = list(range(1, N_PARTNERS + 1))
    total = 0.0
    for n in w.partner_ids:
        total += 1.0 / n**0.9
        w.partner_cum.append(total)


async def insert_partners(conn: Any, w: World, rng: random.Random) -> None:
    """After the first chunk of clients (their rows must exist); a fifth are sub-IBs of the first fifty."""
    rows = [
        (pid, pid, f"IB{pid:04d}", rng.randrange(1, 51) if pid > 50 and rng.random() < 0.2 else None)
        for pid in w.partner_ids
    ]
    await conn.executemany(
        "INSERT INTO partners (id, client, code, parent, status, created_at) VALUES ($1, $2, $3, $4, 'active', $5)",
        [(*r, _dt(w.created[r[1] - 1] + 86400)) for r in rows],
    )


async def load(url: str, args: argparse.Namespace, t: Timings) -> World:
    import asyncpg

    from app.core.auth import passwords

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    anchor = today.timestamp()
    w = World(anchor=anchor, start=anchor - 365.25 * 86400 * YEARS, n=args.clients)
    rng = random.Random(args.seed)
    pools = Pools.build()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET synchronous_commit = off")
        has_tags = bool(await conn.fetchval("SELECT to_regclass('public.client_tags') IS NOT NULL"))
        await seed_cast(conn, w, rng)
        loaded = tuple(tb for tb in LOADED if has_tags or tb != "client_tags")
        indexes, constraints = await schema_objects(conn, loaded)
        if not args.keep_indexes:
            t0 = time.perf_counter()
            await drop_secondary(conn, indexes, constraints)
            log(
                f"dropped {len(indexes)} secondary indexes and {len(constraints)} unique/foreign-key "
                f"constraints for the load ({time.perf_counter() - t0:.1f} s)"
            )
        client_hash = passwords.hash_password(f"client-{rng.random()}")
        plan_partners(w)
        t_gen = time.perf_counter()
        log(f"pass 1: {args.clients:,} clients with assignments, attributions, lead sources, tags")
        chunks = _threaded(gen_clients(w, pools, args.seed, client_hash, has_tags))
        first = True
        while (ch := await _next(chunks)) is not None:
            await _copy(conn, "clients", ch.clients, t)
            if first:
                await insert_partners(conn, w, rng)
                t.rows["partners"] = N_PARTNERS
                first = False
            await _copy(conn, "routing_assignments", ch.assignments, t)
            await _copy(conn, "partner_attributions", ch.attributions, t)
            await _copy(conn, "lead_sources", ch.sources, t)
            await _copy(conn, "client_tags", ch.tags, t)
            done = t.rows["clients"]
            if done % 200_000 < CHUNK:
                log(f"  {done:>9,} clients  {time.perf_counter() - t_gen:6.1f} s")
        pass1 = time.perf_counter() - t_gen
        counts = extra_counts(w, args.seed, args.events)
        log(f"pass 2: stage history and {args.events:,} timeline events (max {max(counts):,} for one client)")
        t_gen = time.perf_counter()
        chunks = _threaded(gen_history(w, pools, args.seed, counts))
        while (cb := await _next(chunks)) is not None:
            await _copy(conn, "client_stage_changes", cb.changes, t)
            await _copy(conn, "client_timeline", cb.events, t)
            await _copy(conn, "client_notes", cb.notes, t)
            await _copy(conn, "client_tasks", cb.tasks, t)
            await _copy(conn, "client_messages", cb.messages, t)
            done = t.rows["client_timeline"]
            if done // 1_000_000 != (done - len(cb.events)) // 1_000_000:
                log(f"  {done:>9,} events   {time.perf_counter() - t_gen:6.1f} s")
        pass2 = time.perf_counter() - t_gen
        log(f"generated and copied: pass 1 {pass1:.1f} s, pass 2 {pass2:.1f} s")
        for tb in loaded:
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{tb}', 'id'), coalesce((SELECT max(id) FROM {tb}), 1))"
            )
        if not args.keep_indexes:
            t0 = time.perf_counter()
            await rebuild_secondary(url, indexes, constraints, t)
            log(f"rebuilt indexes and constraints: {time.perf_counter() - t0:.1f} s")
            after = await schema_objects(conn, loaded)
            if after != (indexes, constraints):
                gone = (set(indexes) | set(constraints)) - (set(after[0]) | set(after[1]))
                new = (set(after[0]) | set(after[1])) - (set(indexes) | set(constraints))
                raise SystemExit(
                    f"rebuilt indexes/constraints differ from the migrated schema: {gone} vs {new}"
                )
            log(
                f"verified: {len(indexes)} indexes and {len(constraints)} constraints identical to the migrated schema"
            )
    finally:
        await conn.close()
    return w


async def finish(url: str, t: Timings) -> float:
    """VACUUM (ANALYZE): statistics for the planner, and the visibility map a long-lived table has."""
    import asyncpg

    t0 = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()
    return time.perf_counter() - t0


async def describe(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        rows = await conn.fetch(
            "SELECT c.relname, c.reltuples::bigint AS est, pg_size_pretty(pg_table_size(c.oid)) AS heap, "
            "pg_size_pretty(pg_indexes_size(c.oid)) AS idx FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname = ANY($1::text[]) "
            "ORDER BY pg_total_relation_size(c.oid) DESC",
            list(LOADED),
        )
        log(f"\n{'table':<24} {'rows (est.)':>12} {'heap':>10} {'indexes':>10}")
        for r in rows:
            log(f"{r['relname']:<24} {r['est']:>12,} {r['heap']:>10} {r['idx']:>10}")
        log(f"database size: {size}")
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument(
        "--reuse", action="store_true", help="keep the database if it already holds this data"
    )
    parser.add_argument(
        "--keep-indexes", action="store_true", help="load into the migrated schema as is (no drop/rebuild)"
    )
    args = parser.parse_args()
    if args.clients < N_PARTNERS * 2 or args.events < args.clients:
        parser.error(f"--clients must be at least {N_PARTNERS * 2} and --events at least --clients")

    import app  # noqa: F401  (sets PICCOLO_CONF before Piccolo is imported)

    started = time.perf_counter()
    url, reusable = asyncio.run(prepare_database(args))
    t0 = time.perf_counter()
    asyncio.run(migrate_database(url))
    log(f"database {args.database}: migrated in {time.perf_counter() - t0:.1f} s")
    if reusable:
        log(f"reusing the loaded data ({_marker(args)})")
        asyncio.run(describe(url))
        return 0
    t = Timings()
    asyncio.run(load(url, args, t))
    vacuum = asyncio.run(finish(url, t))
    total = time.perf_counter() - started
    log(f"\n{'table':<24} {'rows':>12} {'COPY s':>8} {'index/constraint s':>19}")
    for tb in LOADED:
        if tb in t.rows:
            log(f"{tb:<24} {t.rows[tb]:>12,} {t.copy.get(tb, 0.0):>8.1f} {t.build.get(tb, 0.0):>19.1f}")
    log(f"VACUUM (ANALYZE): {vacuum:.1f} s")
    log(
        f"total: {total:.1f} s ({total / 60:.1f} min), {'into the migrated schema as is' if args.keep_indexes else 'indexes and constraints rebuilt after the load'}"
    )
    asyncio.run(_mark(args, url))
    asyncio.run(describe(url))
    return 0


async def _mark(args: argparse.Namespace, url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        note = f"{_marker(args)} loaded={datetime.now(UTC):%Y-%m-%dT%H:%MZ} admin={ADMIN_EMAIL}"
        await conn.execute(f"COMMENT ON DATABASE \"{args.database}\" IS '{note}'")
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
