"""What every controller leans on: rendering page-or-fragment, form helpers, the acting user,
and the error pages (no stack trace ever reaches a browser)."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from markupsafe import Markup

from app.core.audit import Actor
from app.core.auth.guards import LoginRequired, SecondFactorRequired
from app.core.auth.principal import Principal

log = logging.getLogger(__name__)


def principal(request: Request) -> Principal:
    """The signed-in person (guards have already made sure there is one)."""
    user = request.scope.get("user")
    if not isinstance(user, Principal):
        raise NotAuthorizedException("Please sign in.")
    return user


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def actor_of(request: Request) -> Actor:
    ua = request.headers.get("user-agent", "")[:400]
    user = request.scope.get("user")
    if isinstance(user, Principal):
        return user.actor(client_ip(request), ua)
    return Actor(kind="anonymous", ip=client_ip(request), user_agent=ua)


def is_fragment_request(request: Request) -> bool:
    htmx = getattr(request, "htmx", None)
    return bool(htmx and not htmx.boosted)


def render(
    request: Request,
    page: str,
    context: dict[str, Any] | None = None,
    *,
    partial: str | None = None,
    status_code: int = 200,
) -> Template:
    """One partial for page and fragment: an htmx request gets the partial, a browser the page."""
    name = partial if partial and is_fragment_request(request) else page
    return Template(template_name=name, context=context or {}, status_code=status_code)


_shared: dict[tuple[str, Any], Markup] = {}
_SHARED_MAX = 256


def shared_fragment(request: Request, template: str, context: dict[str, Any], key: Any) -> Markup:
    """Render a partial that is the same for every viewer given `key`, once per key.

    Only for fragments without per-viewer content (no CSRF token, no request, no names): figures
    shared by a role, say. `key` must change whenever the context does (e.g. a data version).
    """
    cache_key = (template, key)
    html = _shared.get(cache_key)
    if html is None:
        engine = request.app.template_engine
        assert engine is not None
        html = Markup(engine.get_template(template).render(**context))  # noqa: S704 (autoescaped template output)
        if len(_shared) >= _SHARED_MAX:
            _shared.clear()
        _shared[cache_key] = html
    return html


def redirect(request: Request, url: str) -> Response:
    """After a successful POST: a normal redirect, or HX-Redirect for htmx."""
    if getattr(request, "htmx", None):
        return Response(content="", status_code=200, headers={"HX-Redirect": url})
    return Redirect(path=url, status_code=HTTP_303_SEE_OTHER)


def safe_next(value: str | None, default: str) -> str:
    """Only local paths: an open redirect would turn our login page into a phishing tool."""
    # Browsers drop tabs and newlines from URLs, so "/\t/evil.example" would become "//evil.example".
    if (
        value
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and value.isprintable()
    ):
        return value
    return default


async def form_data(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: (v if isinstance(v, str) else "") for k, v in form.items() if k != "_csrf_token"}


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


async def security_headers(response: Response) -> Response:
    """No framing, no sniffing, scripts only from our own static files (htmx runs without eval)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _portal_of(path: str) -> str:
    for prefix in ("staff", "portal", "ib"):
        if path == f"/{prefix}" or path.startswith(f"/{prefix}/"):
            return prefix
    return "public"


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    if request.scope.get("type") == "websocket":
        return Response(content=message, status_code=status)
    portal = _portal_of(request.url.path)
    if _wants_json(request):
        return Response(content={"status_code": status, "detail": message}, status_code=status)
    return Template(
        template_name="errors/error.html",
        context={"status": status, "title": title, "message": message, "portal": portal},
        status_code=status,
        headers=SECURITY_HEADERS,
    )


def _wants_json(request: Request) -> bool:
    return (
        request.url.path.startswith("/api/")
        or "application/json" in request.headers.get("accept", "").split(",")[0]
    )


def on_login_required(request: Request, exc: LoginRequired) -> Response:
    if _wants_json(request):
        return Response(content={"status_code": 401, "detail": "Authentication required"}, status_code=401)
    return redirect(request, exc.login_url)


def on_second_factor(request: Request, exc: SecondFactorRequired) -> Response:
    return redirect(request, exc.url)


def on_forbidden(request: Request, exc: PermissionDeniedException) -> Response:
    detail = str(exc.detail or "")
    if "csrf" in detail.lower():
        return _error_page(
            request,
            403,
            "This form has expired",
            "For your security the form could not be accepted (its security token is missing or out of date). "
            "Go back, reload the page and submit it again; nothing was changed.",
        )
    return _error_page(request, 403, "Not allowed", detail or "You do not have access to this page.")


def on_permission_error(request: Request, exc: PermissionError) -> Response:
    return _error_page(request, 403, "Not allowed", str(exc) or "You do not have access to this.")


def on_not_found(request: Request, exc: NotFoundException) -> Response:
    return _error_page(request, 404, "Not found", "There is nothing here, or you do not have access to it.")


def on_http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 413:
        return _error_page(
            request, 413, "Too large", "What you sent is larger than we accept. Nothing was saved."
        )
    if exc.status_code == 401:
        return _error_page(request, 401, "Please sign in", str(exc.detail or "Please sign in."))
    if exc.status_code == 405:
        return _error_page(request, 405, "Not allowed", "That method is not allowed here.")
    if exc.status_code >= 500:
        log.error("HTTP %s on %s: %s", exc.status_code, request.url.path, exc.detail)
        return _error_page(request, exc.status_code, "Something went wrong", "Please try again in a moment.")
    return _error_page(
        request, exc.status_code, "Request not accepted", str(exc.detail or "The request was not accepted.")
    )


def on_server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return _error_page(
        request, 500, "Something went wrong", "Please try again in a moment. Nothing half-done was kept."
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    LoginRequired: on_login_required,
    SecondFactorRequired: on_second_factor,
    PermissionDeniedException: on_forbidden,
    PermissionError: on_permission_error,
    NotFoundException: on_not_found,
    HTTPException: on_http_error,
    Exception: on_server_error,
}

__all__ = ["HTMXRequest", "render", "redirect", "principal", "actor_of", "form_data", "safe_next"]
