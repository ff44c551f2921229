"""Staff users and their roles (admins only), audited in the same transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.core import audit, live
from app.core.audit import Actor
from app.core.auth import passwords, sessions
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.staff.tables import ROLES, StaffUser


@dataclass
class StaffForm:
    email: str = ""
    name: str = ""
    roles: list[str] = field(default_factory=list)
    password: str = ""


def _require_admin(actor: Principal) -> None:
    if not actor.is_staff or not actor.has_role("admin"):
        raise PermissionError("Only administrators manage staff users.")


def _validate(form: StaffForm, *, creating: bool) -> dict[str, str]:
    errors: dict[str, str] = {}
    if creating and ("@" not in form.email or len(form.email) > 320):
        errors["email"] = "Enter a valid e-mail address."
    if not form.name.strip():
        errors["name"] = "Enter the person's name."
    bad = [r for r in form.roles if r not in ROLES]
    if bad or not form.roles:
        errors["roles"] = "Choose at least one role." if not bad else f"Unknown role: {', '.join(bad)}"
    if creating and (problem := passwords.password_problem(form.password, form.email)):
        errors["password"] = problem
    return errors


async def list_staff(actor: Principal) -> list[dict[str, Any]]:
    _require_admin(actor)
    return await StaffUser.select(
        StaffUser.id,
        StaffUser.email,
        StaffUser.name,
        StaffUser.roles,
        StaffUser.is_active,
        StaffUser.totp_enabled,
        StaffUser.last_login_at,
    ).order_by(StaffUser.name)


async def get_staff_for(actor: Principal, staff_id: int) -> dict[str, Any]:
    _require_admin(actor)
    row = await StaffUser.select().where(StaffUser.id == staff_id).first()
    if row is None:
        raise NotFound("staff user")
    return row


async def create_staff(form: StaffForm, actor: Actor, *, by: Principal | None) -> int:
    """Admins create colleagues; the CLI (by=None) creates the first admin."""
    if by is not None:
        _require_admin(by)
    form.email = form.email.strip().lower()
    errors = _validate(form, creating=True)
    if not errors and await StaffUser.exists().where(StaffUser.email == form.email):
        errors["email"] = "A staff user with this e-mail already exists."
    if errors:
        raise FormErrors(errors)
    async with transaction():
        row = StaffUser(
            email=form.email,
            name=form.name.strip(),
            roles=sorted(set(form.roles)),
            password_hash=passwords.hash_password(form.password),
            created_at=datetime.now(UTC),
        )
        await row.save()
        await audit.record(
            actor, "staff.created", "staff", row.id, after={"email": row.email, "roles": row.roles}
        )
    return int(row.id)


async def update_staff(by: Principal, staff_id: int, form: StaffForm, actor: Actor) -> None:
    _require_admin(by)
    before = await get_staff_for(by, staff_id)
    errors = _validate(form, creating=False)
    roles = sorted(set(form.roles))
    if staff_id == by.id and "admin" not in roles:
        errors["roles"] = "You cannot remove your own administrator role."
    if errors:
        raise FormErrors(errors)
    async with transaction():
        await StaffUser.update({StaffUser.name: form.name.strip(), StaffUser.roles: roles}).where(
            StaffUser.id == staff_id
        )
        await sessions.changed(user_kind="staff", user_id=staff_id)
        if sorted(before["roles"]) != roles:
            await audit.record(
                actor,
                "staff.roles_changed",
                "staff",
                staff_id,
                before={"roles": sorted(before["roles"])},
                after={"roles": roles},
            )
        if before["name"] != form.name.strip():
            await audit.record(
                actor,
                "staff.updated",
                "staff",
                staff_id,
                before={"name": before["name"]},
                after={"name": form.name.strip()},
            )


async def set_active(by: Principal, staff_id: int, active: bool, actor: Actor) -> None:
    """Deactivation ends every session of that user at once (and closes their live pages)."""
    _require_admin(by)
    if staff_id == by.id and not active:
        raise FormErrors({"__all__": "You cannot deactivate yourself."})
    before = await get_staff_for(by, staff_id)
    async with transaction():
        await StaffUser.update({StaffUser.is_active: active}).where(StaffUser.id == staff_id)
        ended: list[int] = []
        if not active:
            ended = await sessions.revoke_all("staff", staff_id)
        await audit.record(
            actor,
            "staff.activated" if active else "staff.deactivated",
            "staff",
            staff_id,
            before={"is_active": before["is_active"]},
            after={"is_active": active, "sessions_ended": len(ended)},
        )
        for s in ended:
            await live.publish(f"session:{s}", "session.ended")


async def reset_second_factor(by: Principal, staff_id: int, actor: Actor) -> None:
    """For a colleague who lost their phone: they must enrol again at their next sign-in."""
    _require_admin(by)
    await get_staff_for(by, staff_id)
    async with transaction():
        await StaffUser.update({StaffUser.totp_enabled: False, StaffUser.totp_secret: None}).where(
            StaffUser.id == staff_id
        )
        ended = await sessions.revoke_all("staff", staff_id)
        await audit.record(actor, "auth.2fa_reset", "staff", staff_id, after={"sessions_ended": len(ended)})
        for s in ended:
            await live.publish(f"session:{s}", "session.ended")
