"""Funding's tables: the double-entry ledger (accounts, transactions, postings, withdrawal holds),
then the business rows that move money through it (deposits, withdrawals and their approvals,
transfers, webhook events, bank statements, chain transactions, API idempotency keys) and finance's
settings (payment methods, policy, FX rates) and reconciliation runs.

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


# --- deposits, withdrawals, transfers (issue 6) ---------------------------------------------------


class FundingPolicy(Table, tablename="funding_policy"):
    """Finance's settings for money movements: one row (id 1), changed in the console, audited.

    `dual_approval_over`: a withdrawal worth more than this (in `policy_currency`, converted at the
    latest rate) needs two distinct approvers, in order. The bank details are what wire deposits
    show next to the client's reference."""

    id: Serial
    policy_currency = Varchar(length=8, default="USD")
    dual_approval_over = Numeric(default=Decimal("10000"))
    crypto_confirmations = SmallInt(default=3)
    bank_name = Varchar(length=200, default="")
    bank_beneficiary = Varchar(length=200, default="")
    bank_iban = Varchar(length=64, default="")
    bank_swift = Varchar(length=16, default="")
    updated_by = Varchar(length=320, default="")
    updated_at = Timestamptz()


class FxRate(Table, tablename="funding_fx_rates"):
    """A conversion rate finance (or a feed) recorded: 1 `base` = `rate` `quote`. Conversions use
    the latest row for the pair at the time and keep the rate they used."""

    id: Serial
    base = Varchar(length=8)
    quote = Varchar(length=8)
    rate = Numeric()
    source = Varchar(length=64, default="manual")
    created_by = Varchar(length=320, default="")
    as_of = Timestamptz()


class Deposit(Table, tablename="funding_deposits"):
    """One deposit a client started (card, e-wallet, wire, crypto), from creation to credit.

    `amount`/`currency` is what the client pays; `credited_amount` in `credit_currency` what the
    wallet received after fees and any conversion (`fx_rate`: 1 `currency` = rate `credit_currency`).
    `instrument_key` identifies the card or account paid from (the provider's token): withdrawals
    return to it first."""

    id = BigSerial(primary_key=True)
    client_id = ForeignKey(references=Client, on_delete=OnDelete.restrict, null=False, index=True)
    method_id = ForeignKey(references=PaymentMethod, on_delete=OnDelete.restrict, null=True)
    provider = Varchar(length=64)
    kind = Varchar(length=12)  # card | ewallet | wire | crypto
    reference = Varchar(length=40, unique=True)  # what the client quotes (wire) and support searches
    amount = Numeric()
    currency = Varchar(length=8)
    requested_amount = Numeric(null=True, default=None)  # set when the provider paid another amount
    fee_broker = Numeric(default=Decimal(0))
    fee_provider = Numeric(default=Decimal(0))
    credit_currency = Varchar(length=8)
    credited_amount = Numeric(null=True, default=None)
    fx_rate = Numeric(null=True, default=None)
    status = Varchar(length=16, default="created")  # created | pending | completed | failed | cancelled
    provider_payment_id = Varchar(length=200, default="")  # unique per provider when set
    instrument = Varchar(length=200, default="")  # shown: "Visa •••• 4242"
    instrument_key = Varchar(length=200, default="")
    failure_reason = Text(default="")
    receipt_path = Varchar(length=500, default="")  # wire receipt, under the document store
    crypto_address = Varchar(length=200, default="")
    tx_hash = Varchar(length=200, default="")  # unique when set
    confirmations = Integer(default=0)
    transaction_id = ForeignKey(references=LedgerTransaction, on_delete=OnDelete.restrict, null=True)
    idempotency_key = Varchar(length=200, null=True, default=None, unique=True)
    created_by = Varchar(length=320, default="")
    created_at = Timestamptz()
    updated_at = Timestamptz()
    paid_at = Timestamptz(null=True, default=None)  # the provider confirmed the money (migration 0009)
    completed_at = Timestamptz(null=True, default=None)


class Withdrawal(Table, tablename="funding_withdrawals"):
    """A withdrawal from the wallet or a trading account, from request to payout.

    Funds are held at request (`hold_id`; from an account they first come off MT5 through
    `op_id`). `requested_amount` keeps what the client asked for when staff change `amount` before
    approval. Approvals are rows of `WithdrawalApproval`; `approvals_required` is fixed at request."""

    id = BigSerial(primary_key=True)
    client_id = ForeignKey(references=Client, on_delete=OnDelete.restrict, null=False, index=True)
    source = Varchar(length=8, default="wallet")  # wallet | account
    trading_account_id = ForeignKey(references=TradingAccount, on_delete=OnDelete.restrict, null=True)
    method_id = ForeignKey(references=PaymentMethod, on_delete=OnDelete.restrict, null=True)
    provider = Varchar(length=64, default="")
    destination = JSONB(default={})  # {"kind": …, "instrument_key": …, "label": …, …}
    destination_label = Varchar(length=200, default="")
    amount = Numeric()
    requested_amount = Numeric()
    currency = Varchar(length=8)
    status = Varchar(length=16, default="requested")
    # moving (account → wallet on MT5) | requested | approved | paying | paid | rejected | cancelled | failed
    approvals_required = SmallInt(default=1)
    hold_id = ForeignKey(references=Hold, on_delete=OnDelete.restrict, null=True)
    op_id = Varchar(length=40, default="")
    prechecks = JSONB(default=[])
    requested_by = Varchar(length=320, default="")
    requester_kind = Varchar(length=8, default="client")  # client | staff | api
    requester_id = Integer(null=True, default=None)  # the client's or staff user's id
    rejection_reason = Text(default="")
    payout_reference = Varchar(length=200, default="")
    payout_attempts = Integer(default=0)
    payout_error = Text(default="")
    idempotency_key = Varchar(length=200, null=True, default=None, unique=True)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    decided_at = Timestamptz(null=True, default=None)
    paid_at = Timestamptz(null=True, default=None)


class WithdrawalApproval(Table, tablename="funding_withdrawal_approvals"):
    """One finance officer's approval of a withdrawal. Unique per (withdrawal, step) and per
    (withdrawal, officer): the database itself refuses a second approval by the same person."""

    id: Serial
    withdrawal_id = ForeignKey(references=Withdrawal, on_delete=OnDelete.restrict, null=False, index=True)
    step = SmallInt()
    staff_user_id = Integer()
    staff_label = Varchar(length=320, default="")
    created_at = Timestamptz()


class Transfer(Table, tablename="funding_transfers"):
    """Money moved between a client's wallet and trading accounts, or to another client.

    A leg on MT5 goes through `app.trading.operations` (`op_id`, `op_id_2` for the second leg of
    account → account); the transfer stays `pending` until the operation settles, and the ledger
    side is booked in the same transaction that settles it."""

    id = BigSerial(primary_key=True)
    kind = Varchar(length=24)  # wallet_to_account | account_to_wallet | account_to_account | client_to_client
    client_id = ForeignKey(references=Client, on_delete=OnDelete.restrict, null=False, index=True)
    to_client_id = ForeignKey(references=Client, on_delete=OnDelete.restrict, null=True)
    from_account_id = ForeignKey(references=TradingAccount, on_delete=OnDelete.restrict, null=True)
    to_account_id = ForeignKey(references=TradingAccount, on_delete=OnDelete.restrict, null=True)
    amount = Numeric()
    currency = Varchar(length=8)
    # pending | awaiting_approval | done | failed | rejected | cancelled
    status = Varchar(length=20, default="pending")
    hold_id = ForeignKey(references=Hold, on_delete=OnDelete.restrict, null=True)
    op_id = Varchar(length=40, default="")
    op_id_2 = Varchar(length=40, default="")
    transaction_id = ForeignKey(references=LedgerTransaction, on_delete=OnDelete.restrict, null=True)
    note = Text(default="")
    message = Text(default="")  # why it failed or was rejected
    requested_by = Varchar(length=320, default="")
    requester_kind = Varchar(length=8, default="client")  # client | staff | api | system (migration 16:33)
    requester_id = Integer(null=True, default=None)  # the client's or staff user's id
    decided_by = Varchar(length=320, default="")
    idempotency_key = Varchar(length=200, null=True, default=None, unique=True)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    done_at = Timestamptz(null=True, default=None)


class IdempotentRequest(Table, tablename="funding_idempotent_requests"):
    """The first answer to a money-moving API request, by (scope, Idempotency-Key): a replay gets
    it back; the same key with another body is refused. `status_code` is null while in progress."""

    id = BigSerial(primary_key=True)
    scope = Varchar(length=100)  # "apikey:<id>"; unique with key (migration)
    key = Varchar(length=200)
    fingerprint = Varchar(length=64)
    method_path = Varchar(length=300)
    status_code = SmallInt(null=True, default=None)
    response = JSONB(default={})  # {"body": exact JSON text, "headers": {...}} once stored
    created_at = Timestamptz()  # when claimed; reset when an abandoned claim is taken over (the lease)


class StatementImport(Table, tablename="funding_statement_imports"):
    """One bank statement (CSV) finance imported to match wire deposits."""

    id: Serial
    filename = Varchar(length=255, default="")
    currency = Varchar(length=8, default="")
    lines = Integer(default=0)
    matched = Integer(default=0)
    imported_by = Varchar(length=320, default="")
    created_at = Timestamptz()


class StatementLine(Table, tablename="funding_statement_lines"):
    """One credit line of an imported statement, matched to a wire deposit by reference (or by
    hand), or left for finance. `bank_id` (the bank's own transaction id) makes a re-import of the
    same statement add nothing."""

    id = BigSerial(primary_key=True)
    import_id = ForeignKey(references=StatementImport, on_delete=OnDelete.restrict, null=False, index=True)
    line_no = Integer()
    booked_on = Varchar(length=10, default="")  # ISO date as the bank gave it
    amount = Numeric()
    currency = Varchar(length=8)
    reference = Varchar(length=500, default="")
    payer = Varchar(length=200, default="")
    bank_id = Varchar(length=200)  # unique (migration): the bank's id, or a hash of the line
    status = Varchar(length=12, default="unmatched")  # matched | unmatched | ignored
    deposit_id = ForeignKey(references=Deposit, on_delete=OnDelete.restrict, null=True)
    note = Text(default="")
    matched_by = Varchar(length=320, default="")
    matched_at = Timestamptz(null=True, default=None)


class CryptoAddress(Table, tablename="funding_crypto_addresses"):
    """A client's own deposit address on a chain: whatever arrives there is theirs."""

    id: Serial
    client_id = ForeignKey(references=Client, on_delete=OnDelete.restrict, null=False, index=True)
    currency = Varchar(length=8)
    network = Varchar(length=32)
    address = Varchar(length=200, unique=True)
    created_at = Timestamptz()


class ChainTransaction(Table, tablename="funding_chain_transactions"):
    """A transaction the crypto feed reported, kept once per (provider, tx_hash) however often the
    feed repeats it. `deposit`: it reached a client's address and has its Deposit; `unassigned`: the
    address is nobody's, so finance must decide (suspense); `resolved`: finance did; `dropped`: the
    chain re-organised it away before it was credited. Migration funding_0010."""

    id = BigSerial(primary_key=True)
    provider = Varchar(length=64)
    tx_hash = Varchar(length=200)
    address = Varchar(length=200)
    network = Varchar(length=32, default="")
    currency = Varchar(length=8)
    amount = Numeric()
    confirmations = Integer(default=0)
    status = Varchar(length=16, default="deposit")  # deposit | unassigned | resolved | dropped
    deposit_id = ForeignKey(references=Deposit, on_delete=OnDelete.restrict, null=True)
    note = Text(default="")
    resolved_by = Varchar(length=320, default="")
    first_seen_at = Timestamptz()
    updated_at = Timestamptz()


class ChainCursor(Table, tablename="funding_chain_cursors"):
    """How far the CRM has read a chain provider's feed (its opaque cursor)."""

    provider = Varchar(length=64, primary_key=True)
    cursor = Varchar(length=200, default="")
    updated_at = Timestamptz()
