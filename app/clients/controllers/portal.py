"""The client portal (mobile-first): registration, dashboard, messages, security settings."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.clients import services
from app.core.auth import service as auth_service
from app.core.auth.controllers import AuthPages, SecondFactorPages, set_session_cookie
from app.core.errors import FormErrors
from app.core.web import actor_of, client_ip, form_data, is_fragment_request, principal, redirect, render
from app.partners.attribution import COOKIE as REFERRAL_COOKIE
from app.partners.attribution import unsign
from app.partners.referrals import clear_referral_cookie


class PortalAuth(AuthPages):
    path = "/"
    opt = {"public": True}
    portal = "portal"
    base = "/portal"
    heading = "Client portal"
    home = "/portal"
    reset_base = "/portal"

    @get("/register")
    async def register_form(self) -> Template:
        return Template("portal/register.html", context={"values": {}, "errors": {}})

    @post("/register")
    async def register(self, request: Request) -> Response:
        data = await form_data(request)
        form = services.Registration(
            first_name=data.get("first_name", ""),
            last_name=data.get("last_name", ""),
            email=data.get("email", ""),
            country=data.get("country", ""),
            password=data.get("password", ""),
            accept_terms=data.get("accept_terms") == "on",
        )
        try:
            await services.register(
                form, actor_of(request), referral_token=unsign(request.cookies.get(REFERRAL_COOKIE))
            )
        except FormErrors as exc:
            values = {k: v for k, v in data.items() if k != "password"}
            return Template(
                "portal/register.html", context={"values": values, "errors": exc.errors}, status_code=422
            )
        try:
            outcome = await auth_service.login(
                "portal",
                form.email,
                form.password,
                ip=client_ip(request),
                user_agent=request.headers.get("user-agent", ""),
            )
        except auth_service.AuthError:  # the account exists; e.g. this address is throttled: sign in later
            response = redirect(request, "/portal/login")
            response.set_cookie(clear_referral_cookie())
            return response
        response = set_session_cookie(redirect(request, "/portal?welcome=1"), outcome.session_key)
        response.set_cookie(clear_referral_cookie())  # the registration has used it
        return response

    @get("/verify/{token:str}")
    async def verify(self, request: Request, token: str) -> Template:
        try:
            await auth_service.verify_email(token, actor_of(request))
        except auth_service.AuthError as exc:
            return Template(
                "portal/verified.html", context={"ok": False, "message": exc.message}, status_code=400
            )
        return Template("portal/verified.html", context={"ok": True})


class PortalSecondFactor(SecondFactorPages):
    path = "/"
    opt = {"second_factor_step": True}
    portal = "portal"
    base = "/portal"
    after = "/portal"


class PortalPages(Controller):
    path = "/"

    @get("/")
    async def dashboard(self, request: Request, welcome: int = 0, resent: int = 0) -> Template:
        p = principal(request)
        client = await services.dashboard_for(p)
        return Template(
            "portal/dashboard.html",
            context={"client": client, "welcome": welcome, "resent": resent, "unread": client["unread"]},
        )

    @post("/verify/resend")
    async def resend(self, request: Request) -> Response:
        await services.resend_verification(principal(request), actor_of(request))
        if is_fragment_request(request):
            return Template("portal/_resent.html")
        return redirect(request, "/portal?resent=1")  # without JavaScript: back to the dashboard

    @get("/unread")
    async def unread(self, request: Request) -> Template:
        """The header's counter, loaded by pages that do not compute it themselves."""
        return Template(
            "portal/_unread.html", context={"unread": await services.unread_count(principal(request).id)}
        )

    @get("/messages")
    async def messages(self, request: Request) -> Template:
        p = principal(request)
        rows = await services.messages_for(p, p.id)
        return render(
            request, "portal/messages.html", {"messages": rows}, partial="portal/_message_list.html"
        )

    @get("/messages/{message_id:int}")
    async def message(self, request: Request, message_id: int) -> Template:
        p = principal(request)
        row = await services.message_for(p, message_id)
        await services.mark_read(p, message_id)
        return Template("portal/message.html", context={"m": row})

    @get("/settings")
    async def settings(self, request: Request) -> Template:
        return Template("portal/settings.html", context={"errors": {}, "values": {}})

    @post("/settings/password")
    async def change_password(self, request: Request) -> Response:
        data = await form_data(request)
        p = principal(request)
        try:
            key, _ = await auth_service.change_password(
                p, data.get("current_password", ""), data.get("new_password", ""), actor_of(request)
            )
        except auth_service.AuthError as exc:
            return Template(
                "portal/settings.html",
                context={"errors": {exc.field or "__all__": exc.message}},
                status_code=422,
            )
        return set_session_cookie(redirect(request, "/portal/settings?changed=1"), key)

    @post("/settings/2fa/disable")
    async def disable_2fa(self, request: Request) -> Response:
        data = await form_data(request)
        try:
            await auth_service.disable_second_factor(
                principal(request), data.get("password", ""), actor_of(request)
            )
        except auth_service.AuthError as exc:
            return Template(
                "portal/settings.html",
                context={"errors": {"disable_" + (exc.field or "password"): exc.message}},
                status_code=422,
            )
        return redirect(request, "/portal/settings")
