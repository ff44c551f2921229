"""Risk in the staff console: a client's risk and its reasons (client page), compliance's inputs
(PEP, source of funds) and reassessment, and the model's settings and country list."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.kyc import risk, risk_settings
from app.staff.navigation import section_guard

PANEL = "kyc/_staff_risk_panel.html"
SECTION_PAGE = "kyc/staff_client_section.html"


async def _panel(request: Request, client_id: int, status_code: int = 200, **extra: Any) -> Template:
    context = {**await risk.panel_for(principal(request), client_id), **extra}
    context["section_partial"] = PANEL
    context["section_title"] = "Risk"
    context["section_id"] = "kyc-risk"
    return render(request, SECTION_PAGE, context, partial=PANEL, status_code=status_code)


class ClientRisk(Controller):
    """The risk part of a client page's KYC panel: whoever may see the client."""

    path = "/clients"
    guards = [section_guard("clients")]

    @get("/{client_id:int}/kyc/risk")
    async def panel(self, request: Request, client_id: int) -> Template:
        return await _panel(request, client_id)


class ClientRiskDecisions(Controller):
    """What compliance records about a client's risk: compliance and administrators."""

    path = "/clients"
    guards = [section_guard("kyc")]

    @post("/{client_id:int}/kyc/risk/inputs")
    async def inputs(self, request: Request, client_id: int) -> Response:
        data = await form_data(request)
        try:
            await risk.set_inputs(
                principal(request),
                client_id,
                data.get("pep") in ("on", "true", "1"),
                data.get("source_of_funds", ""),
                data.get("note", ""),
                actor_of(request),
            )
        except FormErrors as exc:
            return await _panel(request, client_id, 422, risk_errors=exc.errors, risk_values=data)
        return redirect(request, f"/staff/clients/{client_id}")

    @post("/{client_id:int}/kyc/risk/reassess")
    async def reassess(self, request: Request, client_id: int) -> Response:
        await risk.reassess_by(principal(request), client_id, actor_of(request))
        return redirect(request, f"/staff/clients/{client_id}")


class RiskSettings(Controller):
    """Staff › KYC › Risk: the model's settings, the sources of funds and the country list."""

    path = "/kyc/risk"
    guards = [section_guard("kyc")]

    async def _settings(self, request: Request, status_code: int = 200, **extra: Any) -> Template:
        context = {**await risk_settings.settings_for(principal(request)), **extra}
        return render(
            request, "kyc/staff_risk.html", context, partial="kyc/_staff_risk.html", status_code=status_code
        )

    async def _countries(self, request: Request, status_code: int = 200, **extra: Any) -> Template:
        context = {**await risk_settings.countries_for(principal(request)), **extra}
        return render(
            request,
            "kyc/staff_risk_countries.html",
            context,
            partial="kyc/_staff_risk_countries.html",
            status_code=status_code,
        )

    @get("/")
    async def page(self, request: Request) -> Template:
        return await self._settings(request)

    @post("/settings")
    async def save_settings(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            await risk_settings.save_settings(principal(request), data, actor_of(request))
        except FormErrors as exc:
            return await self._settings(request, 422, settings_errors=exc.errors, param_values=data)
        return redirect(request, "/staff/kyc/risk")

    @post("/funds")
    async def save_funds(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            await risk_settings.save_funds_source(
                principal(request),
                data.get("code", ""),
                data.get("label", ""),
                data.get("risk", ""),
                data.get("active") in ("on", "true", "1"),
                actor_of(request),
            )
        except FormErrors as exc:
            return await self._settings(request, 422, funds_errors=exc.errors, funds_values=data)
        return redirect(request, "/staff/kyc/risk#funds")

    @get("/countries")
    async def countries(self, request: Request) -> Template:
        return await self._countries(request)

    @post("/countries")
    async def save_country(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            await risk_settings.save_country(
                principal(request),
                data.get("country", ""),
                data.get("risk", ""),
                data.get("note", ""),
                actor_of(request),
            )
        except FormErrors as exc:
            return await self._countries(request, 422, country_errors=exc.errors, country_values=data)
        return redirect(request, "/staff/kyc/risk/countries")

    @post("/countries/remove")
    async def remove_country(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            await risk_settings.remove_country(principal(request), data.get("country", ""), actor_of(request))
        except FormErrors as exc:
            return await self._countries(request, 422, country_errors=exc.errors, country_values=data)
        return redirect(request, "/staff/kyc/risk/countries")
