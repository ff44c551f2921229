"""Compliance's settings of the risk model: the country list (FATF-seeded, editable), the model's
points and thresholds, and the declared sources of funds. Every change reassesses the affected
clients in a background job (`risk.enqueue_reassessment`)."""

from __future__ import annotations

from typing import Any

import pycountry

from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors
from app.kyc import dossier, parameters
from app.kyc.queue import require_reviewer
from app.kyc.risk import MAX_NOTE, SOURCE_LABELS, enqueue_reassessment, funds_sources
from app.kyc.tables import RISK_LEVELS

# --- staff: the country list and the model's settings --------------------------------------------


async def countries_for(viewer: Principal) -> dict[str, Any]:
    require_reviewer(viewer)
    rows = await db.fetch(
        "SELECT r.country, r.risk, r.source, r.note, r.updated_at, s.name AS updated_by_name "
        "FROM kyc_country_risks r LEFT JOIN staff_users s ON s.id = r.updated_by "
        "ORDER BY CASE r.risk WHEN 'high' THEN 0 ELSE 1 END, r.country"
    )
    for r in rows:
        r["name"] = dossier.country_name(r["country"])
        r["source_label"] = SOURCE_LABELS.get(r["source"], r["source"])
    return {
        "countries": rows,
        "country_options": dossier.country_options(),
        "risk_choices": [("high", "High"), ("medium", "Medium")],
        "country_errors": {},
        "country_values": {},
    }


def _country_code(raw: str) -> str:
    code = (raw or "").strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise FormErrors({"country": "Choose a country from the list."})
    return code


async def save_country(viewer: Principal, country: str, risk: str, note: str, actor: Actor) -> bool:
    """Add a country to the list or change its rating; its clients are reassessed by a job."""
    require_reviewer(viewer)
    code = _country_code(country)
    note = " ".join((note or "").split())
    if risk not in ("medium", "high"):
        raise FormErrors({"risk": "Choose medium or high (a country not on the list is low)."})
    if len(note) > MAX_NOTE:
        raise FormErrors({"note": f"Keep the note under {MAX_NOTE} characters."})
    async with transaction():
        before = await db.fetchrow(
            "SELECT risk, source, note FROM kyc_country_risks WHERE country = $1 FOR UPDATE", code
        )
        if before is not None and (before["risk"], before["note"]) == (risk, note):
            return False
        source = before["source"] if before is not None and before["risk"] == risk else "internal"
        await db.fetch(
            "INSERT INTO kyc_country_risks (country, risk, source, note, updated_at, updated_by) "
            "VALUES ({}, {}, {}, {}, now(), {}) ON CONFLICT (country) DO UPDATE SET risk = EXCLUDED.risk, "
            "source = EXCLUDED.source, note = EXCLUDED.note, updated_at = now(), updated_by = EXCLUDED.updated_by",
            code,
            risk,
            source,
            note,
            viewer.id,
        )
        await audit.record(
            actor,
            "kyc.country_risk_changed",
            "country",
            code,
            before=dict(before) if before else {"risk": "low"},
            after={"risk": risk, "source": source, "note": note},
        )
        enqueue_reassessment(code)
    return True


async def remove_country(viewer: Principal, country: str, actor: Actor) -> bool:
    """Take a country off the list (it becomes low); its clients are reassessed by a job."""
    require_reviewer(viewer)
    code = _country_code(country)
    async with transaction():
        rows = await db.fetch(
            "DELETE FROM kyc_country_risks WHERE country = {} RETURNING risk, source, note", code
        )
        if not rows:
            return False
        await audit.record(
            actor, "kyc.country_risk_changed", "country", code, before=rows[0], after={"risk": "low"}
        )
        enqueue_reassessment(code)
    return True


async def settings_for(viewer: Principal) -> dict[str, Any]:
    require_reviewer(viewer)
    values = await parameters.values()
    return {
        "specs": [(k, parameters.SPECS[k]) for k in parameters.RISK_KEYS],
        "param_values": {k: str(values[k]) for k in parameters.RISK_KEYS},
        "funds_sources": await funds_sources(active_only=False),
        "risk_levels": RISK_LEVELS,
        "settings_errors": {},
        "funds_errors": {},
        "funds_values": {},
        "high_count": await _count("high"),
        "medium_count": await _count("medium"),
    }


async def _count(level: str) -> int:
    row = await db.fetchrow("SELECT count(*) AS n FROM kyc_profiles WHERE risk = $1", level)
    return int(row["n"]) if row else 0


async def save_settings(viewer: Principal, raw: dict[str, str], actor: Actor) -> bool:
    require_reviewer(viewer)
    async with transaction():
        changed = await parameters.save(viewer, raw, actor, keys=parameters.RISK_KEYS)
        if changed:
            enqueue_reassessment()
    return changed


async def save_funds_source(
    viewer: Principal, code: str, label: str, risk: str, active: bool, actor: Actor
) -> bool:
    """Add a source of funds, or change the label, rating or availability of one."""
    require_reviewer(viewer)
    code = (code or "").strip().lower()
    label = " ".join((label or "").split())
    errors: dict[str, str] = {}
    if not code or len(code) > 40 or not code.replace("_", "").isalnum() or not code.isascii():
        errors["code"] = "A code is 1–40 lowercase letters, digits and underscores."
    if not label or len(label) > 100:
        errors["label"] = "Give the source a name (up to 100 characters)."
    if risk not in RISK_LEVELS:
        errors["risk"] = "Choose low, medium or high."
    if errors:
        raise FormErrors(errors)
    async with transaction():
        before = await db.fetchrow(
            "SELECT label, risk, active FROM kyc_funds_sources WHERE code = $1 FOR UPDATE", code
        )
        after = {"label": label, "risk": risk, "active": bool(active)}
        if before == after:
            return False
        await db.fetch(
            "INSERT INTO kyc_funds_sources (code, label, risk, sort_order, active) VALUES ({}, {}, {}, "
            "(SELECT COALESCE(max(sort_order), 0) + 10 FROM kyc_funds_sources), {}) ON CONFLICT (code) DO UPDATE "
            "SET label = EXCLUDED.label, risk = EXCLUDED.risk, active = EXCLUDED.active",
            code,
            label,
            risk,
            bool(active),
        )
        await audit.record(
            actor, "kyc.funds_source_changed", "funds_source", code, before=before, after=after
        )
        if before is not None and before["risk"] != risk:
            enqueue_reassessment()
    return True
