"""Funding controllers: portal_deposits (being written)."""

from __future__ import annotations

from typing import Any

PORTAL: tuple[Any, ...] = ()  # controllers under /portal (the client portal's guard)
STAFF: tuple[Any, ...] = ()  # controllers under /staff
API: tuple[Any, ...] = ()  # handlers/controllers under /api (no session; own auth)
