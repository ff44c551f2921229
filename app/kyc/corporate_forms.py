"""What a corporate client declares, parsed strictly: the company and each director or owner.
Pure functions (no database), shared by the portal and the staff forms of `app.kyc.corporate`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pycountry

from app.core.errors import FormErrors
from app.kyc import dossier
from app.kyc.tables import PERSON_ROLES

MIN_DIRECTOR_AGE = 16
REGISTRATION_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ./-]{0,58}[A-Za-z0-9]$|^[A-Za-z0-9]$")


def _country(raw: str, field: str, errors: dict[str, str]) -> str:
    code = (raw or "").strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        errors[field] = "Choose a country from the list."
    return code


def parse_company(form: Mapping[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    name = " ".join((form.get("name") or "").split())
    number = " ".join((form.get("registration_number") or "").split()).upper()
    if len(name) < 2 or len(name) > 200:
        errors["name"] = "Enter the company's registered name."
    if not number:
        errors["registration_number"] = "Enter the registration number from the certificate of incorporation."
    elif not REGISTRATION_NUMBER.match(number):
        errors["registration_number"] = "Use letters, digits, spaces and . / - only (up to 60)."
    country = _country(form.get("country", ""), "country", errors)
    if errors:
        raise FormErrors(errors)
    return {"name": name, "registration_number": number, "country": country}


def parse_person(form: Mapping[str, str], role: str, *, today: date | None = None) -> dict[str, Any]:
    today = today or datetime.now(UTC).date()
    errors: dict[str, str] = {}
    if role not in PERSON_ROLES:
        raise FormErrors({"role": "Choose director or beneficial owner."})
    name = " ".join((form.get("full_name") or "").split())
    if len(name) < 2 or len(name) > 200 or not any(ch.isalpha() for ch in name):
        errors["full_name"] = "Enter the person's full name as on their passport."
    born: date | None = None
    raw = (form.get("date_of_birth") or "").strip()
    try:
        born = date.fromisoformat(raw) if raw else None
    except ValueError:
        born = None
    if born is None:
        errors["date_of_birth"] = (
            "Enter the date of birth (YYYY-MM-DD)." if raw else "Enter the date of birth."
        )
    elif born >= today or born.year < 1900:
        errors["date_of_birth"] = "Enter a real date of birth."
    elif role == "director" and dossier.age_on(born, today) < MIN_DIRECTOR_AGE:
        errors["date_of_birth"] = f"A director must be at least {MIN_DIRECTOR_AGE} years old."
    nationality = _country(form.get("nationality", ""), "nationality", errors)
    ownership: Decimal | None = None
    if role == "ubo":
        text = (form.get("ownership") or "").strip().replace(",", ".").rstrip("%").strip()
        try:
            ownership = Decimal(text) if text else None
        except InvalidOperation:
            ownership = None
        if ownership is None or not ownership.is_finite():
            errors["ownership"] = "Enter the share this person owns, in per cent (e.g. 40)."
        elif ownership <= 0 or ownership > 100:
            errors["ownership"] = "A share is more than 0 and at most 100 per cent."
        elif ownership != ownership.quantize(Decimal("0.01")):
            errors["ownership"] = "Use at most two decimals."
    if errors:
        raise FormErrors(errors)
    return {
        "role": role,
        "full_name": name,
        "date_of_birth": born,
        "nationality": nationality,
        "ownership": ownership,
    }


def percent(value: Decimal) -> str:
    """40.50 → "40.5", 100.00 → "100"."""
    return format(value.normalize(), "f")
