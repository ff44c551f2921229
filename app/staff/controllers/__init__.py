"""The staff console: one Router, one guard, one layout."""

from litestar import Router

from app.core.auth.guards import staff_guard
from app.staff.controllers.audit import AuditLog
from app.staff.controllers.auth import StaffAuth, StaffSecondFactor
from app.staff.controllers.console import Console
from app.staff.controllers.system import SystemPages
from app.staff.controllers.users import StaffUsers


def build_staff_router(extra: list) -> Router:
    return Router(
        path="/staff",
        guards=[staff_guard],
        route_handlers=[StaffAuth, StaffSecondFactor, Console, StaffUsers, AuditLog, SystemPages, *extra],
        include_in_schema=False,
    )
