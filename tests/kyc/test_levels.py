"""KYC levels gate rights: what a client may do follows from their approved, unexpired documents."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from app.core import db
from app.core.audit import Actor
from app.core.tables import AuditEvent
from app.kyc import levels
from app.kyc.levels import RightDenied
from app.kyc.tables import Document, DocumentType, KycProfile
from app.workbench.tables import TimelineEvent

SYSTEM = Actor.system("pytest")


async def approve(client_id: int, code: str, *, expires_on: date | None = None) -> int:
    doc_type = await DocumentType.select().where(DocumentType.code == code).first()
    now = datetime.now(UTC)
    row = Document(
        client=client_id,
        doc_type=doc_type["id"],
        category=doc_type["category"],
        status="approved",
        created_at=now,
        submitted_at=now,
        reviewed_at=now,
        expires_on=expires_on,
    )
    await row.save()
    return int(row.id)


async def stage_of(client_id: int) -> str:
    return (await db.fetchrow("SELECT stage FROM clients WHERE id = $1", client_id))["stage"]


async def test_the_default_ladder_is_seeded_for_individuals_and_companies(database):
    individual = await levels.ladder("individual")
    assert [(r["rank"], r["required_categories"]) for r in individual] == [
        (0, []),
        (1, ["identity"]),
        (2, ["identity", "address"]),
    ]
    assert individual[2]["requires_appropriateness"] and individual[1]["deposit_limit"] == Decimal("2000.00")
    corporate = await levels.ladder("corporate")
    assert corporate[1]["required_categories"] == ["corporate", "identity"]
    assert await DocumentType.count().where(DocumentType.two_sided.eq(True)) == 2  # ID card, licence


async def test_a_registered_client_may_use_the_portal_and_demo_accounts_only(personas):
    a = personas["client_a"].id
    rights = await levels.rights_for(a)
    assert (rights.level, rights.rights) == (0, frozenset({"portal", "demo_accounts"}))
    await levels.require_right(a, "demo_accounts")
    with pytest.raises(RightDenied) as denied:
        await levels.require_right(a, "live_accounts")
    assert denied.value.message == (
        "To open live trading accounts you need verification level 1 (Identity verified): "
        "upload an identity document (passport, ID card or driving licence)."
    )


async def test_an_approved_identity_document_raises_the_level_and_moves_the_stage(personas):
    a = personas["client_a"].id  # at stage registered
    await approve(a, "passport", expires_on=date.today() + timedelta(days=900))
    assert await levels.recompute_level(a, SYSTEM, "passport approved") == (0, 1)
    rights = await levels.rights_for(a)
    assert rights.allows("live_accounts") and rights.allows("deposits") and not rights.allows("withdrawals")
    assert (rights.deposit_limit, rights.currency) == (Decimal("2000.00"), "USD")
    assert await stage_of(a) == "kyc_approved"
    changed = await AuditEvent.select(AuditEvent.before, AuditEvent.after).where(
        AuditEvent.action == "kyc.level_changed"
    )
    assert json.loads(changed[0]["before"]) == {"level": 0} and json.loads(changed[0]["after"])["level"] == 1
    kinds = [
        r["kind"] for r in await TimelineEvent.select(TimelineEvent.kind).where(TimelineEvent.client == a)
    ]
    assert "kyc" in kinds
    assert await levels.recompute_level(a, SYSTEM, "again") == (1, 1)  # nothing more to do
    assert await AuditEvent.count().where(AuditEvent.action == "kyc.level_changed") == 1


async def test_withdrawals_need_the_address_and_the_appropriateness_test(personas):
    a = personas["client_a"].id
    await approve(a, "id_card")
    await approve(a, "utility_bill")
    assert (await levels.recompute_level(a, SYSTEM, "approved"))[1] == 1  # no questionnaire yet
    with pytest.raises(RightDenied) as denied:
        await levels.require_right(a, "withdrawals")
    assert denied.value.message.endswith("complete the appropriateness questionnaire.")
    await KycProfile.update(
        {KycProfile.appropriateness_score: 80, KycProfile.appropriateness_at: datetime.now(UTC)}
    ).where(KycProfile.client == a)
    await db.fetch(
        "INSERT INTO kyc_appropriateness_results (client, taken_at, points, max_points, score, max_leverage, "
        "passed, band_label, answers) VALUES ({}, now(), 80, 100, 80, 30, true, 'pass', '{{}}'::jsonb)",
        a,
    )
    assert await levels.recompute_level(a, SYSTEM, "questionnaire passed") == (1, 2)
    assert (await levels.require_right(a, "withdrawals")).deposit_limit is None


async def test_an_address_alone_earns_nothing_without_identity(personas):
    a = personas["client_a"].id
    await approve(a, "bank_statement")
    assert await levels.recompute_level(a, SYSTEM, "approved") == (0, 0)


async def test_an_expired_identity_document_lowers_the_level_and_its_rights(personas):
    a = personas["client_a"].id
    await approve(a, "passport", expires_on=date.today() - timedelta(days=1))
    assert await levels.recompute_level(a, SYSTEM, "approved") == (0, 0)  # already expired
    await db.fetch("UPDATE kyc_documents SET expires_on = {} WHERE client = {}", date.today(), a)
    assert await levels.recompute_level(a, SYSTEM, "approved") == (0, 1)  # valid through today
    await db.fetch("UPDATE kyc_documents SET expires_on = {} WHERE client = {}", date(2020, 1, 1), a)
    assert await levels.recompute_level(a, SYSTEM, "passport expired") == (1, 0)
    assert not (await levels.rights_for(a)).allows("deposits")
    assert await stage_of(a) == "kyc_approved"  # the stage is history; the rights are what changed


async def test_a_company_needs_its_documents_and_a_director_s_identity(personas):
    b = personas["client_b"].id
    await levels.profile_of(b)
    await KycProfile.update({KycProfile.entity_type: "corporate"}).where(KycProfile.client == b)
    await approve(b, "director_passport")
    assert await levels.recompute_level(b, SYSTEM, "approved") == (0, 0)
    await approve(b, "incorporation_certificate")
    assert await levels.recompute_level(b, SYSTEM, "approved") == (0, 1)
    assert (await levels.rights_for(b)).deposit_limit == Decimal("10000.00")


async def test_a_compliance_block_leaves_the_portal_and_nothing_else(personas):
    a = personas["client_a"].id
    await approve(a, "passport", expires_on=date.today() + timedelta(days=900))
    await levels.recompute_level(a, SYSTEM, "approved")
    assert (await levels.rights_for(a)).allows("deposits")
    await db.fetch(
        "INSERT INTO compliance_blocks (client, reason, active_client, created_at) VALUES ({}, 'true match', {}, now())",
        a,
        a,
    )
    rights = await levels.rights_for(a)
    assert rights.blocked and rights.rights == frozenset({"portal"}) and rights.level == 1
    with pytest.raises(RightDenied) as denied:
        await levels.require_right(a, "demo_accounts")
    assert (
        denied.value.message == "Your account is restricted by our compliance team. Please contact support."
    )
