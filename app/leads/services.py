"""Lead capture from websites and landing pages: validate, find an existing person, or create a lead.

A person already known by e-mail or phone is never duplicated: the new capture is added to their
timeline as another source, so marketing attribution is kept and the sales team sees one record.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import phonenumbers
import pycountry

from app.clients import lifecycle
from app.clients.services import get_client_for
from app.clients.tables import Client
from app.core import audit, jobs, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import fetch, transaction
from app.core.errors import FormErrors, NotFound
from app.leads.tables import CHANNELS, LeadSource
from app.routing import services as routing
from app.workbench.timeline import record_event

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_SOURCES = 200  # a person captured more often than this is a bot, not a marketing history

LIMITS = {
    "first_name": 100,
    "last_name": 100,
    "email": 320,
    "phone": 32,
    "country": 60,
    "language": 8,
    "campaign": 200,
    "utm_source": 200,
    "utm_medium": 200,
    "utm_campaign": 200,
    "utm_term": 200,
    "utm_content": 200,
    "landing_page": 2000,
    "referring_ib_code": 24,
    "account_type_interest": 50,
}
SOURCE_FIELDS = (
    "campaign",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "landing_page",
    "referring_ib_code",
    "account_type_interest",
)


@dataclass
class LeadData:
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    country: str = ""
    language: str = ""
    campaign: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    landing_page: str = ""
    referring_ib_code: str = ""
    account_type_interest: str = ""

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> LeadData:
        names = {f.name for f in fields(cls)}
        return cls(**{k: "" if v is None else str(v) for k, v in data.items() if k in names})


def _country(value: str) -> str | None:
    """ISO 3166-1 alpha-2 from alpha-2, alpha-3 or the English name."""
    value = value.strip()
    if value.isdigit():
        return None
    try:
        return str(pycountry.countries.lookup(value).alpha_2)
    except LookupError:
        return None


def validate(data: LeadData) -> LeadData:
    """The cleaned lead (e-mail lower-case, phone E.164, country alpha-2), or FormErrors per field."""
    raw = {k: v.strip() for k, v in asdict(data).items()}
    errors: dict[str, str] = {}
    for name, limit in LIMITS.items():
        if len(raw[name]) > limit:
            errors[name] = f"At most {limit} characters."
    if not raw["first_name"] and "first_name" not in errors:
        errors["first_name"] = "First name is required."
    if not raw["last_name"] and "last_name" not in errors:
        errors["last_name"] = "Last name is required."
    raw["email"] = raw["email"].lower()
    if "email" not in errors and not EMAIL_RE.match(raw["email"]):
        errors["email"] = "Enter a valid e-mail address, like name@example.com."
    if raw["country"] and "country" not in errors:
        alpha2 = _country(raw["country"])
        if alpha2 is None:
            errors["country"] = "Unknown country: use an ISO 3166 code (e.g. DE or DEU) or its English name."
        else:
            raw["country"] = alpha2
    if raw["phone"] and "phone" not in errors:
        region = raw["country"] if "country" not in errors and raw["country"] else None
        try:
            number = phonenumbers.parse(raw["phone"], region)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_valid_number(number):
            errors["phone"] = "Enter a valid phone number with its country code, like +44 20 7946 0958."
        else:
            raw["phone"] = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if raw["language"] and "language" not in errors:
        lang = pycountry.languages.get(alpha_2=raw["language"].lower()) if len(raw["language"]) == 2 else None
        if lang is None:
            errors["language"] = "Use an ISO 639-1 language code, like en or de."
        else:
            raw["language"] = raw["language"].lower()
    if (
        raw["landing_page"]
        and "landing_page" not in errors
        and not raw["landing_page"].startswith(("http://", "https://"))
    ):
        errors["landing_page"] = "Use the page's full http(s) address."
    if errors:
        raise FormErrors(errors)
    return LeadData(**raw)


async def _lock(*keys: str) -> None:
    """Serialise captures of the same person, so two simultaneous posts cannot both create them."""
    for key in sorted(k for k in keys if k):
        await fetch("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", "lead:" + key)


async def capture_lead(
    data: LeadData, *, channel: str, api_key_id: int | None, actor: Actor
) -> tuple[int, bool]:
    """(client id, created). All or nothing: client, source row, audit and live event commit together."""
    assert channel in CHANNELS
    lead = validate(data)
    source = {name: getattr(lead, name) for name in SOURCE_FIELDS}
    now = datetime.now(UTC)
    async with transaction():
        await _lock(lead.email, lead.phone)
        found = await fetch(
            "SELECT id FROM clients WHERE lower(email) = {} OR ({} <> '' AND phone = {}) "
            "ORDER BY (lower(email) = {}) DESC, id LIMIT 1",
            lead.email,
            lead.phone,
            lead.phone,
            lead.email,
        )
        if found:
            client_id = int(found[0]["id"])
            created = False
        else:
            client = Client(
                email=lead.email,
                first_name=lead.first_name,
                last_name=lead.last_name,
                phone=lead.phone,
                country=lead.country,
                language=lead.language or "en",
                stage="lead",
                stage_changed_at=now,
                created_at=now,
            )
            await client.save()
            client_id = int(client.id)
            created = True
            jobs.enqueue_after_commit(
                "screening_screen_client", key=f"screening:client:{client_id}", client_id=client_id
            )
            await lifecycle.record_history(
                client_id, None, "lead", actor, reason=f"lead captured ({channel})", at=now
            )
            await routing.route_lead(client_id, actor)
        await LeadSource(
            client=client_id, channel=channel, api_key=api_key_id, created_at=now, **source
        ).save()
        after = {
            "channel": channel,
            "email": lead.email,
            "phone": lead.phone,
            "country": lead.country,
            **source,
        }
        await audit.record(
            actor, "lead.captured" if created else "lead.merged", "client", client_id, after=after
        )
        await live.publish("staff:all", "client.changed", client_id=client_id)
        await record_event(
            client_id, "lead", f"Lead {'captured' if created else 'merged'} ({channel})", "client", client_id
        )
    return client_id, created


async def sources_for(viewer: Principal, client_id: int) -> list[dict[str, Any]]:
    """Every capture of this client, newest first, with the key or form it came through.

    404 (as for a missing client) to anyone who may not see the client; clients never see it.
    """
    if not viewer.is_staff:
        raise NotFound("client")
    await get_client_for(viewer, client_id)
    return await fetch(
        "SELECT s.id, s.channel, s.campaign, s.utm_source, s.utm_medium, s.utm_campaign, s.utm_term, "
        "s.utm_content, s.landing_page, s.referring_ib_code, s.account_type_interest, s.created_at, "
        "k.name AS api_key_name, k.prefix AS api_key_prefix "
        "FROM lead_sources s LEFT JOIN api_keys k ON k.id = s.api_key "
        "WHERE s.client = {} ORDER BY s.created_at DESC, s.id DESC LIMIT {}",
        client_id,
        MAX_SOURCES,
    )
