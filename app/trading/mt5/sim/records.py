"""The simulator's objects and their MT5 JSON records (field names as MT5 spells them, every
number sent as a JSON string)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

RIGHT_ENABLED = 0x1
RIGHT_TRADE_DISABLED = 0x4
DEFAULT_RIGHTS = 0x163
NO_COLOR = 4278190080  # 0xFF000000: MT5's "no colour"

# user fields a manager may set (user/add, user/update); text unless listed in USER_INT_FIELDS
USER_TEXT_FIELDS = (
    "Name", "FirstName", "LastName", "MiddleName", "Company", "Account", "Country", "Language", "City",
    "State", "ZipCode", "Address", "Phone", "Email", "ID", "Status", "Comment", "LeadCampaign",
    "LeadSource", "LastIP",
)  # fmt: skip
USER_INT_FIELDS = ("Rights", "Color", "Leverage", "Agent", "ClientID")
USER_FIELDS = (
    "Login", "Group", "Rights", "Registration", "LastAccess", "LastIP", "Name", "FirstName", "LastName",
    "MiddleName", "Company", "Account", "Country", "Language", "City", "State", "ZipCode", "Address",
    "Phone", "Email", "ID", "Status", "Comment", "Color", "Leverage", "Agent", "Balance", "Credit",
    "BalancePrevDay", "EquityPrevDay", "LeadCampaign", "LeadSource", "ClientID",
)  # fmt: skip


def money(value: float, digits: int) -> str:
    return f"{round(value, digits) + 0.0:.{digits}f}"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class Group:
    name: str
    currency: str = "USD"
    currency_digits: int = 2
    leverage: int = 100  # default leverage of new accounts (MT5: DemoLeverage)
    margin_call: float = 100.0
    margin_stopout: float = 50.0
    commission: float = 0.0  # per lot, round turn, group currency; charged half on each side
    company: str = "FX CRM Simulator"

    def record(self) -> dict[str, Any]:
        per_side = self.commission / 2
        return {
            "Group": self.name,
            "Server": "1",
            "PermissionsFlags": "0",
            "AuthMode": "0",
            "AuthPasswordMin": "8",
            "Company": self.company,
            "Currency": self.currency,
            "CurrencyDigits": str(self.currency_digits),
            "ReportsMode": "0",
            "NewsMode": "2",
            "MailMode": "1",
            "TradeFlags": "0",
            "MarginFreeMode": "1",
            "MarginSOMode": "0",  # 0: MarginCall/MarginStopOut are margin levels in percent
            "MarginCall": f"{self.margin_call:.2f}",
            "MarginStopOut": f"{self.margin_stopout:.2f}",
            "DemoLeverage": str(self.leverage),
            "DemoDeposit": "0.00",
            "LimitPositions": "0",
            "LimitOrders": "0",
            "Commissions": [
                {
                    "Name": "standard",
                    "Description": f"{self.commission:g} per lot round turn",
                    "Path": "*",
                    "Mode": "0",  # standard
                    "RangeMode": "0",  # volume in lots
                    "ChargeMode": "0",  # charged instantly, on every deal
                    "EntryMode": "0",  # in and out
                    "Tiers": [
                        {
                            "Mode": "1",  # money per lot
                            "Type": "0",
                            "Value": f"{per_side:.2f}",
                            "Minimal": "0.00",
                            "Maximal": "0.00",
                            "RangeFrom": "0.00",
                            "RangeTo": "1000000.00",
                            "Currency": self.currency,
                        }
                    ],
                }
            ]
            if self.commission
            else [],
        }


@dataclass
class User:
    login: int
    group: str
    data: dict[str, Any]  # settable fields by MT5 name, plus Registration / LastAccess
    balance: float = 0.0
    credit: float = 0.0
    pass_main: str = ""  # hex MT5 password hash (PH), never the password
    pass_investor: str = ""
    pass_api: str = ""
    so: dict[str, Any] = field(default_factory=dict)  # last stop-out: SOTime, SOLevel, SOEquity, SOMargin

    @property
    def rights(self) -> int:
        return int(self.data.get("Rights", DEFAULT_RIGHTS))

    @property
    def leverage(self) -> int:
        return int(self.data.get("Leverage", 100))

    def can_trade(self) -> bool:
        rights = self.rights
        return bool(rights & RIGHT_ENABLED) and not rights & RIGHT_TRADE_DISABLED and self.balance > 0

    def record(self, digits: int) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in USER_FIELDS:
            if name == "Login":
                out[name] = str(self.login)
            elif name == "Group":
                out[name] = self.group
            elif name == "Balance":
                out[name] = money(self.balance, digits)
            elif name == "Credit":
                out[name] = money(self.credit, digits)
            elif name in ("BalancePrevDay", "EquityPrevDay"):
                out[name] = money(float(self.data.get(name, 0.0)), digits)
            elif name in USER_INT_FIELDS or name in ("Registration", "LastAccess"):
                out[name] = str(int(self.data.get(name, 0)))
            else:
                out[name] = str(self.data.get(name, ""))
        return out


@dataclass
class Position:
    position: int
    login: int
    symbol: str
    action: int  # 0 buy, 1 sell
    volume: int  # 1/10000 lot
    price_open: float
    time_create_msc: int
    time_update_msc: int
    storage: float = 0.0
    rate_margin: float = 1.0
    comment: str = ""
    reason: int = 0

    @property
    def lots(self) -> float:
        return self.volume / 10000


DEAL_FIELDS = (
    "Deal", "ExternalID", "Login", "Dealer", "Order", "Action", "Entry", "Reason", "Digits",
    "DigitsCurrency", "ContractSize", "Time", "TimeMsc", "Symbol", "Price", "Volume", "VolumeExt",
    "Profit", "Storage", "Commission", "Fee", "RateProfit", "RateMargin", "ExpertID", "PositionID",
    "Comment", "TickValue", "TickSize", "Flags", "Gateway", "PriceSL", "PriceTP", "VolumeClosed",
    "PricePosition",
)  # fmt: skip


def deal_json(
    *,
    deal: int,
    login: int,
    time_msc: int,
    action: int,
    entry: int = 0,
    reason: int = 0,
    currency_digits: int = 2,
    dealer: int = 0,
    order: int = 0,
    symbol: str = "",
    digits: int = 0,
    contract: float = 0.0,
    price: float = 0.0,
    volume: int = 0,
    profit: float = 0.0,
    storage: float = 0.0,
    commission: float = 0.0,
    rate_profit: float = 1.0,
    rate_margin: float = 0.0,
    position_id: int = 0,
    comment: str = "",
    tick_value: float = 0.0,
    price_position: float = 0.0,
    volume_closed: int = 0,
) -> str:
    """One deal as MT5 JSON text, built once when the deal happens and served as stored."""
    cd = currency_digits
    tick_size = 10.0**-digits if symbol else 0.0
    values = (
        str(deal), "", str(login), str(dealer), str(order), str(action), str(entry), str(reason),
        str(digits), str(cd), f"{contract:.2f}", str(time_msc // 1000), str(time_msc), symbol,
        f"{price:.{digits}f}", str(volume), str(volume * 10000), money(profit, cd), money(storage, cd),
        money(commission, cd), money(0.0, cd), f"{rate_profit:.8f}", f"{rate_margin:.8f}", "0",
        str(position_id), comment, f"{tick_value:.8f}", f"{tick_size:.{digits}f}", "0", "", 
        f"{0.0:.{digits}f}", f"{0.0:.{digits}f}", str(volume_closed), f"{price_position:.{digits}f}",
    )  # fmt: skip
    return dumps(dict(zip(DEAL_FIELDS, values, strict=True)))
