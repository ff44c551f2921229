"""`/r/<code>`: the public referral link an IB hands out. Outside every portal: anyone may follow it."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.datastructures import Cookie
from litestar.response import Redirect
from litestar.status_codes import HTTP_303_SEE_OTHER

from app.core.web import client_ip, safe_next
from app.partners import attribution
from app.settings import get_settings

REGISTER = "/portal/register"


def referral_cookie(value: str, *, max_age: int = attribution.COOKIE_MAX_AGE) -> Cookie:
    return Cookie(
        key=attribution.COOKIE,
        value=value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=get_settings().security.cookie_secure,
    )


def clear_referral_cookie() -> Cookie:
    return referral_cookie("", max_age=0)


class ReferralLinks(Controller):
    path = "/r"
    opt = {"public": True}
    include_in_schema = False

    @get("/{code:str}")
    async def follow(self, request: Request, code: str, to: str = "") -> Redirect:
        target = safe_next(to, REGISTER)
        token = await attribution.record_click(
            code,
            landing_page=request.headers.get("referer", "") or (target if to else ""),
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", ""),
        )
        if token is None:
            return Redirect(path=REGISTER, status_code=HTTP_303_SEE_OTHER)
        return Redirect(
            path=target,
            status_code=HTTP_303_SEE_OTHER,
            cookies=[referral_cookie(attribution.sign(token))],
        )
