from __future__ import annotations

from datetime import timedelta

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.core import live
from app.core.auth import sessions
from app.core.auth.principal import Principal
from app.settings import get_settings


def principal_from_row(row: dict) -> Principal | None:
    if row["user_kind"] == "staff":
        if not row["st_active"]:
            return None
        return Principal(
            kind="staff",
            id=row["user_id"],
            email=row["st_email"],
            name=row["st_name"],
            session_id=row["id"],
            mfa_passed=row["mfa_passed"],
            totp_enabled=row["st_totp"],
            roles=frozenset(row["st_roles"] or ()),
        )
    if not row["c_active"]:
        return None
    return Principal(
        kind="client",
        id=row["user_id"],
        email=row["c_email"],
        name=f"{row['first_name']} {row['last_name']}".strip(),
        session_id=row["id"],
        mfa_passed=row["mfa_passed"],
        totp_enabled=row["c_totp"],
        partner_id=row["partner_id"] if row["partner_status"] == "active" else None,
        email_verified=row["email_verified_at"] is not None,
    )


class SessionAuthMiddleware(AbstractAuthenticationMiddleware):
    """Attach the session's Principal (or None) to every HTTP request and WebSocket."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        key = connection.cookies.get(sessions.COOKIE)
        principal = None
        if key:
            row = await sessions.lookup(key, timedelta(minutes=get_settings().security.session_idle_minutes))
            if row is not None:
                principal = principal_from_row(row)
        live.ORIGIN.set(principal.session_id if principal else None)
        return AuthenticationResult(user=principal, auth=key if principal else None)
