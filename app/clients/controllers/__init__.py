from litestar import Router

from app.clients.controllers.export import ClientExport
from app.clients.controllers.portal import PortalAuth, PortalPages, PortalSecondFactor
from app.clients.controllers.staff import StaffClients
from app.core.auth.guards import client_guard
from app.kyc.controllers import PortalDocuments

portal_router = Router(
    path="/portal",
    guards=[client_guard],
    route_handlers=[PortalAuth, PortalSecondFactor, PortalPages, PortalDocuments],
    include_in_schema=False,
)

__all__ = ["portal_router", "StaffClients", "ClientExport"]
