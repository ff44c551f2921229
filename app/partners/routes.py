from litestar import Router

from app.core.auth.guards import partner_guard
from app.partners.controllers import PartnerAuth, PartnerPages

partner_router = Router(
    path="/ib", guards=[partner_guard], route_handlers=[PartnerAuth, PartnerPages], include_in_schema=False
)
