"""What deposits, withdrawals and transfers must never say, and the keys that make retries safe.
Raw SQL runs before a migration's table operations, hence a migration of its own after 0007."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T16:21:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "funding movements: checks, unique keys, the policy row"


class Raw(Table, tablename="funding_policy"):
    pass


STATEMENTS = [
    # deposits
    "ALTER TABLE funding_deposits ADD CONSTRAINT funding_deposits_amount CHECK (amount > 0)",
    "ALTER TABLE funding_deposits ADD CONSTRAINT funding_deposits_fees CHECK (fee_broker >= 0 AND fee_provider >= 0)",
    "ALTER TABLE funding_deposits ADD CONSTRAINT funding_deposits_status CHECK "
    "(status IN ('created', 'pending', 'completed', 'failed', 'cancelled'))",
    "ALTER TABLE funding_deposits ADD CONSTRAINT funding_deposits_completed CHECK "
    "(status <> 'completed' OR (transaction_id IS NOT NULL AND credited_amount IS NOT NULL))",
    "CREATE UNIQUE INDEX funding_deposits_provider_payment ON funding_deposits (provider, provider_payment_id) "
    "WHERE provider_payment_id <> ''",
    "CREATE UNIQUE INDEX funding_deposits_tx_hash ON funding_deposits (provider, tx_hash) WHERE tx_hash <> ''",
    "CREATE INDEX funding_deposits_status_created ON funding_deposits (status, created_at)",
    # withdrawals
    "ALTER TABLE funding_withdrawals ADD CONSTRAINT funding_withdrawals_amount CHECK "
    "(amount > 0 AND requested_amount > 0)",
    "ALTER TABLE funding_withdrawals ADD CONSTRAINT funding_withdrawals_status CHECK (status IN "
    "('moving', 'requested', 'approved', 'paying', 'paid', 'rejected', 'cancelled', 'failed'))",
    "ALTER TABLE funding_withdrawals ADD CONSTRAINT funding_withdrawals_approvals CHECK "
    "(approvals_required BETWEEN 1 AND 2)",
    "ALTER TABLE funding_withdrawals ADD CONSTRAINT funding_withdrawals_source CHECK "
    "((source = 'wallet' AND trading_account_id IS NULL) OR (source = 'account' AND trading_account_id IS NOT NULL))",
    "CREATE INDEX funding_withdrawals_status_created ON funding_withdrawals (status, created_at)",
    "CREATE UNIQUE INDEX funding_withdrawal_approvals_step ON funding_withdrawal_approvals (withdrawal_id, step)",
    "CREATE UNIQUE INDEX funding_withdrawal_approvals_officer ON funding_withdrawal_approvals "
    "(withdrawal_id, staff_user_id)",
    "ALTER TABLE funding_withdrawal_approvals ADD CONSTRAINT funding_withdrawal_approvals_step_range CHECK "
    "(step BETWEEN 1 AND 2)",
    # transfers
    "ALTER TABLE funding_transfers ADD CONSTRAINT funding_transfers_amount CHECK (amount > 0)",
    "ALTER TABLE funding_transfers ADD CONSTRAINT funding_transfers_kind CHECK (kind IN "
    "('wallet_to_account', 'account_to_wallet', 'account_to_account', 'client_to_client'))",
    "ALTER TABLE funding_transfers ADD CONSTRAINT funding_transfers_status CHECK (status IN "
    "('pending', 'awaiting_approval', 'done', 'failed', 'rejected'))",
    "CREATE INDEX funding_transfers_status_created ON funding_transfers (status, created_at)",
    # idempotent API requests, statements, fx
    "CREATE UNIQUE INDEX funding_idempotent_requests_key ON funding_idempotent_requests (scope, key)",
    "CREATE UNIQUE INDEX funding_statement_lines_bank_id ON funding_statement_lines (bank_id)",
    "ALTER TABLE funding_fx_rates ADD CONSTRAINT funding_fx_rates_positive CHECK (rate > 0 AND base <> quote)",
    "CREATE INDEX funding_fx_rates_pair ON funding_fx_rates (base, quote, as_of DESC)",
    "ALTER TABLE funding_policy ADD CONSTRAINT funding_policy_values CHECK "
    "(dual_approval_over >= 0 AND crypto_confirmations BETWEEN 1 AND 100)",
    "INSERT INTO funding_policy (id, policy_currency, dual_approval_over, crypto_confirmations, bank_name, "
    "bank_beneficiary, bank_iban, bank_swift, updated_by, updated_at) VALUES (1, 'USD', 10000, 3, "
    "'Example Bank plc', 'FX CRM Markets Ltd (client money)', 'GB33BUKB20201555555555', 'BUKBGB22', 'migration', now())",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="funding", description=DESCRIPTION)

    async def add():
        for statement in STATEMENTS:
            await Raw.raw(statement)

    manager.add_raw(add)
    return manager
