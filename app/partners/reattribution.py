"""Staff re-attribution: setting, changing or removing a client's IB by hand, with a reason.

Who may: admin and compliance. An attribution decides who is paid commission on a client's
trading, so moving it is a control over money, kept with the people who answer for controls.
Sales agents (who may have their own IB relationships to favour) and finance (who pays the
commission) are deliberately left out: neither should choose the payee.

The attribution being replaced is copied into `partner_attribution_changes` with its evidence
(click, landing page, when), so a decision can always be traced back to what it overrode.
A choice that would close a referral loop (a client referred by their own IB code, or by an IB
who is below the client in the network or was brought in by the client) is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.clients.services import get_client_for
from app.core import audit, db, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.partners.tables import AttributionChange
from app.workbench.timeline import record_event

ROLES = ("admin", "compliance")
MAX_REASON = 1000
MAX_CODE = 24

# Everyone "above" a client in the referral network: the IB they are attributed to, and, when the
# client is an IB, their master IB; repeated upwards. UNION (not UNION ALL) stops at a repeat.
_UPLINE = """
WITH RECURSIVE up(client) AS (
    SELECT $1::integer
    UNION
    SELECT next.client FROM up CROSS JOIN LATERAL (
        SELECT p.client FROM partner_attributions a JOIN partners p ON p.id = a.partner
        WHERE a.client = up.client
        UNION ALL
        SELECT master.client FROM partners me JOIN partners master ON master.id = me.parent
        WHERE me.client = up.client
    ) next
)
SELECT EXISTS (SELECT 1 FROM up WHERE client = $2) AS loops
"""

_CURRENT = (
    "SELECT a.id, a.partner, a.source, a.click, a.clicked_at, a.landing_page, a.attributed_at, p.code "
    "FROM partner_attributions a JOIN partners p ON p.id = a.partner WHERE a.client = $1"
)


def may_reattribute(p: Principal) -> bool:
    return p.is_staff and p.has_role(*ROLES)


async def attribution_panel_for(viewer: Principal, client_id: int) -> dict[str, Any]:
    """The client page's IB block: the attribution, its history, and the form for those who may."""
    if not viewer.is_staff:
        raise NotFound("client")
    client = await get_client_for(viewer, client_id)
    history = await db.fetch(
        "SELECT h.id, h.changed_at, h.reason, h.old_source, h.old_clicked_at, h.old_landing_page, "
        "op.code AS old_code, np.code AS new_code, s.name AS changed_by_name "
        "FROM partner_attribution_changes h "
        "LEFT JOIN partners op ON op.id = h.old_partner LEFT JOIN partners np ON np.id = h.new_partner "
        "JOIN staff_users s ON s.id = h.changed_by "
        "WHERE h.client = {} ORDER BY h.changed_at DESC, h.id DESC LIMIT 100",
        client_id,
    )
    return {
        "client": client,
        "attribution": await db.fetchrow(_CURRENT, client_id),
        "attribution_history": history,
        "can_reattribute": may_reattribute(viewer),
        "attribution_loaded": True,
        "attribution_errors": {},
        "attribution_values": {},
    }


def _evidence(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "partner_id": row["partner"],
        "partner_code": row["code"],
        "source": row["source"],
        "click_id": row["click"],
        "clicked_at": row["clicked_at"].isoformat() if row["clicked_at"] else None,
        "landing_page": row["landing_page"],
    }


async def _check_target(client_id: int, code: str, current: dict[str, Any] | None) -> dict[str, Any]:
    """The partner named by `code`, or FormErrors saying exactly why it cannot be chosen."""
    partner = await db.fetchrow(
        "SELECT id, code, status, client FROM partners WHERE upper(code) = $1", code.upper()
    )
    if partner is None:
        raise FormErrors({"ib_code": f"No IB has the code {code}."})
    if partner["status"] != "active":
        raise FormErrors({"ib_code": f"IB {partner['code']} is {partner['status']}; choose an active IB."})
    if partner["client"] == client_id:
        raise FormErrors({"ib_code": "A client cannot be referred by their own IB code."})
    if current is not None and current["partner"] == partner["id"]:
        raise FormErrors({"ib_code": f"This client is already attributed to {partner['code']}."})
    loop = await db.fetchrow(_UPLINE, partner["client"], client_id)
    if loop and loop["loops"]:
        raise FormErrors(
            {
                "ib_code": f"IB {partner['code']} is in this client's own network (below them, or brought "
                "in by them), so this attribution would make a referral loop."
            }
        )
    return partner


async def reattribute(viewer: Principal, client_id: int, code: str, reason: str, actor: Actor) -> str:
    """Attribute the client to the IB with `code`, or remove the attribution when `code` is empty.

    Returns "set", "changed" or "removed". All or nothing: history, attribution, audit, timeline
    and live event commit together; concurrent changes of one client run one after the other.
    """
    if not may_reattribute(viewer):
        raise PermissionError("Only administrators and compliance may change a client's IB.")
    await get_client_for(viewer, client_id)
    code, reason = code.strip(), reason.strip()
    errors: dict[str, str] = {}
    if not reason:
        errors["ib_reason"] = "Give a reason for the change."
    elif len(reason) > MAX_REASON:
        errors["ib_reason"] = f"Keep the reason under {MAX_REASON} characters."
    if len(code) > MAX_CODE:
        errors["ib_code"] = f"An IB code has at most {MAX_CODE} characters."
    now = datetime.now(UTC)
    async with transaction():
        if await db.fetchrow("SELECT id FROM clients WHERE id = $1 FOR UPDATE", client_id) is None:
            raise NotFound("client")
        current = await db.fetchrow(_CURRENT, client_id)
        partner: dict[str, Any] | None = None
        if "ib_code" not in errors:
            try:
                if code:
                    partner = await _check_target(client_id, code, current)
                elif current is None:
                    errors["ib_code"] = "Enter the code of the IB to attribute this client to."
            except FormErrors as exc:
                errors.update(exc.errors)
        if errors:
            raise FormErrors(errors)
        await AttributionChange(
            client=client_id,
            old_partner=current["partner"] if current else None,
            old_source=current["source"] if current else "",
            old_click=current["click"] if current else None,
            old_clicked_at=current["clicked_at"] if current else None,
            old_landing_page=current["landing_page"] if current else "",
            old_attributed_at=current["attributed_at"] if current else None,
            new_partner=partner["id"] if partner else None,
            reason=reason,
            changed_by=viewer.id,
            changed_at=now,
        ).save()
        if partner is None:
            await db.fetch("DELETE FROM partner_attributions WHERE client = {}", client_id)
            outcome, summary = (
                "removed",
                f"IB attribution removed (was {current['code'] if current else '—'})",
            )
        elif current is None:
            await db.fetch(
                "INSERT INTO partner_attributions (client, partner, source, click, clicked_at, landing_page, "
                "attributed_at) VALUES ({}, {}, 'staff', NULL, NULL, '', {})",
                client_id,
                partner["id"],
                now,
            )
            outcome, summary = "set", f"IB set to {partner['code']}"
        else:
            await db.fetch(
                "UPDATE partner_attributions SET partner = {}, source = 'staff', click = NULL, "
                "clicked_at = NULL, landing_page = '', attributed_at = {} WHERE client = {}",
                partner["id"],
                now,
                client_id,
            )
            outcome, summary = "changed", f"IB changed from {current['code']} to {partner['code']}"
        await audit.record(
            actor,
            "client.ib_reattributed",
            "client",
            client_id,
            before=_evidence(current),
            after={
                "partner_id": partner["id"] if partner else None,
                "partner_code": partner["code"] if partner else None,
                "source": "staff" if partner else None,
                "reason": reason,
            },
        )
        await record_event(
            client_id, "ib", f"{summary} by {viewer.name}: {reason}", "client", client_id, at=now
        )
        await live.publish("staff:all", "client.changed", client_id=client_id)
        await live.publish(f"staff:client:{client_id}", "client_page.attribution", client_id=client_id)
    return outcome
