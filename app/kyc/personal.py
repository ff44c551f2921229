"""What an individual client declares about themselves for KYC: name, date of birth, nationality
and address.

Screening and risk depend on these (a date of birth cuts sanctions false positives; nationality
is a risk factor), so a change of name or date of birth queues a new sanctions screening after
commit, and any change reassesses the risk. Once an identity document is approved, the client can
no longer change their name or date of birth themselves: the document proves them, and a change
then goes through compliance (a new document).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pycountry

from app.core import audit, db, jobs
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.kyc import levels
from app.kyc.dossier import age_on, country_options
from app.workbench.timeline import record_event

MIN_AGE = 18
MAX_NAME = 100
MAX_ADDRESS = 500


async def details_for(p: Principal) -> dict[str, Any]:
    if not p.is_client:
        raise NotFound("details")
    profile = await levels.profile_of(p.id)
    client = await db.fetchrow("SELECT first_name, last_name FROM clients WHERE id = $1", p.id)
    assert client is not None
    locked = "identity" in await levels.approved_categories(p.id)
    return {
        "values": {
            "first_name": client["first_name"],
            "last_name": client["last_name"],
            "date_of_birth": profile["date_of_birth"].isoformat() if profile["date_of_birth"] else "",
            "nationality": profile["nationality"],
            "address": profile["address"],
        },
        "identity_locked": locked,
        "countries": country_options(),
        "today": datetime.now(UTC).date(),
    }


def validate(
    data: dict[str, str], *, identity_locked: bool, today: date
) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    if not identity_locked:
        for key, label in (("first_name", "first name"), ("last_name", "last name")):
            value = " ".join(data.get(key, "").split())
            if not value:
                errors[key] = f"Enter your {label} as on your identity document."
            elif len(value) > MAX_NAME:
                errors[key] = f"Keep the {label} under {MAX_NAME} characters."
            clean[key] = value
        raw = data.get("date_of_birth", "").strip()
        try:
            born = date.fromisoformat(raw)
        except ValueError:
            errors["date_of_birth"] = "Enter your date of birth (YYYY-MM-DD)."
        else:
            if born > today or age_on(born, today) > 120:
                errors["date_of_birth"] = "That date of birth is not possible."
            elif age_on(born, today) < MIN_AGE:
                errors["date_of_birth"] = f"You must be at least {MIN_AGE} to open an account."
            clean["date_of_birth"] = born
    nationality = data.get("nationality", "").strip().upper()
    if pycountry.countries.get(alpha_2=nationality) is None:
        errors["nationality"] = "Choose your nationality."
    clean["nationality"] = nationality
    address = data.get("address", "").strip()
    if not address:
        errors["address"] = "Enter your home address as on your proof of address."
    elif len(address) > MAX_ADDRESS:
        errors["address"] = f"Keep the address under {MAX_ADDRESS} characters."
    clean["address"] = address
    return clean, errors


async def save_details(p: Principal, data: dict[str, str], actor: Actor) -> dict[str, Any]:
    """Store the declaration; returns what changed ({field: (before, after)})."""
    if not p.is_client:
        raise NotFound("details")
    today = datetime.now(UTC).date()
    locked = "identity" in await levels.approved_categories(p.id)
    clean, errors = validate(data, identity_locked=locked, today=today)
    if errors:
        raise FormErrors(errors)
    async with transaction():
        profile = await levels.profile_of(p.id, lock=True)
        client = await db.fetchrow("SELECT first_name, last_name FROM clients WHERE id = $1 FOR UPDATE", p.id)
        assert client is not None
        before = {
            "first_name": client["first_name"],
            "last_name": client["last_name"],
            "date_of_birth": profile["date_of_birth"],
            "nationality": profile["nationality"],
            "address": profile["address"],
        }
        changed = {k: (before[k], v) for k, v in clean.items() if before[k] != v}
        if not changed:
            return {}
        if "first_name" in changed or "last_name" in changed:
            await db.fetch(
                "UPDATE clients SET first_name = {}, last_name = {} WHERE id = {}",
                clean["first_name"],
                clean["last_name"],
                p.id,
            )
        await db.fetch(
            "UPDATE kyc_profiles SET date_of_birth = {}, nationality = {}, address = {}, updated_at = now() "
            "WHERE client = {}",
            clean.get("date_of_birth", profile["date_of_birth"]),
            clean["nationality"],
            clean["address"],
            p.id,
        )
        await audit.record(
            actor,
            "kyc.details_changed",
            "client",
            p.id,
            before={k: str(v[0]) if v[0] is not None else None for k, v in changed.items()},
            after={k: str(v[1]) for k, v in changed.items()},
        )
        labels = {"first_name": "name", "last_name": "name", "date_of_birth": "date of birth"}
        what = sorted({labels.get(k, k) for k in changed})
        await record_event(p.id, "kyc", "Declared details changed: " + ", ".join(what), "client", p.id)
        from app.clients.cache import summaries
        from app.kyc import risk

        await summaries.forget(p.id)
        await risk.reassess(p.id, actor, "declared details changed")
        if {"first_name", "last_name", "date_of_birth"} & changed.keys():
            jobs.enqueue_after_commit(
                "screening_screen_client",
                key=f"screening:client:{p.id}:{datetime.now(UTC).timestamp()}",
                client_id=p.id,
            )
    return changed
