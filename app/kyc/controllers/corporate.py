"""Corporate clients: the portal's company page (the entity type, the company, its directors and
owners) and, in the staff console, the company in the client page's KYC panel and compliance's
correction of the entity type.

Each portal form answers with the page (or, for htmx, its `#company` partial): after a change as
it now stands (a plain form post is redirected back to it), after a refusal with the error beside
the form it came from and the input kept.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, is_fragment_request, principal, redirect, render
from app.kyc import corporate
from app.staff.navigation import section_guard

PAGE = "kyc/portal_company.html"
PARTIAL = "kyc/_portal_company.html"
HERE = "/portal/company"


async def _done(request: Request, anchor: str = "") -> Response:
    """A change made: htmx gets the page's partial as it is now (a redirect to the same page with
    another #anchor would only scroll), a form post a redirect back to the page."""
    if is_fragment_request(request):
        return render(request, PAGE, await corporate.page_for(principal(request)), partial=PARTIAL)
    return redirect(request, HERE + anchor)


async def _refused(request: Request, form: str, exc: FormErrors, values: dict[str, str]) -> Template:
    context = await corporate.page_for(principal(request))
    context.update(form=form, errors=exc.errors, values=values)
    return render(request, PAGE, context, partial=PARTIAL, status_code=422)


class PortalCompany(Controller):
    path = "/company"

    @get("/")
    async def page(self, request: Request) -> Template:
        return render(request, PAGE, await corporate.page_for(principal(request)), partial=PARTIAL)

    @post("/entity")
    async def entity(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            await corporate.choose_entity(principal(request), data.get("entity_type", ""), actor_of(request))
        except FormErrors as exc:
            return await _refused(request, "entity", exc, data)
        return await _done(request)

    @post("/")
    async def company(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            await corporate.save_company(principal(request), data, actor_of(request))
        except FormErrors as exc:
            return await _refused(request, "company", exc, data)
        return await _done(request)

    @post("/persons")
    async def add_person(self, request: Request) -> Response:
        data = await form_data(request)
        role = data.get("role", "")
        try:
            person_id = await corporate.add_person(principal(request), role, data, actor_of(request))
        except FormErrors as exc:
            return await _refused(request, f"add-{role}", exc, data)
        return await _done(request, f"#person-{person_id}")

    @post("/persons/{person_id:int}")
    async def update_person(self, request: Request, person_id: int) -> Response:
        data = await form_data(request)
        try:
            await corporate.update_person(principal(request), person_id, data, actor_of(request))
        except FormErrors as exc:
            return await _refused(request, f"person-{person_id}", exc, data)
        return await _done(request, f"#person-{person_id}")

    @post("/persons/{person_id:int}/remove")
    async def remove_person(self, request: Request, person_id: int) -> Response:
        try:
            await corporate.remove_person(principal(request), person_id, actor_of(request))
        except FormErrors as exc:
            return await _refused(request, f"person-{person_id}", exc, {})
        return await _done(request)


PANEL = "kyc/_staff_company_panel.html"


async def _panel(request: Request, client_id: int, status_code: int = 200, **extra: Any) -> Template:
    context = {**await corporate.staff_panel_for(principal(request), client_id), **extra}
    context["section_partial"] = PANEL
    context["section_title"] = "Entity and company"
    context["section_id"] = "kyc-company"
    return render(request, "kyc/staff_client_section.html", context, partial=PANEL, status_code=status_code)


class ClientCompany(Controller):
    """The company part of a client page's KYC panel: whoever may see the client."""

    path = "/clients"
    guards = [section_guard("clients")]

    @get("/{client_id:int}/kyc/company")
    async def panel(self, request: Request, client_id: int) -> Template:
        return await _panel(request, client_id)


class ClientEntityType(Controller):
    """Compliance sets whether a client is verified as an individual or a company."""

    path = "/clients"
    guards = [section_guard("kyc")]

    @post("/{client_id:int}/kyc/entity")
    async def entity(self, request: Request, client_id: int) -> Response:
        data = await form_data(request)
        try:
            await corporate.set_entity_by_staff(
                principal(request),
                client_id,
                data.get("entity_type", ""),
                data.get("reason", ""),
                actor_of(request),
            )
        except FormErrors as exc:
            return await _panel(request, client_id, 422, entity_errors=exc.errors)
        return redirect(request, f"/staff/clients/{client_id}")
