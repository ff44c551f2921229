"""create_app(settings): the only place that wires the application together."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

from litestar import Litestar, get
from litestar.config.csrf import CSRFConfig
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.middleware.base import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.htmx import HTMXPlugin, HTMXRequest
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from app.core import db, health, jobs, live_socket
from app.core.auth import passwords
from app.core.auth.middleware import SessionAuthMiddleware
from app.core.live import hub, set_template_engine
from app.core.web import EXCEPTION_HANDLERS, security_headers
from app.settings import ROOT, Settings, get_settings, use_settings

log = logging.getLogger(__name__)


@get("/", include_in_schema=False)
async def root() -> Redirect:
    return Redirect(path="/portal")


def _template_engine(engine: JinjaTemplateEngine) -> None:
    from app.staff.navigation import staff_nav

    engine.engine.globals["staff_nav"] = staff_nav
    # Checking every template file's mtime on each render is for editing templates locally.
    engine.engine.auto_reload = get_settings().template_reload
    set_template_engine(engine.engine)


def create_app(settings: Settings | None = None, *, start_queue: bool = True) -> Litestar:
    settings = settings or get_settings()
    use_settings(settings)
    sec = settings.security
    passwords.configure(sec.argon2_memory_kib, sec.argon2_time_cost, sec.argon2_parallelism)
    if not db.current_url():
        db.configure(db.resolve_database_url(settings.database_url, settings.var_dir))

    import app.clients.live  # noqa: F401  (registers live renderers)
    import app.clients.live_panels  # noqa: F401  (registers the client page's live panels and its watch)
    import app.funding.live  # noqa: F401  (registers the wallet pages' and finance queues' live rows)
    import app.imports.live  # noqa: F401  (registers the import progress renderer)
    import app.kyc.live  # noqa: F401  (registers the documents page's live cards)
    import app.kyc.live_staff  # noqa: F401  (registers the review queue's and client page's KYC updates)
    import app.trading.live  # noqa: F401  (registers the accounts pages' and panel's live figures)
    import app.workbench.live  # noqa: F401  (registers live renderers)
    from app.clients.controllers import ClientExport, StaffClients, portal_router
    from app.funding.controllers import STAFF_CONTROLLERS as FUNDING_STAFF_CONTROLLERS
    from app.funding.controllers import api_router as funding_api_router
    from app.funding.controllers import portal_router as funding_portal_router
    from app.imports.controllers import ClientImports
    from app.integrations.controllers import ApiKeys
    from app.kyc.controllers import STAFF_CONTROLLERS as KYC_STAFF_CONTROLLERS
    from app.kyc.controllers import KycFiles
    from app.kyc.controllers import portal_router as kyc_portal_router
    from app.kyc.controllers.staff import ClientKyc, KycReview
    from app.leads.api import api_router
    from app.leads.controllers import ClientLeadSources
    from app.partners.controllers import StaffPartners
    from app.partners.controllers.staff import ClientAttribution
    from app.partners.referrals import ReferralLinks
    from app.partners.routes import partner_router
    from app.routing.controllers import ClientAssignment, DeskSettings
    from app.screening.controllers import ScreeningConsole
    from app.staff.controllers import build_staff_router
    from app.trading.controllers import STAFF_CONTROLLERS as TRADING_STAFF_CONTROLLERS
    from app.trading.controllers import portal_router as trading_portal_router
    from app.trading.controllers.operations import AccountBalance
    from app.trading.controllers.ops import SyncOps
    from app.workbench.controllers import ClientWorkbench, MyWork

    staff_router = build_staff_router([StaffClients, StaffPartners, ApiKeys])
    staff_router.register(ClientWorkbench)
    staff_router.register(ClientExport)
    staff_router.register(ClientImports)
    staff_router.register(MyWork)
    staff_router.register(DeskSettings)
    staff_router.register(ClientAssignment)
    staff_router.register(ClientLeadSources)
    staff_router.register(ClientAttribution)
    staff_router.register(KycFiles)
    staff_router.register(KycReview)
    staff_router.register(ClientKyc)
    for controller in KYC_STAFF_CONTROLLERS:  # risk, appropriateness, corporate
        staff_router.register(controller)
    staff_router.register(ScreeningConsole)
    for trading_controller in TRADING_STAFF_CONTROLLERS:  # accounts, servers, account types, client panel
        staff_router.register(trading_controller)
    staff_router.register(AccountBalance)  # an account's balance operations (credit, bonus, …)
    staff_router.register(SyncOps)  # Accounts › Sync: each server's sync health, "sync now"
    for (
        funding_controller
    ) in FUNDING_STAFF_CONTROLLERS:  # Funding: payment methods, queues, statements, reconciliation
        staff_router.register(funding_controller)

    owns_pool = False

    async def startup() -> None:
        nonlocal owns_pool
        owns_pool = await db.start_pool()
        await hub.start()
        if start_queue:
            try:
                jobs.load_job_modules()
                await jobs.connect(db.current_url())
            except Exception:
                log.exception("job queue unavailable; outbox sweeps will deliver later")
        # Everything built at start-up lives as long as the process: keep it out of the garbage
        # collector's full scans, which otherwise show up as latency spikes under load.
        gc.collect()
        gc.freeze()

    async def shutdown() -> None:
        await hub.stop()
        await jobs.disconnect()
        if owns_pool:
            await db.close_pool()

    return Litestar(
        route_handlers=[
            root,
            health.healthz,
            health.readyz,
            live_socket.live,
            staff_router,
            portal_router,
            kyc_portal_router(),
            trading_portal_router(),
            funding_portal_router(),
            funding_api_router(),
            partner_router,
            ReferralLinks,
            api_router,
            create_static_files_router(
                path="/static", directories=[ROOT / "static"], include_in_schema=False
            ),
        ],
        on_startup=[startup],
        on_shutdown=[shutdown],
        middleware=[DefineMiddleware(SessionAuthMiddleware, exclude=["^/static", "^/healthz", "^/schema"])],
        csrf_config=CSRFConfig(
            secret=sec.secret_key,
            cookie_name="fxcsrf",
            cookie_secure=sec.cookie_secure,
            header_name="x-csrftoken",
            exclude=["^/api/"],
        ),
        template_config=TemplateConfig(
            directory=Path(ROOT / "templates"), engine=JinjaTemplateEngine, engine_callback=_template_engine
        ),
        after_request=security_headers,
        plugins=[HTMXPlugin()],
        request_class=HTMXRequest,
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="FX CRM API",
            version="1",
            components=Components(
                security_schemes={
                    "ApiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header")
                }
            ),
        ),
        request_max_body_size=sec.max_form_bytes,
        debug=False,
    )


def app_factory() -> Litestar:
    """For `uvicorn --factory app.asgi:app_factory`."""
    return create_app()
