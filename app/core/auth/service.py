"""Sign-in, second factor, passwords and e-mail verification for staff and clients alike.

Every outcome a regulator could ask about (login, failed login, logout, 2FA change, password
change) is audited in the same transaction as the change. Messages never reveal whether an
e-mail address has an account.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from piccolo.columns import Column

from app.clients.cache import summaries as client_summaries
from app.clients.tables import Client
from app.core import audit, live, mail
from app.core.audit import Actor
from app.core.auth import passwords, sessions, throttle, tokens, totp
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import NotFound
from app.core.tables import RecoveryCode
from app.settings import get_settings
from app.staff.tables import StaffUser

UserTable = type[StaffUser] | type[Client]
TABLES: dict[str, UserTable] = {"staff": StaffUser, "client": Client}
PORTAL_KIND = {"staff": "staff", "portal": "client", "ib": "client"}
GENERIC_LOGIN_ERROR = "Wrong e-mail or password."


class AuthError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class LoginOutcome:
    session_key: str
    session_id: int
    user_kind: str
    user_id: int
    needs_second_factor: bool
    needs_enrolment: bool


ClientLoginListener = Callable[[int, str, str], Awaitable[None]]
"""Told (client id, portal, ip) of each completed client sign-in, inside its transaction. The
client's timeline registers one; core knows nothing of timelines. Failed sign-ins stay in the audit."""
_client_login_listeners: list[ClientLoginListener] = []


def on_client_login(listener: ClientLoginListener) -> ClientLoginListener:
    if listener not in _client_login_listeners:
        _client_login_listeners.append(listener)
    return listener


async def _client_signed_in(client_id: int, portal: str, ip: str) -> None:
    for listener in _client_login_listeners:
        await listener(client_id, portal, ip)


def _display(kind: str, user: dict[str, Any]) -> str:
    return user["email"]


async def _own_row(principal: Principal, *columns: Column) -> dict[str, Any]:
    """The signed-in person's row; the session lookup found it a moment ago, but if it has gone
    since, answer 404 rather than fail on a missing row."""
    table = TABLES[principal.kind]
    user = await table.select(*columns).where(table.id == principal.id).first()
    if user is None:
        raise NotFound("user")
    return user


async def login(portal: str, email: str, password: str, *, ip: str, user_agent: str) -> LoginOutcome:
    settings = get_settings().security
    kind = PORTAL_KIND[portal]
    table = TABLES[kind]
    email = (email or "").strip().lower()
    if not email or not password:
        raise AuthError("Enter your e-mail and password.")
    try:
        await throttle.check(
            portal,
            email,
            ip,
            max_account=settings.login_max_failures_account,
            max_ip=settings.login_max_failures_ip,
            window=timedelta(minutes=settings.login_window_minutes),
        )
    except throttle.Throttled as exc:
        async with transaction():
            await audit.record(
                Actor("anonymous", None, email, ip, user_agent),
                "auth.login_throttled",
                kind,
                None,
                after={"portal": portal},
            )
        raise AuthError(str(exc)) from exc
    user = await table.select().where(table.email == email).first()
    ok = passwords.verify_password(user["password_hash"] if user else None, password)
    if not ok or not user or not user["is_active"]:
        async with transaction():
            await throttle.note(portal, email, ip, success=False)
            await audit.record(
                Actor("anonymous", None, email, ip, user_agent),
                "auth.login_failed",
                kind,
                user["id"] if user else None,
                after={"portal": portal},
            )
        raise AuthError(GENERIC_LOGIN_ERROR)
    async with transaction():
        updates: dict[Column | str, Any] = {table.last_login_at: datetime.now(UTC)}
        if passwords.needs_rehash(user["password_hash"]):
            updates[table.password_hash] = passwords.hash_password(password)
        await table.update(updates).where(table.id == user["id"])
        key, sid = await sessions.create(
            kind,
            user["id"],
            idle=timedelta(minutes=settings.session_idle_minutes),
            absolute=timedelta(hours=settings.session_absolute_hours),
            mfa_passed=not user["totp_enabled"] and kind == "client",
            ip=ip,
            user_agent=user_agent,
        )
        await throttle.note(portal, email, ip, success=True)
        if not user[
            "totp_enabled"
        ]:  # else the second factor clears them: a password alone must not reset the count
            await throttle.clear_account(portal, email)
        await audit.record(
            Actor(kind, str(user["id"]), email, ip, user_agent),
            "auth.login",
            kind,
            user["id"],
            after={"portal": portal, "session": sid, "second_factor_pending": bool(user["totp_enabled"])},
        )
        if kind == "client" and not user["totp_enabled"]:  # else complete once the second factor passes
            await _client_signed_in(user["id"], portal, ip)
    return LoginOutcome(
        session_key=key,
        session_id=sid,
        user_kind=kind,
        user_id=user["id"],
        needs_second_factor=bool(user["totp_enabled"]),
        needs_enrolment=kind == "staff" and not user["totp_enabled"],
    )


async def logout(principal: Principal, actor: Actor) -> None:
    async with transaction():
        await sessions.revoke(principal.session_id)
        await audit.record(
            actor, "auth.logout", principal.kind, principal.id, after={"session": principal.session_id}
        )
        await live.publish(f"session:{principal.session_id}", "session.ended")


async def verify_second_factor(principal: Principal, code: str, actor: Actor, portal: str) -> None:
    """Accept a TOTP code (each at most once) or an unused recovery code; then the session is complete."""
    settings = get_settings().security
    table = TABLES[principal.kind]
    ip = actor.ip or ""
    try:
        await throttle.check(
            portal,
            principal.email,
            ip,
            max_account=settings.login_max_failures_account,
            max_ip=settings.login_max_failures_ip,
            window=timedelta(minutes=settings.login_window_minutes),
        )
    except throttle.Throttled as exc:
        raise AuthError(str(exc), "code") from exc
    user = await table.select().where(table.id == principal.id).first()
    code = (code or "").strip()
    accepted_by = None
    async with transaction():
        if user and user["totp_enabled"] and user["totp_secret"]:
            step = totp.matching_step(user["totp_secret"], code, user["totp_last_step"])
            if step is not None:
                # Conditional update: a code raced by two requests is accepted by one only.
                updated = (
                    await table.update({table.totp_last_step: step})
                    .where((table.id == principal.id) & (table.totp_last_step < step))
                    .returning(table.id)
                )
                if updated:
                    accepted_by = "totp"
            elif "-" in code:
                used = (
                    await RecoveryCode.update({RecoveryCode.used_at: datetime.now(UTC)})
                    .where(
                        (RecoveryCode.user_kind == principal.kind)
                        & (RecoveryCode.user_id == principal.id)
                        & (RecoveryCode.code_hash == totp.hash_code(code))
                        & RecoveryCode.used_at.is_null()
                    )
                    .returning(RecoveryCode.id)
                )
                if used:
                    accepted_by = "recovery_code"
        if accepted_by is None:
            await throttle.note(portal, principal.email, ip, success=False)
            await audit.record(actor, "auth.2fa_failed", principal.kind, principal.id)
        else:
            await sessions.mark_mfa_passed(principal.session_id)
            await throttle.clear_account(portal, principal.email)
            await audit.record(
                actor, "auth.2fa_passed", principal.kind, principal.id, after={"method": accepted_by}
            )
            if principal.is_client:
                await _client_signed_in(principal.id, portal, ip)
    if accepted_by is None:
        raise AuthError(
            "That code is not valid (or was already used). Enter the current 6-digit code.", "code"
        )


async def start_enrolment(principal: Principal) -> tuple[str, str]:
    """A fresh secret (kept unconfirmed until a code proves the app has it); returns (secret, QR SVG)."""
    table = TABLES[principal.kind]
    user = await _own_row(principal, table.totp_secret, table.totp_enabled)
    if user["totp_enabled"]:
        raise AuthError("Two-factor authentication is already on.")
    secret = user["totp_secret"] or totp.new_secret()
    if not user["totp_secret"]:
        await table.update({table.totp_secret: secret}).where(table.id == principal.id)
    return secret, totp.qr_svg(totp.provisioning_uri(secret, principal.email))


async def confirm_enrolment(principal: Principal, code: str, actor: Actor) -> list[str]:
    table = TABLES[principal.kind]
    user = await _own_row(principal)
    if user["totp_enabled"]:
        raise AuthError("Two-factor authentication is already on.")
    step = totp.matching_step(user["totp_secret"] or "", code, user["totp_last_step"])
    if step is None:
        raise AuthError(
            "That code does not match. Check the time on your phone and enter the current code.", "code"
        )
    codes = totp.new_recovery_codes()
    async with transaction():
        await table.update({table.totp_enabled: True, table.totp_last_step: step}).where(
            table.id == principal.id
        )
        await sessions.changed(user_kind=principal.kind, user_id=principal.id)
        await RecoveryCode.delete().where(
            (RecoveryCode.user_kind == principal.kind) & (RecoveryCode.user_id == principal.id)
        )
        await RecoveryCode.insert(
            *[
                RecoveryCode(user_kind=principal.kind, user_id=principal.id, code_hash=totp.hash_code(c))
                for c in codes
            ]
        )
        await sessions.mark_mfa_passed(principal.session_id)
        await audit.record(actor, "auth.2fa_enabled", principal.kind, principal.id)
    return codes


async def _check_password_of_signed_in(
    principal: Principal, user: dict[str, Any], password: str, actor: Actor, field: str
) -> None:
    """Re-entering the password in settings is throttled like sign-in, so a stolen session
    cannot be used to guess the password."""
    settings = get_settings().security
    portal = "staff" if principal.is_staff else "portal"
    try:
        await throttle.check(
            portal,
            principal.email,
            actor.ip or "",
            max_account=settings.login_max_failures_account,
            max_ip=settings.login_max_failures_ip,
            window=timedelta(minutes=settings.login_window_minutes),
        )
    except throttle.Throttled as exc:
        raise AuthError(str(exc), field) from exc
    if not passwords.verify_password(user["password_hash"], password):
        await throttle.note(portal, principal.email, actor.ip or "", success=False)
        raise AuthError(
            "Your password is not correct."
            if field == "password"
            else "Your current password is not correct.",
            field,
        )


async def disable_second_factor(principal: Principal, password: str, actor: Actor) -> None:
    """Clients may turn 2FA off (with their password); staff may not — it is mandatory for them."""
    if principal.is_staff:
        raise AuthError("Two-factor authentication is mandatory for staff.")
    table = TABLES[principal.kind]
    user = await _own_row(principal)
    await _check_password_of_signed_in(principal, user, password, actor, "password")
    async with transaction():
        await table.update({table.totp_enabled: False, table.totp_secret: None}).where(
            table.id == principal.id
        )
        await RecoveryCode.delete().where(
            (RecoveryCode.user_kind == principal.kind) & (RecoveryCode.user_id == principal.id)
        )
        await sessions.changed(user_kind=principal.kind, user_id=principal.id)
        await audit.record(actor, "auth.2fa_disabled", principal.kind, principal.id)


async def change_password(principal: Principal, current: str, new: str, actor: Actor) -> tuple[str, int]:
    """Change the password, end every session of the user, and start a fresh one for this browser."""
    table = TABLES[principal.kind]
    user = await _own_row(principal)
    await _check_password_of_signed_in(principal, user, current, actor, "current_password")
    if problem := passwords.password_problem(new, principal.email):
        raise AuthError(problem, "new_password")
    settings = get_settings().security
    async with transaction():
        await table.update(
            {table.password_hash: passwords.hash_password(new), table.password_changed_at: datetime.now(UTC)}
        ).where(table.id == principal.id)
        ended = await sessions.revoke_all(principal.kind, principal.id)
        key, sid = await sessions.create(
            principal.kind,
            principal.id,
            idle=timedelta(minutes=settings.session_idle_minutes),
            absolute=timedelta(hours=settings.session_absolute_hours),
            mfa_passed=True,
            ip=actor.ip,
            user_agent=actor.user_agent,
        )
        await audit.record(
            actor, "auth.password_changed", principal.kind, principal.id, after={"sessions_ended": len(ended)}
        )
        for s in ended:
            await live.publish(f"session:{s}", "session.ended")
    return key, sid


async def request_password_reset(portal: str, email: str, actor: Actor) -> None:
    """Always answers the same way; mails a single-use link only if the account exists."""
    kind = PORTAL_KIND[portal]
    table = TABLES[kind]
    email = (email or "").strip().lower()
    user = (
        await table.select(table.id, table.is_active, table.password_hash).where(table.email == email).first()
    )
    if not user or not user["is_active"] or not user["password_hash"]:
        return  # a lead without a password registers first; reset is not a back door into the portal
    async with transaction():
        token = await tokens.issue("reset", kind, user["id"], timedelta(hours=1))
        login_portal = "staff" if kind == "staff" else "portal"
        await mail.queue_email(
            email,
            "password_reset",
            {"link": f"{get_settings().base_url}/{login_portal}/reset/{token}"},
            client_id=user["id"] if kind == "client" else None,
        )
        await audit.record(actor, "auth.reset_requested", kind, user["id"])


async def reset_password(token: str, new: str, actor: Actor) -> str:
    row = await tokens.peek("reset", token)
    if row is None:
        raise AuthError("This reset link has expired or was already used. Ask for a new one.")
    table = TABLES[row["user_kind"]]
    user = await table.select(table.email).where(table.id == row["user_id"]).first()
    if user is None:  # the account behind the token is gone: the link is as good as expired
        raise AuthError("This reset link has expired or was already used. Ask for a new one.")
    if problem := passwords.password_problem(new, user["email"]):
        raise AuthError(problem, "password")
    async with transaction():
        used = await tokens.consume("reset", token)
        if used is None:
            raise AuthError("This reset link has expired or was already used. Ask for a new one.")
        await table.update(
            {table.password_hash: passwords.hash_password(new), table.password_changed_at: datetime.now(UTC)}
        ).where(table.id == row["user_id"])
        ended = await sessions.revoke_all(row["user_kind"], row["user_id"])
        for portal in (
            ("staff",) if row["user_kind"] == "staff" else ("portal", "ib")
        ):  # "…or reset your password"
            await throttle.clear_account(portal, user["email"])
        await audit.record(
            actor,
            "auth.password_reset",
            row["user_kind"],
            row["user_id"],
            after={"sessions_ended": len(ended)},
        )
        for s in ended:
            await live.publish(f"session:{s}", "session.ended")
    return row["user_kind"]


async def send_verification_email(client_id: int, email: str) -> None:
    """Inside the caller's transaction: a single-use link proving the client owns the address."""
    token = await tokens.issue("verify", "client", client_id, timedelta(days=2))
    await mail.queue_email(
        email,
        "verify_email",
        {"link": f"{get_settings().base_url}/portal/verify/{token}"},
        client_id=client_id,
    )


async def verify_email(token: str, actor: Actor) -> int:
    async with transaction():
        used = await tokens.consume("verify", token)
        if used is None:
            raise AuthError("This verification link has expired or was already used.")
        await Client.update({Client.email_verified_at: datetime.now(UTC)}).where(Client.id == used["user_id"])
        await sessions.changed(user_kind="client", user_id=used["user_id"])
        await client_summaries.forget(used["user_id"])
        await audit.record(actor, "client.email_verified", "client", used["user_id"])
        await live.publish(f"client:{used['user_id']}", "client.verified", client_id=used["user_id"])
    return int(used["user_id"])
