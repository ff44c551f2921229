"""Trading controllers: the console's accounts section and the client page panel (staff), servers
and account types (settings), and the portal's accounts pages."""

from app.trading.controllers.portal import portal_router
from app.trading.controllers.settings import AccountTypes, TradingServers
from app.trading.controllers.staff import ClientAccounts, TradingAccounts

STAFF_CONTROLLERS = (TradingAccounts, TradingServers, AccountTypes, ClientAccounts)

__all__ = ["STAFF_CONTROLLERS", "portal_router"]
