"""What the provisioning tests share: account types on the simulator's groups, a client brought to
KYC level 1, an appropriateness cap, and the audit rows of trading accounts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from app.core import db
from app.core.audit import Actor
from app.core.tables import AuditEvent
from app.kyc import levels
from app.kyc.tables import Document, DocumentType
from app.trading.tables import AccountType
from tests.personas import Persona, principal_of


async def make_type(
    server_id: int,
    name: str,
    group: str,
    *,
    currency: str = "USD",
    leverages: str = "30,100,200,500",
    default: int = 100,
    demo: bool = False,
) -> int:
    now = datetime.now(UTC)
    row = AccountType(
        name=name,
        server=server_id,
        group_name=group,
        currency=currency,
        leverages=leverages,
        default_leverage=default,
        is_demo=demo,
        active=True,
        created_at=now,
        updated_at=now,
    )
    await row.save()
    return int(row.id)


async def make_types(server_id: int) -> dict[str, int]:
    """Demo USD, Standard USD (live) and Pro EUR (live) on the simulator's groups."""
    return {
        "demo": await make_type(server_id, "Demo USD", "demo\\forex-usd", leverages="100,500", demo=True),
        "standard": await make_type(server_id, "Standard USD", "real\\standard-usd"),
        "pro": await make_type(server_id, "Pro EUR", "real\\pro-eur", currency="EUR", leverages="50,100,200"),
    }


async def reach_level_one(client_id: int) -> None:
    """An approved passport: KYC level 1, which grants live accounts."""
    passport = await DocumentType.select().where(DocumentType.code == "passport").first()
    now = datetime.now(UTC)
    await Document(
        client=client_id,
        doc_type=passport["id"],
        category="identity",
        status="approved",
        created_at=now,
        submitted_at=now,
        reviewed_at=now,
        expires_on=date.today() + timedelta(days=900),
    ).save()
    assert (await levels.recompute_level(client_id, Actor.system("pytest"), "passport approved"))[1] == 1


async def cap_leverage(client_id: int, max_leverage: int) -> None:
    """As if the client's appropriateness questionnaire allowed up to 1:max_leverage."""
    await levels.profile_of(client_id)
    await db.fetch(
        "UPDATE kyc_profiles SET max_leverage = {}, appropriateness_at = now() WHERE client = {}",
        max_leverage,
        client_id,
    )


def actor_of(p: Persona) -> Actor:
    return principal_of(p).actor("127.0.0.1", "pytest")


async def account_audit(account_id: int) -> list[dict]:
    rows = (
        await AuditEvent.select()
        .where((AuditEvent.subject_type == "trading_account") & (AuditEvent.subject_id == str(account_id)))
        .order_by(AuditEvent.seq)
    )
    return [
        {**r, "before": json.loads(r["before"] or "null"), "after": json.loads(r["after"] or "null")}
        for r in rows
    ]


async def all_audit_text() -> str:
    rows = await AuditEvent.select(AuditEvent.before, AuditEvent.after)
    return json.dumps(rows, default=str)
