"""Who may enter which portal. Decided here, in Python; templates only reflect it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from app.core.auth.principal import Principal


class LoginRequired(NotAuthorizedException):
    """Anonymous visitor: sent to the portal's login with a return path."""

    def __init__(self, login_url: str) -> None:
        super().__init__(detail="Please sign in.")
        self.login_url = login_url


class SecondFactorRequired(NotAuthorizedException):
    def __init__(self, url: str) -> None:
        super().__init__(detail="Please complete two-factor authentication.")
        self.url = url


def _next(connection: ASGIConnection) -> str:
    path = connection.url.path
    if connection.url.query:
        path += "?" + connection.url.query
    return quote(path, safe="")


def principal_of(connection: ASGIConnection) -> Principal | None:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None


def _opt(handler: BaseRouteHandler, key: str) -> bool:
    return bool(handler.opt.get(key))


# Guards are coroutines on purpose: Litestar runs a plain-function guard in a worker thread,
# a thread hop per guard on every request.
async def staff_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    if _opt(handler, "public"):
        return
    p = principal_of(connection)
    if p is None:
        raise LoginRequired(f"/staff/login?next={_next(connection)}")
    if not p.is_staff:
        raise PermissionDeniedException("This area is for broker staff only.")
    if _opt(handler, "second_factor_step"):
        return
    if not p.totp_enabled:
        raise SecondFactorRequired("/staff/2fa/setup")
    if not p.mfa_passed:
        raise SecondFactorRequired(f"/staff/2fa?next={_next(connection)}")


async def client_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    if _opt(handler, "public"):
        return
    p = principal_of(connection)
    if p is None:
        raise LoginRequired(f"/portal/login?next={_next(connection)}")
    if not p.is_client:
        raise PermissionDeniedException("The client portal is for clients; staff use the staff console.")
    if _opt(handler, "second_factor_step"):
        return
    if p.totp_enabled and not p.mfa_passed:
        raise SecondFactorRequired(f"/portal/2fa?next={_next(connection)}")


async def partner_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    if _opt(handler, "public"):
        return
    p = principal_of(connection)
    if p is None:
        raise LoginRequired(f"/ib/login?next={_next(connection)}")
    if not p.is_client:
        raise PermissionDeniedException("The partner portal is for introducing brokers.")
    if p.totp_enabled and not p.mfa_passed:
        raise SecondFactorRequired(f"/portal/2fa?next={_next(connection)}")
    if not p.is_partner:
        raise PermissionDeniedException(
            "Your account has no partner (IB) status. Ask your account manager to become a partner."
        )


def requires_roles(*roles: str) -> Callable[[ASGIConnection, BaseRouteHandler], Awaitable[None]]:
    """Guard for staff handlers that only some roles may use (admin always may)."""

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        p = principal_of(connection)
        if p is None or not p.is_staff or not p.has_role("admin", *roles):
            raise PermissionDeniedException("Your role does not allow this.")

    guard.__name__ = f"requires_{'_'.join(roles) or 'admin'}"
    return guard


def allowed(p: Principal, *roles: str) -> bool:
    """The same rule as `requires_roles`, for services and for building navigation."""
    return p.is_staff and p.has_role("admin", *roles)
