from litestar import Controller

from app.core.auth.controllers import AuthPages, SecondFactorPages


class StaffAuth(AuthPages):
    path = "/"
    base = "/staff"
    opt = {"public": True}
    portal = "staff"
    heading = "Staff console"
    home = "/staff"
    reset_base = "/staff"


class StaffSecondFactor(SecondFactorPages):
    path = "/"
    base = "/staff"
    opt = {"second_factor_step": True}
    portal = "staff"
    after = "/staff"
    mandatory = True


__all__ = ["StaffAuth", "StaffSecondFactor", "Controller"]
