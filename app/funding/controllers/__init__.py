"""Funding controllers, one module per flow; each lists its PORTAL, STAFF and API handlers and
`app.asgi` mounts them under the portal's, the console's and the API's routers."""

from litestar import Router

from app.core.auth.guards import client_guard
from app.funding.controllers import (
    api,
    crypto,
    finance,
    portal_deposits,
    reconciliation,
    staff_actions,
    transfers,
    wallet,
    webhooks,
    wire,
    withdrawals,
)
from app.funding.controllers.staff import PaymentMethods

_MODULES = (
    wallet,
    portal_deposits,
    wire,
    crypto,
    withdrawals,
    transfers,
    finance,
    staff_actions,
    reconciliation,
    webhooks,
    api,
)

STAFF_CONTROLLERS = (PaymentMethods, *(c for m in _MODULES for c in m.STAFF))
PORTAL_CONTROLLERS = tuple(c for m in _MODULES for c in m.PORTAL)
API_HANDLERS = tuple(c for m in _MODULES for c in m.API)


def portal_router() -> Router:
    """Under /portal with the portal's guard (a fresh router per application)."""
    return Router(
        path="/portal",
        guards=[client_guard],
        route_handlers=list(PORTAL_CONTROLLERS),
        include_in_schema=False,
    )


def api_router() -> Router:
    """Under /api: webhooks (signed by the provider) and the JSON API (API keys); no session, no CSRF."""
    return Router(path="/api", route_handlers=list(API_HANDLERS))


__all__ = ["STAFF_CONTROLLERS", "portal_router", "api_router"]
