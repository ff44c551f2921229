"""KYC levels and the rights they grant, computed from approved documents.

Rights are checked here, by the services that use them (opening a live account, depositing,
withdrawing) calling `require_right`, never only by hiding a button. A client's level is what
their approved, unexpired documents (and the appropriateness test, where required) earn on their
entity type's ladder, rank by rank: a rank counts only if every rank below it is met too.
`recompute_level` stores the result, audits a change, moves the lifecycle stage and tells open
pages; every service that approves, rejects or expires a document calls it in its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from app.core import audit, db, live
from app.core.audit import Actor
from app.core.db import transaction
from app.workbench.timeline import record_event

RIGHT_LABELS = {
    "portal": "use the client portal",
    "demo_accounts": "open demo accounts",
    "live_accounts": "open live trading accounts",
    "deposits": "deposit",
    "withdrawals": "withdraw",
}
CATEGORY_LABELS = {
    "identity": "an identity document (passport, ID card or driving licence)",
    "address": "a proof of address (utility bill or bank statement)",
    "selfie": "a selfie",
    "source_of_funds": "a proof of your source of funds",
    "corporate": "the company documents",
}


@dataclass(frozen=True)
class Rights:
    client_id: int
    entity_type: str
    level: int
    level_name: str
    rights: frozenset[str]
    deposit_limit: Decimal | None
    currency: str
    blocked: bool = False  # a compliance block (a confirmed sanctions match): the portal only

    def allows(self, right: str) -> bool:
        return right in self.rights


class RightDenied(PermissionError):
    """The client's KYC level does not grant this; `message` tells them what would."""

    def __init__(self, right: str, message: str) -> None:
        super().__init__(message)
        self.right = right
        self.message = message


async def ladder(entity_type: str) -> list[dict[str, Any]]:
    return await db.fetch(
        "SELECT rank, name, required_categories, requires_appropriateness, rights, deposit_limit, "
        "deposit_limit_currency FROM kyc_levels WHERE entity_type = {} ORDER BY rank",
        entity_type,
    )


async def profile_of(client_id: int, *, lock: bool = False) -> dict[str, Any]:
    """The client's KYC profile, created (level 0, individual) the first time it is needed."""
    await db.fetch(
        "INSERT INTO kyc_profiles (client, entity_type, level, nationality, address, source_of_funds, "
        "updated_at) VALUES ({}, 'individual', 0, '', '', '', now()) ON CONFLICT (client) DO NOTHING",
        client_id,
    )
    row = await db.fetchrow(
        "SELECT * FROM kyc_profiles WHERE client = $1" + (" FOR UPDATE" if lock else ""), client_id
    )
    assert row is not None
    return row


async def approved_categories(client_id: int, today: date | None = None) -> set[str]:
    """Categories with at least one approved document that has not expired."""
    rows = await db.fetch(
        "SELECT DISTINCT category FROM kyc_documents WHERE client = {} AND status = 'approved' "
        "AND (expires_on IS NULL OR expires_on >= {})",
        client_id,
        today or datetime.now(UTC).date(),
    )
    return {r["category"] for r in rows}


def earned_rank(ladder_rows: list[dict[str, Any]], categories: set[str], appropriate: bool) -> int:
    earned = 0
    for level in ladder_rows:
        if not set(level["required_categories"]) <= categories:
            break
        if level["requires_appropriateness"] and not appropriate:
            break
        earned = level["rank"]
    return earned


async def _appropriate(profile: dict[str, Any]) -> bool:
    """The client's latest appropriateness result passed (issue 4: level 2 needs it "passed"; a
    failed one limits leverage and may be retaken after the cooldown)."""
    if profile["appropriateness_at"] is None:
        return False
    row = await db.fetchrow(
        "SELECT passed FROM kyc_appropriateness_results WHERE client = $1 ORDER BY taken_at DESC, id DESC LIMIT 1",
        profile["client"],
    )
    return bool(row and row["passed"])


async def rights_for(client_id: int) -> Rights:
    profile = await profile_of(client_id)
    rows = await ladder(profile["entity_type"])
    level = next((r for r in rows if r["rank"] == profile["level"]), None)
    if level is None:  # a rank removed from the configuration: the nearest one below
        below = [r for r in rows if r["rank"] <= profile["level"]]
        level = below[-1] if below else {"rank": 0, "name": "Registered", "rights": [], "deposit_limit": None}
        level.setdefault("deposit_limit_currency", "USD")
    from app.screening.services import is_blocked

    blocked = await is_blocked(client_id)
    return Rights(
        client_id=client_id,
        entity_type=profile["entity_type"],
        level=level["rank"],
        level_name=level["name"],
        rights=frozenset({"portal"}) if blocked else frozenset(level["rights"]),
        deposit_limit=level["deposit_limit"],
        currency=level["deposit_limit_currency"],
        blocked=blocked,
    )


async def require_right(client_id: int, right: str) -> Rights:
    """Raise `RightDenied` (with what would grant it) unless the client's level grants `right`."""
    rights = await rights_for(client_id)
    if rights.allows(right):
        return rights
    if rights.blocked:
        raise RightDenied(right, "Your account is restricted by our compliance team. Please contact support.")
    rows = await ladder(rights.entity_type)
    granting = next((r for r in rows if right in r["rights"]), None)
    what = RIGHT_LABELS.get(right, right)
    if granting is None:
        raise RightDenied(right, f"Your account cannot {what}.")
    have = await approved_categories(client_id)
    missing = [CATEGORY_LABELS.get(c, c) for c in granting["required_categories"] if c not in have]
    needs = []
    if missing:
        needs.append("upload " + " and ".join(missing))
    if granting["requires_appropriateness"]:
        profile = await profile_of(client_id)
        if not await _appropriate(profile):
            needs.append("complete the appropriateness questionnaire")
    tail = f": {', then '.join(needs)}" if needs else " once your documents are approved"
    raise RightDenied(
        right,
        f"To {what} you need verification level {granting['rank']} ({granting['name']}){tail}.",
    )


async def recompute_level(client_id: int, actor: Actor, reason: str) -> tuple[int, int]:
    """Store the level the client's documents earn now; (old, new). Runs in the caller's transaction
    (or its own), with the profile row locked so two reviews of one client cannot race."""
    from app.clients import lifecycle

    async with transaction():
        profile = await profile_of(client_id, lock=True)
        rows = await ladder(profile["entity_type"])
        new = earned_rank(rows, await approved_categories(client_id), await _appropriate(profile))
        old = int(profile["level"])
        if new == old:
            return old, new
        await db.fetch(
            "UPDATE kyc_profiles SET level = {}, level_changed_at = now(), updated_at = now() WHERE client = {}",
            new,
            client_id,
        )
        names = {r["rank"]: r["name"] for r in rows}
        await audit.record(
            actor,
            "kyc.level_changed",
            "client",
            client_id,
            before={"level": old},
            after={"level": new, "reason": reason},
        )
        direction = "raised" if new > old else "lowered"
        await record_event(
            client_id,
            "kyc",
            f"KYC level {direction} to {new} ({names.get(new, new)}): {reason}",
            "client",
            client_id,
        )
        stage = (await db.fetchrow("SELECT stage FROM clients WHERE id = $1", client_id) or {}).get("stage")
        if new > old and old == 0 and stage in ("registered", "kyc_pending"):
            if stage == "registered":
                await lifecycle.change_stage(client_id, "kyc_pending", actor, reason="documents submitted")
            await lifecycle.change_stage(client_id, "kyc_approved", actor, reason=reason)
        await live.publish(f"client:{client_id}", "kyc.level_changed", client_id=client_id, level=new)
        await live.publish(f"staff:client:{client_id}", "client_page.kyc", client_id=client_id)
        return old, new
