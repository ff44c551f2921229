"""The real application plus one bare route, so the benchmark compares both on one server.

`/bench/bare` renders a trivial template through the same Jinja engine, middleware stack and
uvicorn process as the portals, but reads no session and touches no database: it is the
ceiling the authenticated pages are measured against.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import ChoiceLoader, FileSystemLoader
from litestar import Litestar, get
from litestar.response import Template

from app.asgi import create_app

TEMPLATES = Path(__file__).resolve().parent / "templates"


@get("/bench/bare", include_in_schema=False)
async def bare() -> Template:
    return Template("bench/bare.html", context={"title": "Bare route", "items": ["one", "two", "three"]})


def app_factory() -> Litestar:
    """For `uvicorn --factory --app-dir bench app_with_bare:app_factory`."""
    application = create_app()
    engine = application.template_engine.engine  # type: ignore[union-attr]
    engine.loader = ChoiceLoader([engine.loader, FileSystemLoader(TEMPLATES)])
    application.register(bare)
    return application
