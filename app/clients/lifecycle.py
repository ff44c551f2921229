"""The client lifecycle: which stage may follow which, and the one function that moves a client.

Every domain (registration, KYC, funding, the dormancy job, staff) changes a client's stage
through `change_stage`, so the rules, the stage history, the audit trail and the live events
cannot drift apart. Staff may only make the few moves that are a judgement call; the others
are facts that belong to the domain that observes them (KYC approves, funding funds).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.clients.cache import summaries
from app.clients.tables import STAGES, Client, StageChange
from app.core import audit, db, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.workbench.timeline import record_event

TRANSITIONS: dict[str, frozenset[str]] = {
    "lead": frozenset({"registered"}),
    "registered": frozenset({"kyc_pending"}),
    "kyc_pending": frozenset({"kyc_approved", "registered"}),  # back to registered: KYC rejected
    "kyc_approved": frozenset({"funded"}),
    "funded": frozenset({"active", "dormant"}),
    "active": frozenset({"dormant", "churned"}),
    "dormant": frozenset({"active", "churned"}),
    "churned": frozenset({"active"}),  # reactivation
}
assert set(TRANSITIONS) == set(STAGES)
assert all(to in STAGES for targets in TRANSITIONS.values() for to in targets)

MANUAL: dict[str, frozenset[str]] = {
    "active": frozenset({"churned"}),
    "dormant": frozenset({"active", "churned"}),
    "churned": frozenset({"active"}),
}
"""What staff may decide by hand (never into kyc_approved or funded: only KYC and funding may)."""
assert all(to in TRANSITIONS[frm] for frm, targets in MANUAL.items() for to in targets)

MANUAL_ROLES = ("admin", "sales", "compliance")
MAX_REASON = 1000


def label(stage: str | None) -> str:
    return (stage or "new").replace("_", " ")


def may_change_manually(p: Principal) -> bool:
    return p.is_staff and p.has_role(*MANUAL_ROLES)


def manual_targets(stage: str) -> list[str]:
    """The stages staff may move a client at `stage` to, in lifecycle order."""
    allowed = MANUAL.get(stage, frozenset())
    return [s for s in STAGES if s in allowed]


async def change_stage(
    client_id: int,
    to_stage: str,
    actor: Actor,
    *,
    reason: str = "",
    manual_by: Principal | None = None,
) -> None:
    """Move the client to `to_stage` if the lifecycle allows it; a move to the current stage is a no-op.

    The client row is locked first, so two concurrent changes of one client run one after the
    other and the second sees the first's result. History, audit and cache all commit together.
    """
    reason = reason.strip()
    if to_stage not in STAGES:
        raise FormErrors({"stage": f"“{to_stage}” is not a lifecycle stage."})
    if manual_by is not None and not may_change_manually(manual_by):
        raise PermissionError("Your role does not allow changing a client's stage.")
    async with transaction():
        row = await db.fetchrow("SELECT id, stage FROM clients WHERE id = $1 FOR UPDATE", client_id)
        if row is None:
            raise NotFound("client")
        from_stage = row["stage"]
        if from_stage == to_stage:
            return
        if to_stage not in TRANSITIONS.get(from_stage, frozenset()):
            raise FormErrors(
                {"stage": f"A client cannot move from {label(from_stage)} to {label(to_stage)}."}
            )
        if manual_by is not None:
            errors: dict[str, str] = {}
            if to_stage not in MANUAL.get(from_stage, frozenset()):
                errors["stage"] = (
                    f"Staff cannot move a client from {label(from_stage)} to {label(to_stage)} by hand; "
                    "that change follows from the client's KYC, funding or activity."
                )
            if not reason:
                errors["reason"] = "Give a reason for the change."
            elif len(reason) > MAX_REASON:
                errors["reason"] = f"Keep the reason under {MAX_REASON} characters."
            if errors:
                raise FormErrors(errors)
        now = datetime.now(UTC)
        await Client.update({Client.stage: to_stage, Client.stage_changed_at: now}).where(
            Client.id == client_id
        )
        await record_history(client_id, from_stage, to_stage, actor, reason=reason, at=now)
        after: dict[str, Any] = {"stage": to_stage, "reason": reason}
        if manual_by is not None:
            after["manual"] = True
        await audit.record(
            actor, "client.stage_changed", "client", client_id, before={"stage": from_stage}, after=after
        )
        await summaries.forget(client_id)
        await live.publish("staff:all", "client.changed", client_id=client_id)
        await live.publish(f"client:{client_id}", "client.stage_changed", client_id=client_id, stage=to_stage)
        await live.publish(f"staff:client:{client_id}", "client_page.stage", client_id=client_id)


async def record_history(
    client_id: int,
    from_stage: str | None,
    to_stage: str,
    actor: Actor,
    *,
    reason: str = "",
    at: datetime | None = None,
) -> None:
    """Only the history row, inside the caller's transaction: for callers that write their own
    audit record of the same fact (registration, demo data) and so must not pass through
    `change_stage`, which would audit it a second time."""
    await StageChange(
        client=client_id,
        from_stage=from_stage,
        to_stage=to_stage,
        reason=reason,
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label[:320],
        changed_at=at or datetime.now(UTC),
    ).save()
    summary = f"Stage: {label(from_stage)} → {label(to_stage)}" + (f" ({reason})" if reason else "")
    await record_event(client_id, "stage", summary, "client", client_id, at=at)


async def history(client_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """Newest first (the id breaks ties between changes made in the same instant)."""
    return await (
        StageChange.select(
            StageChange.id,
            StageChange.from_stage,
            StageChange.to_stage,
            StageChange.reason,
            StageChange.actor_kind,
            StageChange.actor_label,
            StageChange.changed_at,
        )
        .where(StageChange.client == client_id)
        .order_by(StageChange.changed_at, ascending=False)
        .order_by(StageChange.id, ascending=False)
        .limit(limit)
    )


async def stage_panel_for(viewer: Principal, client_id: int) -> dict[str, Any]:
    """What the console's stage panel shows this viewer; 404 to whoever may not see the client.

    The manual-change form is offered only to roles that may use it (decided here, not in the template).
    """
    from app.clients.services import get_client_for

    client = await get_client_for(viewer, client_id)
    can_change = may_change_manually(viewer)
    targets = manual_targets(client["stage"]) if can_change else []
    return {
        "client": client,
        "stage_history": await history(client_id),
        "stage_targets": targets,
        "stage_options": [("", "Choose a stage"), *((s, label(s).capitalize()) for s in targets)],
        "can_change_stage": can_change,
        "stage_errors": {},
        "stage_values": {},
    }
