"""The staff console's sections and which roles may enter each.

One table serves both the guards and the navigation, so a link is shown exactly when the
guard behind it lets the viewer in (the guard, not the hidden link, is what protects it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from app.core.auth.guards import principal_of, requires_roles


@dataclass(frozen=True)
class Section:
    key: str
    label: str
    url: str
    roles: tuple[str, ...]  # besides admin, who may enter every section


SECTIONS: tuple[Section, ...] = (
    Section("home", "Overview", "/staff", ("compliance", "finance", "sales", "dealing")),
    Section("clients", "Clients", "/staff/clients", ("compliance", "finance", "sales", "dealing")),
    Section("kyc", "KYC", "/staff/kyc", ("compliance",)),
    Section("accounts", "Accounts", "/staff/accounts", ("dealing", "finance")),
    Section("funding", "Funding", "/staff/funding", ("finance",)),
    Section("partners", "Partners", "/staff/partners", ("sales", "finance")),
    Section("marketing", "Marketing", "/staff/marketing", ("sales",)),
    Section("reports", "Reports", "/staff/reports", ("finance", "compliance")),
    Section("audit", "Audit", "/staff/audit", ("compliance",)),
    Section("settings", "Settings", "/staff/settings", ()),
)
BY_KEY = {s.key: s for s in SECTIONS}


def section_guard(key: str) -> Any:
    return requires_roles(*BY_KEY[key].roles)


def may_enter(roles: frozenset[str], key: str) -> bool:
    return "admin" in roles or bool(roles & set(BY_KEY[key].roles))


@functools.lru_cache(maxsize=256)
def _sections_for(roles: frozenset[str]) -> tuple[Section, ...]:
    return tuple(s for s in SECTIONS if may_enter(roles, s.key))


def staff_nav(request: Any) -> list[dict[str, Any]]:
    """The sections this viewer may enter, the current one marked."""
    p = principal_of(request)
    if p is None or not p.is_staff:
        return []
    path = request.scope["path"]
    return [
        {
            "label": s.label,
            "url": s.url,
            "active": path == s.url or (s.url != "/staff" and path.startswith(s.url + "/")),
        }
        for s in _sections_for(p.roles)
    ]
