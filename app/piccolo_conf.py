"""Piccolo's registry: one engine for every table, one app per domain.

The engine starts without a DSN; `app.core.db.configure()` fills it in once the database
(external or embedded) is known, so tables and transactions always share this one engine.
"""

from piccolo.conf.apps import AppRegistry

from app.core.db import DB

APP_REGISTRY = AppRegistry(
    apps=[
        "app.core.piccolo_app",
        "app.staff.piccolo_app",
        "app.clients.piccolo_app",
        "app.imports.piccolo_app",
        "app.partners.piccolo_app",
        "app.integrations.piccolo_app",
        "app.leads.piccolo_app",
        "app.workbench.piccolo_app",
        "app.routing.piccolo_app",
        "app.views.piccolo_app",
        "app.kyc.piccolo_app",
        "app.screening.piccolo_app",
        "app.trading.piccolo_app",
        "app.funding.piccolo_app",
    ]
)

__all__ = ["DB", "APP_REGISTRY"]
