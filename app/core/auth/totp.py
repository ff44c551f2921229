"""TOTP (RFC 6238) with single use of each code, QR enrolment and recovery codes."""

from __future__ import annotations

import hashlib
import secrets
import time

import pyotp
import segno

ISSUER = "FX CRM"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """An inline SVG QR code: no image file, no third-party service sees the secret."""
    return segno.make(uri, error="m").svg_inline(scale=5, border=2)


def matching_step(secret: str, code: str, last_step: int, now: float | None = None) -> int | None:
    """The time step a code belongs to (±1 step of drift), if it is valid and newer than `last_step`.

    Returning the step lets the caller store it, so the same code is never accepted twice.
    """
    code = (code or "").strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int((now if now is not None else time.time()) // totp.interval)
    for step in (current - 1, current, current + 1):
        if step <= last_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes(n: int = 10) -> list[str]:
    return [f"{secrets.token_hex(3)}-{secrets.token_hex(3)}" for _ in range(n)]


def hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()
