"""The public lead API for the broker's websites (`X-API-Key`, scope leads:write) and the plain
form endpoint for landing pages (`api_key` form field, scope leads:form).

Every refusal is a precise status with a machine-readable body, and nothing is stored.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Controller, Request, Response, Router, post
from litestar.connection import ASGIConnection
from litestar.exceptions import ClientException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.response import Redirect, Template

from app.core.errors import FormErrors
from app.core.web import client_ip
from app.integrations.services import ApiKeyError, AuthenticatedKey, authenticate
from app.leads.services import LeadData, capture_lead


class LeadIn(msgspec.Struct, forbid_unknown_fields=True):
    """A lead from a website. Unknown fields are refused, so a misspelt field is never lost silently."""

    first_name: str
    last_name: str
    email: str
    phone: str = ""
    country: str = ""  # ISO 3166-1 alpha-2, alpha-3 or English name
    language: str = ""  # ISO 639-1
    campaign: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    landing_page: str = ""
    referring_ib_code: str = ""
    account_type_interest: str = ""


class LeadAccepted(msgspec.Struct):
    id: int
    status: str  # created | merged


class ApiError(msgspec.Struct):
    error: str
    detail: str
    fields: dict[str, str] = msgspec.field(default_factory=dict)


def error_response(
    code: str,
    status: int,
    detail: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        content={"error": code, "detail": detail, "fields": fields or {}}, status_code=status, headers=headers
    )


def on_key_error(_: Request, exc: ApiKeyError) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
    return error_response(exc.code, exc.status, exc.detail, headers=headers)


_UNKNOWN = re.compile(r"unknown field `([^`]*)`")
_MISSING = re.compile(r"missing required field `([^`]*)`")


def on_bad_body(_: Request, exc: ClientException) -> Response:
    """msgspec's decoding errors, in our error format: malformed or unknown → 400, bad values → 422."""
    if not isinstance(exc, ValidationException):
        return error_response("malformed_json", 400, "The request body is not valid JSON.")
    problems: list[dict[str, Any]] = exc.extra if isinstance(exc.extra, list) else []
    fields: dict[str, str] = {}
    for p in problems:
        message, key = str(p.get("message", "")), str(p.get("key", ""))
        if m := _UNKNOWN.search(message):
            return error_response(
                "unknown_field", 400, f"Unknown field {m.group(1)!r}.", {m.group(1): "Unknown field."}
            )
        if m := _MISSING.search(message):
            fields[m.group(1)] = "This field is required."
        elif key and key != "data":
            fields[key] = message
    if fields:
        return error_response("invalid_fields", 422, "Some fields are missing or invalid.", fields)
    return error_response("invalid_body", 400, "The request body must be a JSON object.")


async def leads_write_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    connection.state.api_key = await authenticate(connection.headers.get("x-api-key"), "leads:write")


def error_spec(
    description: str, code: str, detail: str, fields: dict[str, str] | None = None
) -> ResponseSpec:
    return ResponseSpec(
        data_container=ApiError,
        description=description,
        examples=[Example(value={"error": code, "detail": detail, "fields": fields or {}})],
    )


class LeadsApi(Controller):
    path = "/leads"
    tags = ["Leads"]

    @post(
        "/",
        status_code=201,
        guards=[leads_write_guard],
        security=[{"ApiKey": []}],
        summary="Capture a lead",
        description=(
            "Creates a lead, or adds this capture to the timeline of the client or lead with the same "
            "e-mail or phone. Authenticate with an API key (scope `leads:write`) in `X-API-Key`."
        ),
        exception_handlers={ApiKeyError: on_key_error, ClientException: on_bad_body},
        responses={
            200: ResponseSpec(data_container=LeadAccepted, description="Merged into an existing record"),
            400: error_spec(
                "Malformed JSON or an unknown field",
                "unknown_field",
                "Unknown field 'fax'.",
                {"fax": "Unknown field."},
            ),
            401: error_spec(
                "Missing, unknown or revoked API key", "invalid_api_key", "This API key is not valid."
            ),
            403: error_spec(
                "The key lacks the leads:write scope",
                "insufficient_scope",
                "This API key may not be used for leads:write.",
            ),
            422: error_spec(
                "Invalid field values",
                "invalid_fields",
                "Some fields are missing or invalid.",
                {"phone": "Enter a valid phone number."},
            ),
            429: error_spec(
                "Over the key's per-minute limit (see Retry-After)", "rate_limited", "Try again shortly."
            ),
        },
    )
    async def create(self, request: Request, data: LeadIn) -> Response[LeadAccepted]:
        key: AuthenticatedKey = request.state.api_key
        actor = key.actor(client_ip(request), request.headers.get("user-agent", "")[:400])
        try:
            client_id, created = await capture_lead(
                LeadData(**msgspec.structs.asdict(data)), channel="api", api_key_id=key.id, actor=actor
            )
        except FormErrors as exc:
            return error_response("invalid_fields", 422, "Some fields are missing or invalid.", exc.errors)
        return Response(
            LeadAccepted(id=client_id, status="created" if created else "merged"),
            status_code=201 if created else 200,
        )

    @post("/form", include_in_schema=False)
    async def form(self, request: Request) -> Response:
        """For a landing page's plain HTML form: its key (scope leads:form) may only create leads."""
        form = await request.form()
        data = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            key = await authenticate(data.get("api_key"), "leads:form")
        except ApiKeyError as exc:
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
            return Template(
                "leads/problems.html",
                context={"problems": [exc.detail]},
                status_code=exc.status,
                headers=headers,
            )
        actor = key.actor(client_ip(request), request.headers.get("user-agent", "")[:400])
        try:
            await capture_lead(LeadData.from_mapping(data), channel="form", api_key_id=key.id, actor=actor)
        except FormErrors as exc:
            return Template(
                "leads/problems.html",
                context={"problems": list(exc.errors.values()), "errors": exc.errors},
                status_code=422,
            )
        target = data.get("redirect", "")
        if target.startswith(("http://", "https://")) and len(target) <= 2000 and target.isprintable():
            return Redirect(path=target, status_code=303)
        return Template("leads/thanks.html")


api_router = Router(path="/api/v1", route_handlers=[LeadsApi])
