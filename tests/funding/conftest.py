"""Fixtures funding tests share: the MT5 simulator and trading server rows from the trading tests
(`mt5_sim`: a real simulator process; `trading_server`: its server row; `ops_server`: a server row
with a short timeout, as the balance-operation tests use), re-exported for every funding test."""

from tests.trading.conftest import Sim, make_trading_server, mt5_sim, start_sim, trading_server
from tests.trading.ops_support import ops_server

__all__ = ["Sim", "make_trading_server", "mt5_sim", "ops_server", "start_sim", "trading_server"]
