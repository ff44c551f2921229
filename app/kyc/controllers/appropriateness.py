"""The appropriateness questionnaire: the client's page in the portal, compliance's editor of the
questions and leverage bands, and the client page's view of a client's results."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.errors import FormErrors
from app.core.web import actor_of, form_data, principal, redirect, render
from app.kyc import appropriateness
from app.staff.navigation import section_guard

BLANK_OPTIONS = 3  # empty answer rows offered under a question's answers
BLANK_BANDS = 2


class PortalAppropriateness(Controller):
    path = "/appropriateness"

    @get("/")
    async def page(self, request: Request, retake: int = 0) -> Template:
        context = await appropriateness.page_for(principal(request), retake=bool(retake))
        return render(
            request, "kyc/portal_appropriateness.html", context, partial="kyc/_portal_appropriateness.html"
        )

    @post("/")
    async def submit(self, request: Request) -> Response:
        p = principal(request)
        data = await form_data(request)
        try:
            await appropriateness.submit(p, data, actor_of(request))
        except FormErrors as exc:
            context = await appropriateness.page_for(p, retake=True)
            context.update(show_form=True, values=data, errors=exc.errors)
            return render(
                request,
                "kyc/portal_appropriateness.html",
                context,
                partial="kyc/_portal_appropriateness.html",
                status_code=422,
            )
        return redirect(request, "/portal/appropriateness")


SETTINGS_PAGE = "kyc/staff_appropriateness.html"
SETTINGS_PARTIAL = "kyc/_staff_appropriateness.html"
QUESTION_PAGE = "kyc/staff_appropriateness_question.html"
QUESTION_PARTIAL = "kyc/_staff_appropriateness_question.html"


def _question_values(q: dict[str, Any]) -> dict[str, str]:
    values = {
        "text": q["text"],
        "help": q["help"],
        "sort_order": str(q["sort_order"]),
        "active": "on" if q["active"] else "",
    }
    for i, o in enumerate(q["options"]):
        values[f"option-{i}-label"] = o["label"]
        values[f"option-{i}-points"] = str(o["points"])
    return values


class AppropriatenessSettings(Controller):
    """Staff › KYC › Appropriateness: compliance and administrators (the section's guard)."""

    path = "/kyc/appropriateness"
    guards = [section_guard("kyc")]

    async def _settings(self, request: Request, status_code: int = 200, **extra: Any) -> Template:
        context = {**await appropriateness.settings_for(principal(request)), **extra}
        context["option_rows"] = range(appropriateness.MAX_OPTIONS)
        context["band_rows"] = range(len(context["bands"]) + BLANK_BANDS)
        return render(request, SETTINGS_PAGE, context, partial=SETTINGS_PARTIAL, status_code=status_code)

    @get("/")
    async def page(self, request: Request) -> Template:
        return await self._settings(request)

    @post("/questions")
    async def add_question(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            question_id = await appropriateness.save_question(
                principal(request), None, data, actor_of(request)
            )
        except FormErrors as exc:
            return await self._settings(request, 422, new_errors=exc.errors, new_values=data)
        return redirect(request, f"/staff/kyc/appropriateness#question-{question_id}")

    @post("/bands")
    async def save_bands(self, request: Request) -> Response:
        data = await form_data(request)
        p = principal(request)
        rows = len(await appropriateness.bands()) + BLANK_BANDS
        try:
            await appropriateness.save_bands(p, data, rows, actor_of(request))
        except FormErrors as exc:
            return await self._settings(request, 422, band_errors=exc.errors, band_values=data)
        return redirect(request, "/staff/kyc/appropriateness#bands")

    @get("/questions/{question_id:int}")
    async def question(self, request: Request, question_id: int) -> Template:
        q = await appropriateness.question_for(principal(request), question_id)
        context = {"q": q, "values": _question_values(q), "errors": {}, "option_rows": self._rows(q)}
        return render(request, QUESTION_PAGE, context, partial=QUESTION_PARTIAL)

    @post("/questions/{question_id:int}")
    async def save_question(self, request: Request, question_id: int) -> Response:
        p = principal(request)
        q = await appropriateness.question_for(p, question_id)
        data = await form_data(request)
        try:
            await appropriateness.save_question(p, question_id, data, actor_of(request))
        except FormErrors as exc:
            context = {"q": q, "values": data, "errors": exc.errors, "option_rows": self._rows(q)}
            return render(request, QUESTION_PAGE, context, partial=QUESTION_PARTIAL, status_code=422)
        return redirect(request, f"/staff/kyc/appropriateness#question-{question_id}")

    @staticmethod
    def _rows(q: dict[str, Any]) -> range:
        return range(min(len(q["options"]) + BLANK_OPTIONS, appropriateness.MAX_OPTIONS))


class ClientAppropriateness(Controller):
    """The questionnaire results in the client page's KYC panel: whoever may see the client."""

    path = "/clients"
    guards = [section_guard("clients")]

    @get("/{client_id:int}/kyc/appropriateness")
    async def results(self, request: Request, client_id: int) -> Template:
        context = await appropriateness.client_results_for(principal(request), client_id)
        context["section_partial"] = "kyc/_staff_appropriateness_panel.html"
        context["section_title"] = "Appropriateness"
        context["section_id"] = "kyc-appropriateness"
        return render(
            request, "kyc/staff_client_section.html", context, partial="kyc/_staff_appropriateness_panel.html"
        )
