from decimal import Decimal

from piccolo.columns import (
    BigInt,
    BigSerial,
    Boolean,
    Bytea,
    ForeignKey,
    Integer,
    Numeric,
    Serial,
    SmallInt,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from app.clients.tables import Client

PLATFORMS = ("mt5",)
ACCOUNT_STATUSES = ("pending", "active", "failed", "archived")
OPERATION_STATUSES = ("pending", "sending", "done", "failed")


class TradingServer(Table, tablename="trading_servers"):
    """A trading server the CRM manages accounts on. The manager password is AES-GCM encrypted
    (`app.trading.credentials`); it is never shown again once saved."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    name = Varchar(length=100, unique=True)
    platform = Varchar(length=16, default="mt5")
    address = Varchar(length=255)  # host:port
    use_tls = Boolean(default=True)
    verify_tls = Boolean(default=True)  # off only for a self-signed simulator
    manager_login = BigInt()
    password_enc = Bytea()
    active = Boolean(default=True, index=True)
    timeout_seconds = Integer(default=10)
    pool_size = Integer(default=2)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class AccountType(Table, tablename="trading_account_types"):
    """What a client may open: a named product on one server group."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    name = Varchar(length=100)
    server = ForeignKey(references=TradingServer, on_delete=OnDelete.restrict, index=True)
    group_name = Varchar(length=128)
    currency = Varchar(length=3)
    leverages = Varchar(length=200, default="100")  # comma-separated whole numbers offered, e.g. "30,100,500"
    default_leverage = Integer(default=100)
    is_demo = Boolean(default=False)
    active = Boolean(default=True, index=True)
    description = Text(default="")
    created_at = Timestamptz()
    updated_at = Timestamptz()


class TradingAccount(Table, tablename="trading_accounts"):
    """A client's account on a trading server, with its last known state from sync.
    `login` is null while the account is being created on the server (status pending)."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, on_delete=OnDelete.restrict, index=True)
    server = ForeignKey(references=TradingServer, on_delete=OnDelete.restrict, index=True)
    account_type = ForeignKey(references=AccountType, on_delete=OnDelete.restrict, null=True)
    login = BigInt(null=True, default=None)
    group_name = Varchar(length=128)
    currency = Varchar(length=3)
    leverage = Integer(default=100)
    is_demo = Boolean(default=False)
    status = Varchar(length=16, default="pending", index=True)
    trading_disabled = Boolean(default=False)
    error = Text(default="")
    balance = Numeric(null=True, default=None)
    credit = Numeric(null=True, default=None)
    equity = Numeric(null=True, default=None)
    margin = Numeric(null=True, default=None)
    margin_free = Numeric(null=True, default=None)
    margin_level = Numeric(null=True, default=None)
    profit = Numeric(null=True, default=None)
    currency_digits = SmallInt(default=2)
    state_at = Timestamptz(null=True, default=None)  # when balance … profit were read from the server
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Deal(Table, tablename="trading_deals"):
    """Every deal of every synced account, once: unique on (server, deal ticket). `time` is UTC
    (the server's clock offset removed); `platform_time` is what the server said."""

    id = BigSerial(primary_key=True)
    server_id = Integer()
    deal = BigInt()
    login = BigInt()
    account_id = Integer(null=True, default=None)
    client_id = Integer(null=True, default=None)
    action = SmallInt()
    entry = SmallInt(default=0)
    reason = SmallInt(default=0)
    symbol = Varchar(length=32, default="")
    volume = BigInt(default=0)  # 1/10000 lot
    price = Numeric(null=True, default=None)
    profit = Numeric(default=Decimal(0))
    commission = Numeric(default=Decimal(0))
    storage = Numeric(default=Decimal(0))
    fee = Numeric(default=Decimal(0))
    position_id = BigInt(default=0)
    order_id = BigInt(default=0)
    comment = Varchar(length=64, default="")
    contract_size = Numeric(null=True, default=None)
    time = Timestamptz()
    platform_time = BigInt()
    time_msc = BigInt(default=0)
    synced_at = Timestamptz()


class Position(Table, tablename="trading_positions"):
    """Open positions as last read; a position missing from the next read was closed."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    server_id = Integer()
    position = BigInt()
    login = BigInt()
    account_id = Integer(null=True, default=None, index=True)
    symbol = Varchar(length=32)
    action = SmallInt()
    volume = BigInt()
    price_open = Numeric()
    price_current = Numeric()
    price_sl = Numeric(default=Decimal(0))
    price_tp = Numeric(default=Decimal(0))
    profit = Numeric(default=Decimal(0))
    storage = Numeric(default=Decimal(0))
    digits = SmallInt(default=5)
    time_create = Timestamptz()
    time_update = Timestamptz()
    synced_at = Timestamptz()


class BalanceOperation(Table, tablename="trading_balance_operations"):
    """A balance operation sent (or to be sent) to a trading server. `op_id` travels in the
    platform comment, so after a timeout or a crash the operation is looked for on the server
    before anything is sent again: nothing is credited twice, nothing is lost."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    op_id = Varchar(length=24, unique=True)
    account = ForeignKey(references=TradingAccount, on_delete=OnDelete.restrict, index=True)
    type = SmallInt()
    amount = Numeric()
    currency = Varchar(length=3)
    comment = Varchar(length=32)
    status = Varchar(length=16, default="pending", index=True)
    ticket = BigInt(null=True, default=None)
    attempts = Integer(default=0)
    last_error = Text(default="")
    reference = Varchar(length=64, default="")  # what asked for it (e.g. a funding transfer)
    requested_by = Varchar(length=320, default="")
    created_at = Timestamptz()
    updated_at = Timestamptz()
    sent_at = Timestamptz(null=True, default=None)
    done_at = Timestamptz(null=True, default=None)


class SyncState(Table, tablename="trading_sync_state"):
    """Where sync stands with one server: the high-water mark and what ops need to see."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    server = ForeignKey(references=TradingServer, on_delete=OnDelete.cascade, unique=True)
    last_deal_time = BigInt(default=0)  # platform time of the newest synced deal
    last_deal_ticket = BigInt(default=0)
    clock_offset_seconds = Integer(default=0)  # platform time minus UTC, as last measured
    deals_synced_at = Timestamptz(null=True, default=None)
    states_synced_at = Timestamptz(null=True, default=None)
    last_ok_at = Timestamptz(null=True, default=None)
    last_error = Text(default="")
    last_error_at = Timestamptz(null=True, default=None)
    errors_total = BigInt(default=0)
    deals_total = BigInt(default=0)
    lag_ms = Integer(null=True, default=None)  # deal time on the server → stored here, last batch
    status = Varchar(length=16, default="idle")  # idle | ok | catching_up | error


class SyncGap(Table, tablename="trading_sync_gaps"):
    """A range of deal tickets sync expected but did not see; back-filled later or explained."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    server = ForeignKey(references=TradingServer, on_delete=OnDelete.cascade, index=True)
    from_ticket = BigInt()
    to_ticket = BigInt()
    detected_at = Timestamptz()
    resolved_at = Timestamptz(null=True, default=None)
    note = Text(default="")
