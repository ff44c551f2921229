"""Funding controllers: the console's Funding section (payment methods, for now)."""

from app.funding.controllers.staff import PaymentMethods

STAFF_CONTROLLERS = (PaymentMethods,)

__all__ = ["STAFF_CONTROLLERS"]
