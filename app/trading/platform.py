"""What the CRM needs from a trading platform, in the CRM's words.

MT5 (through its Web API) is the first implementation; MT4 or cTrader can be added by
implementing `TradingPlatform` without touching provisioning, sync or funding. Amounts are
`Decimal`, times are Unix seconds *as the platform reports them* (MT5 reports server time,
which may be offset from UTC; sync measures and corrects the offset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable


class PlatformError(Exception):
    """A platform refused or failed an operation. `message` is fit to show to staff or a client."""

    retryable = False

    def __init__(self, message: str, *, code: int | None = None, command: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.command = command


class Unreachable(PlatformError):
    """Nothing was sent, or the server could not be reached: safe to retry as is."""

    retryable = True


class OutcomeUnknown(PlatformError):
    """The request went out but no answer came back (timeout, dropped connection): the operation
    may or may not have happened. Look for it before sending it again."""

    retryable = True


class AuthFailed(PlatformError):
    """Manager credentials rejected, or the server failed mutual authentication (a fake server)."""


class BadResponse(PlatformError):
    """The server answered something that is not the protocol (malformed JSON, missing fields)."""

    retryable = True


class NotFound(PlatformError):
    """Unknown login, group or record."""


class Duplicate(PlatformError):
    """The login (or record) already exists."""


class WeakPassword(PlatformError):
    """The platform rejected a new password as too weak."""


class WrongPassword(PlatformError):
    """check_password: the password does not match."""


class NotEnoughMoney(PlatformError):
    """A withdrawal beyond balance / free margin / issued credit."""


class InvalidRequest(PlatformError):
    """Invalid parameters or data (bad type, amount over the maximum, …)."""


class PermissionDenied(PlatformError):
    """The manager may not do this (MT5 also answers this for an unknown group)."""


class AccountDisabled(PlatformError):
    """The trading account is disabled on the platform."""


class Busy(PlatformError):
    """Too frequent requests: back off and retry."""

    retryable = True


class BalanceType(IntEnum):
    BALANCE = 2  # deposit (+) / withdrawal (-)
    CREDIT = 3
    CHARGE = 4
    CORRECTION = 5
    BONUS = 6


class PasswordKind:
    MAIN = "main"
    INVESTOR = "investor"


@dataclass(frozen=True)
class NewAccount:
    group: str
    name: str
    leverage: int
    password_main: str
    password_investor: str
    email: str = ""
    login: int = 0  # 0: the platform allocates one
    first_name: str = ""
    last_name: str = ""
    country: str = ""
    city: str = ""
    address: str = ""
    zipcode: str = ""
    phone: str = ""
    language: str = ""
    comment: str = ""
    client_ref: str = ""  # the CRM's client id, stored on the platform (MT5 `ID`)
    agent: int = 0
    rights: int | None = None  # None: the platform's default


@dataclass(frozen=True)
class AccountUpdate:
    """Only the fields that are not None are changed."""

    group: str | None = None
    name: str | None = None
    email: str | None = None
    leverage: int | None = None
    rights: int | None = None
    comment: str | None = None
    client_ref: str | None = None
    agent: int | None = None


@dataclass(frozen=True)
class PlatformUser:
    login: int
    group: str
    name: str
    email: str
    leverage: int
    rights: int
    balance: Decimal
    credit: Decimal
    registration: int
    comment: str = ""
    client_ref: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class AccountState:
    login: int
    balance: Decimal
    credit: Decimal
    equity: Decimal
    margin: Decimal
    margin_free: Decimal
    margin_level: Decimal
    profit: Decimal  # floating P/L of open positions
    storage: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    leverage: int = 0
    currency_digits: int = 2


@dataclass(frozen=True, slots=True)
class Deal:
    deal: int  # the ticket: the natural key of a deal on its server
    login: int
    action: int  # 0 buy, 1 sell, 2 balance, 3 credit, 4 charge, 5 correction, 6 bonus, 7.. commission …
    entry: int  # 0 in, 1 out, 2 inout, 3 out_by
    reason: int
    time: int  # platform time, Unix seconds
    time_msc: int
    symbol: str
    price: Decimal
    volume: int  # 1/10000 lot
    profit: Decimal
    storage: Decimal  # swap
    commission: Decimal
    fee: Decimal
    position_id: int
    order: int
    comment: str
    contract_size: Decimal = Decimal(0)
    digits: int = 5
    dealer: int = 0


@dataclass(frozen=True, slots=True)
class Position:
    position: int
    login: int
    symbol: str
    action: int  # 0 buy, 1 sell
    volume: int  # 1/10000 lot
    price_open: Decimal
    price_current: Decimal
    price_sl: Decimal
    price_tp: Decimal
    profit: Decimal
    storage: Decimal
    time_create: int
    time_update: int
    digits: int = 5
    contract_size: Decimal = Decimal(0)
    comment: str = ""


@dataclass(frozen=True)
class Group:
    name: str
    currency: str
    leverage: int  # the group's default / maximum
    currency_digits: int = 2
    margin_call: Decimal = Decimal(100)
    stop_out: Decimal = Decimal(50)
    commission_per_lot: Decimal = Decimal(0)


@runtime_checkable
class TradingPlatform(Protocol):
    """One connection (possibly a pool) to one trading server, used by one process."""

    async def create_account(self, new: NewAccount) -> PlatformUser: ...

    async def get_user(self, login: int) -> PlatformUser: ...

    async def update_account(self, login: int, change: AccountUpdate) -> PlatformUser: ...

    async def change_leverage(self, login: int, leverage: int) -> None: ...

    async def change_password(self, login: int, password: str, kind: str = PasswordKind.MAIN) -> None: ...

    async def check_password(self, login: int, password: str, kind: str = PasswordKind.MAIN) -> bool: ...

    async def find_user(self, group: str, comment: str) -> PlatformUser | None:
        """The user of `group` whose comment is exactly `comment`: how an account whose creation
        was never confirmed is found again instead of being created twice."""
        ...

    async def balance_operation(self, login: int, type: BalanceType, amount: Decimal, comment: str) -> int:
        """Returns the deal ticket. Raises OutcomeUnknown when the request may have been applied."""
        ...

    async def find_balance_operation(self, login: int, comment: str, since: int) -> Deal | None:
        """The balance deal with exactly this comment on this login since `since` (platform time)."""
        ...

    async def fetch_accounts(self, logins: list[int]) -> list[AccountState]: ...

    async def fetch_deals(self, logins: list[int], since: int, until: int) -> list[Deal]:
        """Every deal of these logins with since <= time <= until (platform time)."""
        ...

    async def fetch_positions(self, logins: list[int]) -> list[Position]: ...

    async def list_groups(self) -> list[Group]: ...

    async def server_time(self) -> int: ...

    async def close(self) -> None: ...


# The order of the string columns of `DealRowSource.fetch_deal_rows`: the `Deal` fields, in order.
DEAL_ROW_COLUMNS = (
    "deal",
    "login",
    "action",
    "entry",
    "reason",
    "time",
    "time_msc",
    "symbol",
    "price",
    "volume",
    "profit",
    "storage",
    "commission",
    "fee",
    "position_id",
    "order",
    "comment",
    "contract_size",
    "digits",
    "dealer",
)


@runtime_checkable
class DealRowSource(Protocol):
    """Optional for a platform: deals as plain strings in `DEAL_ROW_COLUMNS` order (numbers exactly as
    the platform sent them), so a bulk load can COPY them without building a `Decimal` per field."""

    async def fetch_deal_rows(self, logins: list[int], since: int, until: int) -> list[tuple[str, ...]]: ...
