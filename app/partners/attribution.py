"""Referral attribution: which partner brought a client, and the evidence for it.

A click on `/r/<code>` leaves a signed first-party cookie holding the click's token; registration
turns that click (or, failing that, the referring IB code a lead arrived with) into one
`Attribution` row. The first attribution stands: later clicks never move a client to another IB.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core import audit
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import fetch, transaction
from app.core.errors import NotFound
from app.partners.tables import Partner, ReferralClick
from app.settings import get_settings

log = logging.getLogger(__name__)

COOKIE = "fxref"
COOKIE_MAX_AGE = 30 * 24 * 3600
CLICK_LIMIT = 30
"""Clicks recorded per address per CLICK_WINDOW: beyond it a bot's flood writes no rows."""
CLICK_WINDOW = timedelta(minutes=10)


def _signature(token: str) -> str:
    key = get_settings().security.secret_key.encode()
    return hmac.new(key, f"fxref:{token}".encode(), hashlib.sha256).hexdigest()


def sign(token: str) -> str:
    return f"{token}.{_signature(token)}"


def unsign(value: str | None) -> str | None:
    """The click token if the cookie is ours and untouched; None for anything else."""
    if not value or "." not in value:
        return None
    token, _, sig = value.rpartition(".")
    if token and hmac.compare_digest(sig, _signature(token)):
        return token
    return None


async def record_click(code: str, *, landing_page: str, ip: str, user_agent: str) -> str | None:
    """The click's token for the cookie, or None when the code names no active partner.

    Each address gets CLICK_LIMIT recorded clicks per CLICK_WINDOW. Beyond that nothing is
    written, yet the visitor is still sent on with a cookie: the token of their own latest click
    on this partner (so its evidence still counts), or an unrecorded one. A person following a
    link must never meet an error, and a bot must not fill the table.
    """
    partner = (
        await Partner.select(Partner.id)
        .where((Partner.code == code.strip().upper()) & (Partner.status == "active"))
        .first()
    )
    if partner is None:
        return None
    ip = ip[:64]
    now = datetime.now(UTC)
    async with transaction():
        # One address at a time, so simultaneous clicks cannot all slip under the limit.
        await fetch("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", "referral-click:" + ip)
        [recent] = await fetch(
            "SELECT count(*) AS clicks, (SELECT token FROM referral_clicks WHERE ip = {} AND partner = {} "
            "AND clicked_at > {} ORDER BY clicked_at DESC, id DESC LIMIT 1) AS latest "
            "FROM referral_clicks WHERE ip = {} AND clicked_at > {}",
            ip,
            partner["id"],
            now - CLICK_WINDOW,
            ip,
            now - CLICK_WINDOW,
        )
        if recent["clicks"] >= CLICK_LIMIT:
            log.info("referral clicks from %s over the limit; not recorded", ip)
            return str(recent["latest"] or secrets.token_urlsafe(24))
        token = secrets.token_urlsafe(24)
        await ReferralClick(
            partner=partner["id"],
            token=token,
            clicked_at=now,
            landing_page=landing_page[:2000],
            ip=ip,
            user_agent=user_agent[:400],
        ).save()
    return token


async def _from_click(client_id: int, token: str) -> dict[str, Any] | None:
    rows = await fetch(
        "SELECT c.id AS click, c.partner, p.code, c.clicked_at, c.landing_page FROM referral_clicks c "
        "JOIN partners p ON p.id = c.partner "
        "WHERE c.token = {} AND p.status = 'active' AND p.client <> {}",
        token,
        client_id,
    )
    return {**rows[0], "source": "link"} if rows else None


async def _from_lead_code(client_id: int) -> dict[str, Any] | None:
    rows = await fetch(
        "SELECT NULL::integer AS click, p.id AS partner, p.code, NULL::timestamptz AS clicked_at, "
        "s.landing_page FROM lead_sources s "
        "JOIN partners p ON p.code = upper(s.referring_ib_code) AND p.status = 'active' AND p.client <> {} "
        "WHERE s.client = {} AND s.referring_ib_code <> '' ORDER BY s.id LIMIT 1",
        client_id,
        client_id,
    )
    return {**rows[0], "source": "code"} if rows else None


async def attribute_at_registration(client_id: int, referral_token: str | None, actor: Actor) -> bool:
    """Attribute a client who just registered; runs inside the registration's transaction.

    The referral cookie's click wins over a code the lead was captured with; a client's own code
    and any existing attribution are left alone. True when an attribution was written.
    """
    found = await fetch("SELECT 1 FROM partner_attributions WHERE client = {}", client_id)
    if found:
        return False
    evidence = await _from_click(client_id, referral_token) if referral_token else None
    evidence = evidence or await _from_lead_code(client_id)
    if evidence is None:
        return False
    rows = await fetch(
        "INSERT INTO partner_attributions "
        "(client, partner, source, click, clicked_at, landing_page, attributed_at) "
        "VALUES ({}, {}, {}, {}, {}, {}, {}) ON CONFLICT (client) DO NOTHING RETURNING id",
        client_id,
        evidence["partner"],
        evidence["source"],
        evidence["click"],
        evidence["clicked_at"],
        evidence["landing_page"] or "",
        datetime.now(UTC),
    )
    if not rows:
        return False
    clicked_at = evidence["clicked_at"]
    await audit.record(
        actor,
        "client.attributed",
        "client",
        client_id,
        after={
            "partner_id": evidence["partner"],
            "partner_code": evidence["code"],
            "source": evidence["source"],
            "clicked_at": clicked_at.isoformat() if clicked_at else None,
            "landing_page": evidence["landing_page"] or "",
        },
    )
    return True


async def attribution_of(viewer: Principal, client_id: int) -> dict[str, Any] | None:
    """For the staff client page: who referred this client and how (the caller has checked access)."""
    if not viewer.is_staff:
        raise NotFound("client")
    rows = await fetch(
        "SELECT a.source, a.clicked_at, a.landing_page, a.attributed_at, p.code "
        "FROM partner_attributions a JOIN partners p ON p.id = a.partner WHERE a.client = {}",
        client_id,
    )
    return rows[0] if rows else None


def mask_email(email: str) -> str:
    """`a***@example.com`: enough for an IB to recognise a client, not to contact them around us."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


async def funnel_of(partner_id: int) -> dict[str, Any]:
    """An IB's own figures and referred clients: only rows attributed to this partner."""
    counts = await fetch(
        "SELECT (SELECT count(*) FROM referral_clicks WHERE partner = {}) AS clicks, "
        "(SELECT count(*) FROM partner_attributions WHERE partner = {}) AS registrations",
        partner_id,
        partner_id,
    )
    rows = await fetch(
        "SELECT c.first_name, c.last_name, c.email, c.stage, a.source, a.attributed_at "
        "FROM partner_attributions a JOIN clients c ON c.id = a.client "
        "WHERE a.partner = {} ORDER BY a.attributed_at DESC, a.id DESC LIMIT 200",
        partner_id,
    )
    clients = [
        {
            "name": f"{r['first_name']} {r['last_name']}".strip(),
            "email": mask_email(r["email"]),
            "stage": r["stage"],
            "source": r["source"],
            "registered_at": r["attributed_at"],
        }
        for r in rows
    ]
    return {"clicks": counts[0]["clicks"], "registrations": counts[0]["registrations"], "clients": clients}
