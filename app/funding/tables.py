"""The double-entry ledger: accounts, transactions, their postings, withdrawal holds and the
reconciliation runs finance reads.

Sign convention: a posting's `amount` is positive for a debit and negative for a credit, so the
postings of a transaction sum to zero per currency. An account's cached `balance` is kept on its
normal side (`Σ amount` for debit-normal accounts, `-Σ amount` for credit-normal ones), so a
client wallet holding 100 USD shows 100, not -100. The database enforces what must never break
(`migrations/funding/funding_0002_constraints.py`): balanced transactions at commit, immutable
postings and transactions, wallets never below zero, a posting's currency equal to its account's.
"""

from decimal import Decimal

from piccolo.columns import (
    JSONB,
    BigInt,
    BigSerial,
    Boolean,
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
from app.trading.tables import TradingAccount


class LedgerAccount(Table, tablename="funding_ledger_accounts"):
    """One account of the ledger, in one currency. A client wallet has a hold sub-account
    (`client_hold`, `parent_id` = the wallet) that carries the funds pending withdrawals hold: the
    wallet's own balance is what the client can use now (see `app.funding.ledger`)."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    kind = Varchar(length=24)
    currency = Varchar(length=8)
    minor_units = SmallInt(default=2)  # the currency's decimals, checked on every posting
    normal_side = Varchar(length=6)  # debit | credit
    client_id = ForeignKey(references=Client, on_delete=OnDelete.restrict, null=True, index=True)
    trading_account_id = ForeignKey(references=TradingAccount, on_delete=OnDelete.restrict, null=True)
    parent_id: ForeignKey["LedgerAccount"] = ForeignKey(
        references="self", on_delete=OnDelete.restrict, null=True
    )
    provider = Varchar(length=64, default="")
    balance = Numeric(default=Decimal(0))  # cache of the postings, on the normal side
    created_at = Timestamptz()


class LedgerTransaction(Table, tablename="funding_transactions"):
    """One movement of money: its postings sum to zero per currency. Never changed or deleted;
    a mistake is undone by a reversal (`reverses_id`), at most one per transaction."""

    id = BigSerial(primary_key=True)
    kind = Varchar(length=16)
    idempotency_key = Varchar(length=200, unique=True)
    fingerprint = Varchar(length=64)  # sha256 of the content: a replayed key must carry the same
    reference = Varchar(length=200, default="", index=True)
    memo = Text(default="")
    created_by = Varchar(length=320)
    reverses_id: ForeignKey["LedgerTransaction"] = ForeignKey(
        references="self", on_delete=OnDelete.restrict, null=True
    )
    created_at = Timestamptz()


class LedgerPosting(Table, tablename="funding_postings"):
    """One line of a transaction. `balance_after` is the account's normal-side balance right
    after this line: account statements need no window function over the whole history."""

    id = BigSerial(primary_key=True)
    transaction_id = ForeignKey(
        references=LedgerTransaction, on_delete=OnDelete.restrict, null=False, index=True
    )
    account_id = ForeignKey(references=LedgerAccount, on_delete=OnDelete.restrict, null=False)
    amount = Numeric()
    currency = Varchar(length=8)
    balance_after = Numeric()


class Hold(Table, tablename="funding_holds"):
    """Funds set aside for a pending withdrawal: moved from the wallet to its hold account by the
    `hold` transaction, then either released back or captured (paid out) by `settle_transaction_id`."""

    id = BigSerial(primary_key=True)
    wallet_id = ForeignKey(references=LedgerAccount, on_delete=OnDelete.restrict, null=False, index=True)
    amount = Numeric()
    currency = Varchar(length=8)
    status = Varchar(length=12, default="held")  # held | released | captured
    hold_transaction_id = ForeignKey(
        references=LedgerTransaction, on_delete=OnDelete.restrict, null=False, unique=True
    )
    settle_transaction_id = ForeignKey(references=LedgerTransaction, on_delete=OnDelete.restrict, null=True)
    reference = Varchar(length=200, default="")
    created_at = Timestamptz()
    settled_at = Timestamptz(null=True, default=None)


class ReconciliationRun(Table, tablename="funding_reconciliation_runs"):
    """One pass of the reconciliation for finance: what was compared and every difference found.
    Differences are reported, never fixed here."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    started_at = Timestamptz()
    finished_at = Timestamptz(null=True, default=None)
    status = Varchar(length=16, default="running")  # running | ok | differences | failed
    accounts_checked = Integer(default=0)
    postings_checked = BigInt(default=0)
    differences = JSONB(default=[])  # [{"check": …, …}]
    triggered_by = Varchar(length=320, default="")
    error = Text(default="")


class WebhookEvent(Table, tablename="funding_webhook_events"):
    """One event a payment provider sent, kept once per (provider, event id) however often it was
    delivered: the inbox `app.funding.webhooks` processes exactly once. `attempts` counts handler
    runs; `last_error` is the latest failure's, cleared when the event is processed."""

    id = BigSerial(primary_key=True)
    provider = Varchar(length=64)
    event_id = Varchar(length=200)  # unique with provider (migration funding_0003)
    event_type = Varchar(length=100, default="")
    payload = JSONB(default={})
    received_at = Timestamptz()
    processed_at = Timestamptz(null=True, default=None)
    attempts = Integer(default=0)
    last_error = Text(default="")
    signature_ok = Boolean(default=False)  # unverified deliveries may be kept, never processed


class PaymentMethod(Table, tablename="funding_payment_methods"):
    """A way to deposit that finance offers (`app.funding.payment_methods`).

    The first of `currencies` is the method's own currency: `min_amount`, `max_amount` and the two
    fixed fees are amounts in it. The broker's fee and the provider's are kept apart because the
    client is shown both. Checks (min ≤ max, fees ≥ 0, percents < 100): migration funding_0006.
    """

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    name = Varchar(length=100)
    kind = Varchar(length=12)  # card | ewallet | wire | crypto
    provider = Varchar(length=64)  # the provider key, e.g. simcard, wire, simchain
    currencies = Varchar(length=200)  # comma-separated codes of `app.funding.amounts.MINOR_UNITS`
    min_amount = Numeric()
    max_amount = Numeric()
    broker_fee_percent = Numeric(default=Decimal(0))
    broker_fee_fixed = Numeric(default=Decimal(0))
    provider_fee_percent = Numeric(default=Decimal(0))
    provider_fee_fixed = Numeric(default=Decimal(0))
    withdrawals_allowed = Boolean(default=False)
    countries = Varchar(length=1000, default="")  # comma-separated ISO 3166 alpha-2; empty: all
    kyc_level = SmallInt(default=0)  # the KYC rank the client must have reached
    active = Boolean(default=True)
    sort_order = Integer(default=0)
    created_at = Timestamptz()
    updated_at = Timestamptz()
