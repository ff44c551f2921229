"""Payment providers behind one interface (`base.PaymentProvider`): the card/e-wallet simulator
(`simcard`), bank wire (`wire`) and the simulated chain (`simchain`). `get(key)` finds one by the
key a payment method names; tests and the app register configured instances with `register`."""

from app.funding.providers.base import (
    PaymentProvider,
    PaymentStart,
    PayoutRequest,
    PayoutResult,
    ProviderError,
    ProviderPayment,
    get,
    register,
    registered,
)

__all__ = [
    "PaymentProvider",
    "PaymentStart",
    "PayoutRequest",
    "PayoutResult",
    "ProviderError",
    "ProviderPayment",
    "get",
    "register",
    "registered",
]
