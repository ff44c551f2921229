from __future__ import annotations

from litestar import Controller, MediaType, Request, Response, get
from litestar.response import Template

from app.core.web import is_fragment_request, principal, shared_fragment
from app.staff import overview
from app.staff.navigation import BY_KEY, section_guard

UPCOMING = {
    "marketing": "Segments, triggered sequences and system message templates.",
    "reports": "Deposits, FTDs, conversion funnel and regulator exports.",
}


class Console(Controller):
    path = "/"

    @get("/", guards=[section_guard("home")])
    async def home(self, request: Request) -> Response:
        data = await overview.for_staff(principal(request))
        # The figures are the same for everyone sharing these roles: rendered once per version.
        stats = shared_fragment(request, "staff/_home_stats.html", data, key=data["version"])
        if is_fragment_request(request):
            return Response(stats, media_type=MediaType.HTML)
        return Template("staff/home.html", context={"stats": stats})

    @get("/marketing", guards=[section_guard("marketing")])
    async def marketing(self) -> Template:
        return self._upcoming("marketing")

    @get("/reports", guards=[section_guard("reports")])
    async def reports(self) -> Template:
        return self._upcoming("reports")

    @get("/settings", guards=[section_guard("settings")])
    async def settings(self) -> Template:
        return Template("staff/settings.html")

    def _upcoming(self, key: str) -> Template:
        return Template("staff/section.html", context={"section": BY_KEY[key], "description": UPCOMING[key]})
