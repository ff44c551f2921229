"""The fixed cast every authorisation test uses.

Staff: admin, compliance, finance, sales, dealing (each with 2FA enrolled). Clients: client_a,
client_b. Partners: ib (a client with partner status) and sub_ib (under ib). The outsider is an
anonymous visitor. Sign-in for a persona creates a real server-side session, as the login
page would after password and second factor, without spending argon2 time in every test.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from app.clients.tables import Client
from app.core.auth import passwords, sessions
from app.core.auth.principal import Principal
from app.partners.tables import Partner
from app.routing.tables import Assignment, Desk, DeskMember
from app.staff.tables import StaffUser

PASSWORD = "persona-pass-2026"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
STAFF_ROLES = {
    "admin": ["admin"],
    "compliance": ["compliance"],
    "finance": ["finance"],
    "sales": ["sales"],
    "dealing": ["dealing"],
}


@functools.cache
def password_hash() -> str:
    return passwords.hash_password(PASSWORD)


def totp_now() -> str:
    return pyotp.TOTP(TOTP_SECRET).now()


@dataclass
class Persona:
    name: str
    kind: str  # staff | client | anonymous
    id: int = 0
    email: str = ""
    roles: list[str] = field(default_factory=list)
    partner_id: int | None = None


def principal_of(p: Persona) -> Principal:
    """The Principal the app builds for a signed-in persona (staff past 2FA, or a client): for
    calling services directly, as a controller would."""
    return Principal(
        kind="staff" if p.kind == "staff" else "client",
        id=p.id,
        email=p.email,
        name=p.name.title(),
        session_id=0,
        mfa_passed=True,
        totp_enabled=p.kind == "staff",
        roles=frozenset(p.roles),
    )


async def make_staff(name: str, roles: list[str], *, totp: bool = True) -> Persona:
    email = f"{name}@staff.test"
    row = StaffUser(
        email=email,
        name=name.title(),
        roles=roles,
        password_hash=password_hash(),
        created_at=datetime.now(UTC),
        totp_secret=TOTP_SECRET if totp else None,
        totp_enabled=totp,
    )
    await row.save()
    return Persona(name, "staff", row.id, email, roles)


async def make_client(name: str, *, stage: str = "registered", verified: bool = True) -> Persona:
    email = f"{name.replace('_', '.')}@client.test"
    now = datetime.now(UTC)
    row = Client(
        email=email,
        first_name=name.split("_")[0].title(),
        last_name=name.title(),
        country="DE",
        stage=stage,
        stage_changed_at=now,
        created_at=now,
        password_hash=password_hash(),
        email_verified_at=now if verified else None,
    )
    await row.save()
    return Persona(name, "client", row.id, email)


async def make_partner(p: Persona, code: str, parent: Persona | None = None) -> Persona:
    row = Partner(
        client=p.id, code=code, parent=parent.partner_id if parent else None, created_at=datetime.now(UTC)
    )
    await row.save()
    p.partner_id = row.id
    return p


async def put_on_desk(agent: Persona, client: Persona, desk_name: str = "Persona desk") -> int:
    """`agent` joins the desk (created if needed) and `client` lands in that desk's pool."""
    desk = await Desk.objects().get_or_create(Desk.name == desk_name, defaults={Desk.active: True})
    member = (DeskMember.desk == desk.id) & (DeskMember.staff == agent.id)
    if not await DeskMember.exists().where(member):
        await DeskMember(desk=desk.id, staff=agent.id).save()
    now = datetime.now(UTC)
    await Assignment(
        client=client.id,
        desk=desk.id,
        owner=None,
        assigned_at=now,
        first_contact_due_at=now + timedelta(hours=24),
        last_touched_at=now,
    ).save()
    return desk.id


@pytest.fixture
async def personas(database: str) -> dict[str, Persona]:
    cast: dict[str, Persona] = {}
    for name, roles in STAFF_ROLES.items():
        cast[name] = await make_staff(name, roles)
    cast["client_a"] = await make_client("client_a")
    cast["client_b"] = await make_client("client_b")
    await put_on_desk(cast["sales"], cast["client_a"])  # desk scoping: sales sees client_a, not client_b
    cast["ib"] = await make_partner(await make_client("ib_master", stage="active"), "IBTEST")
    cast["sub_ib"] = await make_partner(
        await make_client("sub_ib", stage="active"), "IBSUBTEST", parent=cast["ib"]
    )
    cast["outsider"] = Persona("outsider", "anonymous")
    return cast


async def session_for(p: Persona, *, mfa_passed: bool = True) -> str:
    key, _ = await sessions.create(
        "staff" if p.kind == "staff" else "client",
        p.id,
        idle=timedelta(minutes=30),
        absolute=timedelta(hours=12),
        mfa_passed=mfa_passed,
        ip="127.0.0.1",
        user_agent="pytest",
    )
    return key


async def sign_in(client, p: Persona) -> None:
    """Make the test client act as `p` (anonymous: no session cookie)."""
    client.cookies.clear()
    if p.kind != "anonymous":
        client.cookies.set(sessions.COOKIE, await session_for(p))
