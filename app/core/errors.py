"""Errors services raise and controllers turn into pages."""

from __future__ import annotations

from litestar.exceptions import NotFoundException


class FormErrors(Exception):
    """Field-level problems: shown beside each field, with the user's input kept."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class NotFound(NotFoundException):
    """Missing, or not visible to this viewer: the two are deliberately indistinguishable."""

    def __init__(self, what: str = "") -> None:
        super().__init__(detail=f"{what} not found" if what else "not found")
