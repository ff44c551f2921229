from litestar import Controller, Request, get
from litestar.response import Template

from app.core.auth.controllers import AuthPages
from app.core.web import principal, render
from app.partners import attribution, services
from app.settings import get_settings
from app.staff.navigation import section_guard


class PartnerAuth(AuthPages):
    """IBs sign in with their client credentials: one person, one login."""

    path = "/"
    opt = {"public": True}
    portal = "ib"
    base = "/ib"
    heading = "Partner portal"
    home = "/ib"
    reset_base = "/portal"


class PartnerPages(Controller):
    path = "/"

    @get("/")
    async def overview(self, request: Request) -> Template:
        me = await services.partner_for(principal(request))
        network = await services.network_of(me["id"])
        link = f"{get_settings().base_url}/r/{me['code']}"
        funnel = await attribution.funnel_of(me["id"])
        return Template(
            "partners/overview.html",
            context={"me": me, "network": network, "link": link, "funnel": funnel},
        )

    @get("/network")
    async def network(self, request: Request) -> Template:
        me = await services.partner_for(principal(request))
        return render(
            request,
            "partners/network.html",
            {"me": me, "network": await services.network_of(me["id"])},
            partial="partners/_tree.html",
        )


class StaffPartners(Controller):
    path = "/partners"
    guards = [section_guard("partners")]

    @get("/")
    async def index(self, request: Request) -> Template:
        return Template(
            "partners/staff_list.html",
            context={"partners": await services.list_partners_for(principal(request))},
        )
