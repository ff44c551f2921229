"""Sign-in pages shared by the three portals: each portal mounts a subclass with its own paths."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from app.core.auth import service
from app.core.auth.guards import principal_of
from app.core.auth.principal import Principal
from app.core.auth.sessions import COOKIE
from app.core.web import actor_of, client_ip, form_data, redirect, safe_next
from app.settings import get_settings


def set_session_cookie(response: Response, key: str, path: str = "/") -> Response:
    sec = get_settings().security
    response.set_cookie(
        COOKIE,
        key,
        path=path,
        httponly=True,
        secure=sec.cookie_secure,
        samesite="lax",
        max_age=sec.session_absolute_hours * 3600,
    )
    return response


def clear_session_cookie(response: Response) -> Response:
    response.delete_cookie(COOKIE, path="/")
    return response


class AuthPages(Controller):
    """Login, logout, forgotten password and reset. Subclasses set `portal` and `path`."""

    portal: ClassVar[str] = "portal"
    base: ClassVar[str] = "/portal"
    heading: ClassVar[str] = "Client portal"
    home: ClassVar[str] = "/portal"
    reset_base: ClassVar[str] = "/portal"

    def _ctx(self, **extra: Any) -> dict[str, Any]:
        return {
            "base": self.base,
            "heading": self.heading,
            "reset_base": self.reset_base,
            "errors": {},
            "values": {},
            **extra,
        }

    @get("/login")
    async def login_form(self, request: Request, next: str | None = None) -> Template:
        notice = (
            "Your password was changed. Sign in with the new one."
            if request.query_params.get("reset")
            else ""
        )
        return Template("auth/login.html", context=self._ctx(next=next, notice=notice))

    @post("/login")
    async def login(self, request: Request, next: str | None = None) -> Response:
        data = await form_data(request)
        try:
            outcome = await service.login(
                self.portal,
                data.get("email", ""),
                data.get("password", ""),
                ip=client_ip(request),
                user_agent=request.headers.get("user-agent", ""),
            )
        except service.AuthError as exc:
            return Template(
                "auth/login.html",
                context=self._ctx(
                    next=next, errors={"__all__": exc.message}, values={"email": data.get("email", "")}
                ),
                status_code=422,
            )
        target = safe_next(next, self.home)
        if outcome.needs_enrolment:
            target = "/staff/2fa/setup"
        elif outcome.needs_second_factor:
            second = "/staff/2fa" if outcome.user_kind == "staff" else "/portal/2fa"
            target = f"{second}?next={quote(target, safe='/')}"
        return set_session_cookie(redirect(request, target), outcome.session_key)

    @post("/logout")
    async def logout(self, request: Request) -> Response:
        p = principal_of(request)
        if p is not None:
            await service.logout(p, actor_of(request))
        return clear_session_cookie(redirect(request, f"{self.base}/login"))

    @get("/forgot")
    async def forgot_form(self) -> Template:
        return Template("auth/forgot.html", context=self._ctx())

    @post("/forgot")
    async def forgot(self, request: Request) -> Template:
        data = await form_data(request)
        email = data.get("email", "").strip()
        if "@" not in email:
            return Template(
                "auth/forgot.html",
                context=self._ctx(errors={"email": "Enter your e-mail address."}, values=data),
                status_code=422,
            )
        await service.request_password_reset(self.portal, email, actor_of(request))
        return Template("auth/forgot.html", context=self._ctx(sent=True))

    @get("/reset/{token:str}")
    async def reset_form(self, token: str) -> Template:
        from app.core.auth import tokens

        valid = await tokens.peek("reset", token)
        return Template("auth/reset.html", context=self._ctx(token=token, invalid=valid is None))

    @post("/reset/{token:str}")
    async def reset(self, request: Request, token: str) -> Response:
        data = await form_data(request)
        try:
            await service.reset_password(token, data.get("password", ""), actor_of(request))
        except service.AuthError as exc:
            invalid = "expired" in exc.message
            return Template(
                "auth/reset.html",
                context=self._ctx(token=token, invalid=invalid, errors={"password": exc.message}),
                status_code=422,
            )
        return clear_session_cookie(redirect(request, f"{self.base}/login?reset=1"))


class SecondFactorPages(Controller):
    """The 2FA step after the password, and enrolment. Subclasses set guards and paths."""

    portal: ClassVar[str] = "portal"
    base: ClassVar[str] = "/portal"
    after: ClassVar[str] = "/portal"
    mandatory: ClassVar[bool] = False

    @get("/2fa")
    async def challenge_form(self, next: str | None = None) -> Template:
        return Template("auth/second_factor.html", context={"base": self.base, "next": next, "errors": {}})

    @post("/2fa")
    async def challenge(self, request: Request, next: str | None = None) -> Response:
        p = principal_of(request)
        assert p is not None
        data = await form_data(request)
        try:
            await service.verify_second_factor(p, data.get("code", ""), actor_of(request), self.portal)
        except service.AuthError as exc:
            return Template(
                "auth/second_factor.html",
                context={"base": self.base, "next": next, "errors": {"code": exc.message}},
                status_code=422,
            )
        return redirect(request, safe_next(next, self.after))

    @get("/2fa/setup")
    async def enrol_form(self, request: Request) -> Response:
        p = principal_of(request)
        assert p is not None
        if p.totp_enabled:
            return redirect(request, self.after)
        return await self._enrolment_page(p, {})

    @post("/2fa/setup")
    async def enrol(self, request: Request) -> Response:
        p = principal_of(request)
        assert p is not None
        data = await form_data(request)
        try:
            codes = await service.confirm_enrolment(p, data.get("code", ""), actor_of(request))
        except service.AuthError as exc:
            if p.totp_enabled:
                return redirect(request, self.after)
            return await self._enrolment_page(p, {"code": exc.message}, status_code=422)
        return Template("auth/recovery_codes.html", context={"codes": codes, "continue_url": self.after})

    async def _enrolment_page(self, p: Principal, errors: dict[str, str], status_code: int = 200) -> Template:
        secret, qr = await service.start_enrolment(p)
        context = {
            "base": self.base,
            "secret": secret,
            "qr": qr,
            "errors": errors,
            "mandatory": self.mandatory,
        }
        return Template("auth/enrol.html", context=context, status_code=status_code)
