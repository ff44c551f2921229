"""KYC controllers: the client portal's documents pages and the staff file handler.

(The compliance review queue lives in `app.kyc.controllers.staff`; risk, appropriateness and the
corporate flow in their own modules, with `portal_router` for their portal pages.)
"""

from litestar import Router

from app.core.auth.guards import client_guard
from app.kyc.controllers.appropriateness import (
    AppropriatenessSettings,
    ClientAppropriateness,
    PortalAppropriateness,
)
from app.kyc.controllers.corporate import ClientCompany, ClientEntityType, PortalCompany
from app.kyc.controllers.files import KycFiles
from app.kyc.controllers.personal import PortalDetails
from app.kyc.controllers.portal import PortalDocuments
from app.kyc.controllers.risk import ClientRisk, ClientRiskDecisions, RiskSettings

STAFF_CONTROLLERS = (
    AppropriatenessSettings,
    ClientAppropriateness,
    ClientCompany,
    ClientEntityType,
    ClientRisk,
    ClientRiskDecisions,
    RiskSettings,
)


def portal_router() -> Router:
    """The questionnaire and company pages, under /portal with the portal's guard (a fresh router
    per application: `create_app` may run more than once in a process)."""
    return Router(
        path="/portal",
        guards=[client_guard],
        route_handlers=[PortalAppropriateness, PortalCompany, PortalDetails],
        include_in_schema=False,
    )


__all__ = ["KycFiles", "PortalDocuments", "STAFF_CONTROLLERS", "portal_router"]
