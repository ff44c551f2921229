"""The simulated chain's feed as the CRM saw it: every transaction once (by hash), where it went
(a client's deposit, or suspense when its address is nobody's), and the feed's read position."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T16:31:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "funding: chain transactions seen by the crypto feed, feed cursors"


class Raw(Table, tablename="funding_chain_transactions"):
    pass


STATEMENTS = [
    "CREATE TABLE funding_chain_transactions ("
    " id BIGSERIAL PRIMARY KEY,"
    " provider VARCHAR(64) NOT NULL,"
    " tx_hash VARCHAR(200) NOT NULL,"
    " address VARCHAR(200) NOT NULL,"
    " network VARCHAR(32) NOT NULL DEFAULT '',"
    " currency VARCHAR(8) NOT NULL,"
    " amount NUMERIC NOT NULL,"
    " confirmations INTEGER NOT NULL DEFAULT 0,"
    " status VARCHAR(16) NOT NULL DEFAULT 'deposit',"
    " deposit_id BIGINT NULL REFERENCES funding_deposits (id) ON DELETE RESTRICT,"
    " note TEXT NOT NULL DEFAULT '',"
    " resolved_by VARCHAR(320) NOT NULL DEFAULT '',"
    " first_seen_at TIMESTAMPTZ NOT NULL,"
    " updated_at TIMESTAMPTZ NOT NULL,"
    " CONSTRAINT funding_chain_transactions_status CHECK (status IN ('deposit', 'unassigned', 'resolved', 'dropped')),"
    " CONSTRAINT funding_chain_transactions_amount CHECK (amount > 0 AND confirmations >= 0)"
    ")",
    "CREATE UNIQUE INDEX funding_chain_transactions_hash ON funding_chain_transactions (provider, tx_hash)",
    "CREATE INDEX funding_chain_transactions_status ON funding_chain_transactions (status, first_seen_at)",
    "CREATE TABLE funding_chain_cursors ("
    " provider VARCHAR(64) PRIMARY KEY,"
    " cursor VARCHAR(200) NOT NULL DEFAULT '',"
    " updated_at TIMESTAMPTZ NOT NULL"
    ")",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="funding", description=DESCRIPTION)

    async def add():
        for statement in STATEMENTS:
            await Raw.raw(statement)

    manager.add_raw(add)
    return manager
