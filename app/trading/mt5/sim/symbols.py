"""The instruments the market engine quotes, and currency conversion between them.

Only what P/L and margin need is modelled: contract size, digits, the profit currency (the
currency a price difference is paid in), a spread, a typical volatility, a leverage cap (CFDs
and crypto are not traded at 1:500 anywhere), and a daily swap per lot in the profit currency.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Symbol:
    name: str
    margin_ccy: str
    profit_ccy: str
    digits: int
    contract: float
    start: float
    spread_points: int
    sigma: float  # relative standard deviation of one 100 ms tick
    max_leverage: int
    swap_long: float  # per lot per day, profit currency
    swap_short: float

    @property
    def point(self) -> float:
        return 10.0**-self.digits


SYMBOLS: dict[str, Symbol] = {
    s.name: s
    for s in [
        Symbol("EURUSD", "EUR", "USD", 5, 100_000, 1.08500, 10, 0.00003, 1000, -7.2, 2.4),
        Symbol("GBPUSD", "GBP", "USD", 5, 100_000, 1.27000, 14, 0.00004, 1000, -5.1, 0.9),
        Symbol("USDJPY", "USD", "JPY", 3, 100_000, 150.000, 12, 0.00003, 1000, 1450.0, -2800.0),
        Symbol("AUDUSD", "AUD", "USD", 5, 100_000, 0.66000, 12, 0.00004, 1000, -3.0, -1.2),
        Symbol("USDCHF", "USD", "CHF", 5, 100_000, 0.88000, 15, 0.00003, 1000, 4.0, -9.5),
        Symbol("USDCAD", "USD", "CAD", 5, 100_000, 1.36000, 16, 0.00003, 1000, 0.5, -6.0),
        Symbol("NZDUSD", "NZD", "USD", 5, 100_000, 0.61000, 16, 0.00004, 1000, -2.5, -1.0),
        Symbol("EURGBP", "EUR", "GBP", 5, 100_000, 0.85500, 15, 0.00003, 1000, -4.0, 0.8),
        Symbol("EURJPY", "EUR", "JPY", 3, 100_000, 162.800, 20, 0.00004, 1000, 900.0, -2200.0),
        Symbol("GBPJPY", "GBP", "JPY", 3, 100_000, 190.500, 28, 0.00005, 1000, 1100.0, -2600.0),
        Symbol("XAUUSD", "XAU", "USD", 2, 100, 2350.00, 30, 0.00005, 200, -45.0, 22.0),
        Symbol("XAGUSD", "XAG", "USD", 3, 5_000, 28.500, 30, 0.00008, 200, -12.0, 4.0),
        Symbol("US30", "USD", "USD", 1, 1, 39000.0, 20, 0.00004, 100, -9.0, 2.0),
        Symbol("NAS100", "USD", "USD", 1, 1, 18000.0, 15, 0.00005, 100, -4.5, 1.0),
        Symbol("SPX500", "USD", "USD", 1, 1, 5200.0, 5, 0.00004, 100, -1.3, 0.3),
        Symbol("BTCUSD", "BTC", "USD", 2, 1, 65000.00, 3000, 0.00015, 20, -45.0, -25.0),
        Symbol("ETHUSD", "ETH", "USD", 2, 1, 3500.00, 250, 0.00018, 20, -2.5, -1.5),
        Symbol("USOIL", "USD", "USD", 2, 1_000, 78.00, 4, 0.00007, 100, -8.0, 3.0),
        Symbol("UKOIL", "USD", "USD", 2, 1_000, 82.00, 4, 0.00007, 100, -8.5, 3.2),
        Symbol("GER40", "EUR", "EUR", 1, 1, 18200.0, 15, 0.00004, 100, -2.6, 0.4),
    ]
}
NAMES = sorted(SYMBOLS)

# currency -> (symbol, True when the currency is the base): how to reach USD from it
_TO_USD = {
    "EUR": ("EURUSD", True),
    "GBP": ("GBPUSD", True),
    "JPY": ("USDJPY", False),
    "CHF": ("USDCHF", False),
    "CAD": ("USDCAD", False),
    "AUD": ("AUDUSD", True),
    "NZD": ("NZDUSD", True),
}


def to_usd(ccy: str, prices: dict[str, float]) -> float:
    if ccy in ("USD", "USC"):
        return 1.0 if ccy == "USD" else 0.01
    name, base = _TO_USD[ccy]
    price = prices[name]
    return price if base else 1.0 / price


def rate(src: str, dst: str, prices: dict[str, float]) -> float:
    """How many `dst` one `src` is worth at mid prices."""
    if src == dst:
        return 1.0
    return to_usd(src, prices) / to_usd(dst, prices)


ACCOUNT_CURRENCIES = {"USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "USC"}
