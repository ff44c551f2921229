"""Demo data: a believable small broker. Keyed by e-mail, so loading it twice changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app import demo_crowd
from app.clients import lifecycle
from app.clients.tables import Client
from app.core import audit
from app.core.audit import Actor
from app.core.auth import passwords
from app.core.db import transaction
from app.partners.tables import Partner
from app.routing import services as routing
from app.screening import lists as screening_lists
from app.staff.tables import StaffUser

STAFF_PASSWORD = "demo-staff-pass-2026"  # noqa: S105 (printed demo login)
CLIENT_PASSWORD = "demo-client-pass-2026"  # noqa: S105 (printed demo login)

STAFF = [
    ("admin@demo.fxcrm.test", "Alice Admin", ["admin"]),
    ("compliance@demo.fxcrm.test", "Carl Compliance", ["compliance"]),
    ("finance@demo.fxcrm.test", "Fiona Finance", ["finance"]),
    ("sales@demo.fxcrm.test", "Sam Sales", ["sales"]),
    ("dealing@demo.fxcrm.test", "Dana Dealing", ["dealing"]),
    ("sales.eu@demo.fxcrm.test", "Elena Europa", ["sales"]),
    ("sales.mena@demo.fxcrm.test", "Omar Haddad", ["sales"]),
]

# (email, first, last, country, stage)
CLIENTS = [
    ("lead@demo.fxcrm.test", "Lena", "Lead", "DE", "lead"),
    ("registered@demo.fxcrm.test", "Rafael", "Registered", "ES", "registered"),
    ("kyc.pending@demo.fxcrm.test", "Kim", "Pending", "GB", "kyc_pending"),
    ("kyc.approved@demo.fxcrm.test", "Karl", "Approved", "AT", "kyc_approved"),
    ("funded@demo.fxcrm.test", "Farah", "Funded", "AE", "funded"),
    ("active@demo.fxcrm.test", "Arjun", "Active", "IN", "active"),
    ("dormant@demo.fxcrm.test", "Dora", "Dormant", "IT", "dormant"),
    ("churned@demo.fxcrm.test", "Chen", "Churned", "SG", "churned"),
    ("ib@demo.fxcrm.test", "Ivan", "Broker", "CY", "active"),
    ("subib@demo.fxcrm.test", "Sofia", "Subbroker", "GR", "active"),
]
PARTNERS = [("ib@demo.fxcrm.test", "IBMASTER", None), ("subib@demo.fxcrm.test", "IBSUB01", "IBMASTER")]


# The road a demo client took to their stage (dormant and churned clients were active first).
_ROAD = ("lead", "registered", "kyc_pending", "kyc_approved", "funded", "active", "dormant", "churned")


def _stage_path(stage: str) -> tuple[str, ...]:
    return _ROAD[: _ROAD.index(stage) + 1]


async def load_demo() -> dict[str, int]:
    actor = Actor.system("fxcrm demo")
    created = {"staff": 0, "clients": 0, "partners": 0}
    now = datetime.now(UTC)
    staff_hash: str | None = None
    hashes: list[str] = []

    def client_hash() -> str:
        """argon2 is slow on purpose: hash the shared demo password once per run, and only if needed."""
        if not hashes:
            hashes.append(passwords.hash_password(CLIENT_PASSWORD))
        return hashes[0]

    async with transaction():
        for email, name, roles in STAFF:
            if await StaffUser.exists().where(StaffUser.email == email):
                continue
            staff_hash = staff_hash or passwords.hash_password(STAFF_PASSWORD)
            s = StaffUser(
                email=email,
                name=name,
                roles=roles,
                password_hash=staff_hash,
                created_at=now,
            )
            await s.save()
            await audit.record(actor, "staff.created", "staff", s.id, after={"email": email, "roles": roles})
            created["staff"] += 1
        for i, (email, first, last, country, stage) in enumerate(CLIENTS):
            if await Client.exists().where(Client.email == email):
                continue
            since = now - timedelta(days=60 - i * 5)
            path = _stage_path(stage)
            step = (now - timedelta(days=1) - since) / max(len(path) - 1, 1)
            moments = [since + step * n for n in range(len(path))]
            c = Client(
                email=email,
                first_name=first,
                last_name=last,
                country=country,
                stage=stage,
                stage_changed_at=moments[-1],
                created_at=since,
                email_verified_at=None if stage == "lead" else since,
                password_hash=None if stage == "lead" else client_hash(),
            )
            await c.save()
            await audit.record(
                actor, "client.created", "client", c.id, after={"email": email, "stage": stage}
            )
            for n, (frm, to) in enumerate(zip((None, *path[:-1]), path, strict=True)):
                await lifecycle.record_history(c.id, frm, to, actor, reason="demo data", at=moments[n])
            created["clients"] += 1
        for email, code, parent_code in PARTNERS:
            client = await Client.select(Client.id).where(Client.email == email).first()
            assert client is not None  # every partner's e-mail is in CLIENTS, created just above
            if await Partner.exists().where(Partner.client == client["id"]):
                continue
            parent = (
                await Partner.select(Partner.id).where(Partner.code == parent_code).first()
                if parent_code
                else None
            )
            p = Partner(
                client=client["id"], code=code, parent=parent["id"] if parent else None, created_at=now
            )
            await p.save()
            await audit.record(
                actor, "partner.granted", "partner", p.id, after={"client_id": client["id"], "code": code}
            )
            created["partners"] += 1
        crowd = await demo_crowd.load(actor, password_hash=client_hash)
        # The named clients too get a desk (by the crowd's routing rules), so every demo client
        # shows in some agent's scoped list; a second run finds them routed already.
        unrouted = await Client.raw(
            "SELECT c.id FROM clients c WHERE c.email = ANY({}) "
            "AND NOT EXISTS (SELECT 1 FROM routing_assignments a WHERE a.client = c.id) ORDER BY c.id",
            [email for email, *_ in CLIENTS],
        )
        for row in unrouted:
            await routing.route_lead(row["id"], actor)
    created["clients"] += crowd.pop("clients")
    # Synthetic sanctions lists (invented names), so the screening console has something to show.
    loaded = await screening_lists.load_samples(actor)
    created["sanctions_lists"] = sum(1 for r in loaded if r.created)
    # The MT5 simulator as a trading server, account types, and funded accounts when it answers.
    from app.trading import demo as trading_demo

    created.update(await trading_demo.load(actor))
    # Payment methods, rates, and card deposits moved on to the live MT5 accounts.
    from app.funding import demo as funding_demo

    created.update(await funding_demo.load(actor))
    created["verified_clients"] = await funding_demo.verify_clients(actor)
    try:
        created.update(await funding_demo.fund_clients(actor))
    finally:
        from app.trading import connections

        await connections.close_all()
    return {**created, **crowd}


def print_logins() -> None:
    print("\nDemo logins")
    print(
        f"  Staff console  /staff/login   password {STAFF_PASSWORD}  (2FA enrolment with a QR code at first sign-in)"
    )
    for email, _name, roles in STAFF:
        print(f"    {email:32} {', '.join(roles)}")
    print(f"  Client portal  /portal/login  password {CLIENT_PASSWORD}")
    for email, *_rest, stage in CLIENTS:
        if stage != "lead":
            print(f"    {email:32} {stage}")
    print(
        f"  IB portal      /ib/login      ib@demo.fxcrm.test (master IB), subib@demo.fxcrm.test (sub-IB), password {CLIENT_PASSWORD}"
    )
