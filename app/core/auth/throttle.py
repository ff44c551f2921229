"""Login throttling per account and per IP address, counted in PostgreSQL (shared by all web processes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.core.tables import LoginAttempt


class Throttled(Exception):
    def __init__(self, minutes: int) -> None:
        self.minutes = minutes
        super().__init__(
            f"Too many failed sign-in attempts. Please wait {minutes} minutes before trying again, "
            "or reset your password."
        )


async def check(
    portal: str, email: str, ip: str, *, max_account: int, max_ip: int, window: timedelta
) -> None:
    since = datetime.now(UTC) - window
    failed = (LoginAttempt.success == False) & (LoginAttempt.created_at > since)  # noqa: E712
    by_account = await LoginAttempt.count().where(
        failed & (LoginAttempt.email == email.lower()) & (LoginAttempt.portal == portal)
    )
    by_ip = await LoginAttempt.count().where(failed & (LoginAttempt.ip == ip))
    if by_account >= max_account or by_ip >= max_ip:
        raise Throttled(int(window.total_seconds() // 60))


async def note(portal: str, email: str, ip: str, success: bool) -> None:
    await LoginAttempt.insert(
        LoginAttempt(
            portal=portal, email=email.lower()[:320], ip=ip, success=success, created_at=datetime.now(UTC)
        )
    )


async def clear_account(portal: str, email: str) -> None:
    """After a successful sign-in or reset the account's earlier failures no longer count."""
    await LoginAttempt.delete().where(
        (LoginAttempt.email == email.lower())
        & (LoginAttempt.portal == portal)
        & (LoginAttempt.success == False)  # noqa: E712
    )


async def purge_older_than(age: timedelta) -> None:
    await LoginAttempt.delete().where(LoginAttempt.created_at < datetime.now(UTC) - age)
