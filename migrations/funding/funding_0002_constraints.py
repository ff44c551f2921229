"""What the database itself guarantees about the ledger, whatever code (or person with psql) writes:

- every transaction's postings sum to zero per currency, checked at commit by a deferred
  constraint trigger (a transaction is written line by line, so a row check cannot do it);
- postings and transactions are immutable: UPDATE, DELETE and TRUNCATE are refused;
- client wallets and their hold accounts never go below zero (a check on the cached balance,
  which the service updates under a row lock in the same statement that writes the postings);
- a posting's currency is its account's (a composite foreign key);
- an account's identity (kind, currency, owner) never changes once created;
- one wallet per client and currency, one ledger account per trading account, one clearing
  account per provider and currency, one fee/suspense/fx account per currency, one hold account
  per wallet, one reversal per transaction.

It also holds `funding_post()`, the ledger service's single statement for a posting (see
`app.funding.ledger`): the checks above are the backstop, that function is where they are met.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T14:11:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "ledger constraints (balanced at commit, immutable, wallets never negative) and funding_post()"

KINDS = "'client_wallet', 'client_hold', 'trading_account', 'provider_clearing', 'fees', 'suspense', 'fx'"
TX_KINDS = (
    "'deposit', 'withdrawal', 'transfer', 'fee', 'reversal', 'adjustment', 'hold', 'release', 'conversion'"
)

# The ledger service's one statement for a posting (app.funding.ledger): lock the accounts in id
# order, refuse (returning why, writing nothing) or write the transaction, its postings and the
# cached balances. A refusal is a result row, not an error, so a caller's transaction stays usable.
# SET plan_cache_mode: the app's pool forces custom plans (for its searches), and left to itself
# PostgreSQL keeps re-planning these statements (a generic plan guesses ten lines per array, so it
# never looks cheaper than a custom one); they are primary-key lookups whose generic plans are the
# same, and re-planning them cost more than running them (0.9 → 0.4 ms per posting).
POST_FUNCTION = """CREATE FUNCTION funding_post(
  p_kind text, p_key text, p_fingerprint text, p_reference text, p_memo text, p_created_by text,
  p_reverses_id bigint, p_accounts int[], p_amounts numeric[], p_holds_ok boolean
) RETURNS TABLE (outcome text, transaction_id bigint, created_at timestamptz, account_id int, kind text,
                 currency text, amount numeric, balance numeric)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
  n int := cardinality(p_accounts);
  v_tx bigint;
  v_fp text;
  v_at timestamptz;
  r record;
  ids int[] := ARRAY[]::int[];        -- the locked accounts, in id order, and what is known of each
  kinds text[] := ARRAY[]::text[];
  curs text[] := ARRAY[]::text[];
  units int[] := ARRAY[]::int[];
  signs int[] := ARRAY[]::int[];      -- 1 for debit-normal accounts, -1 for credit-normal ones
  before numeric[] := ARRAY[]::numeric[];
  after numeric[] := ARRAY[]::numeric[];
  line_cur text[] := ARRAY[]::text[];  -- per line: its account's currency and balance after it
  line_after numeric[] := ARRAY[]::numeric[];
  sum_cur text[] := ARRAY[]::text[];   -- per currency: the sum of the lines
  sums numeric[] := ARRAY[]::numeric[];
  i int;
  j int;
BEGIN
  SELECT t.id, t.fingerprint INTO v_tx, v_fp FROM funding_transactions t WHERE t.idempotency_key = p_key;
  IF v_tx IS NOT NULL THEN
    outcome := CASE WHEN v_fp = p_fingerprint THEN 'replay' ELSE 'conflict' END; transaction_id := v_tx;
    RETURN NEXT; RETURN;
  END IF;
  FOR r IN SELECT a.id, a.kind, a.currency, a.minor_units, a.normal_side, a.balance FROM funding_ledger_accounts a
            WHERE a.id = ANY (p_accounts) ORDER BY a.id FOR UPDATE LOOP
    ids := ids || r.id; kinds := kinds || r.kind::text; curs := curs || r.currency::text;
    units := units || r.minor_units::int; signs := signs || CASE r.normal_side WHEN 'debit' THEN 1 ELSE -1 END;
    before := before || r.balance; after := after || r.balance;
  END LOOP;
  FOR i IN 1 .. n LOOP
    j := array_position(ids, p_accounts[i]);
    IF j IS NULL THEN
      outcome := 'unknown_account'; account_id := p_accounts[i]; RETURN NEXT; RETURN;
    END IF;
    IF kinds[j] = 'client_hold' AND NOT p_holds_ok THEN
      outcome := 'hold_account'; account_id := ids[j]; RETURN NEXT; RETURN;
    END IF;
    IF p_amounts[i] <> round(p_amounts[i], units[j]) THEN
      outcome := 'precision'; account_id := ids[j]; currency := curs[j]; amount := p_amounts[i];
      balance := units[j]; RETURN NEXT; RETURN;
    END IF;
    after[j] := after[j] + signs[j] * p_amounts[i];
    line_cur := line_cur || curs[j]; line_after := line_after || after[j];
    IF array_position(sum_cur, curs[j]) IS NULL THEN
      sum_cur := sum_cur || curs[j]; sums := sums || p_amounts[i];
    ELSE
      sums[array_position(sum_cur, curs[j])] := sums[array_position(sum_cur, curs[j])] + p_amounts[i];
    END IF;
  END LOOP;
  FOR i IN 1 .. cardinality(sum_cur) LOOP
    IF sums[i] <> 0 THEN
      outcome := 'unbalanced'; currency := sum_cur[i]; amount := sums[i]; RETURN NEXT; RETURN;
    END IF;
  END LOOP;
  FOR j IN 1 .. cardinality(ids) LOOP
    IF kinds[j] IN ('client_wallet', 'client_hold') AND after[j] < 0 THEN
      -- a concurrent call with this key may have committed while this one waited for the locks
      SELECT t.id, t.fingerprint INTO v_tx, v_fp FROM funding_transactions t WHERE t.idempotency_key = p_key;
      IF v_tx IS NOT NULL THEN
        outcome := CASE WHEN v_fp = p_fingerprint THEN 'replay' ELSE 'conflict' END; transaction_id := v_tx;
      ELSE
        outcome := 'insufficient'; account_id := ids[j]; kind := kinds[j]; currency := curs[j];
        amount := before[j]; balance := after[j];
      END IF;
      RETURN NEXT; RETURN;
    END IF;
  END LOOP;
  INSERT INTO funding_transactions AS t (kind, idempotency_key, fingerprint, reference, memo, created_by,
                                         reverses_id, created_at)
  VALUES (p_kind, p_key, p_fingerprint, p_reference, p_memo, p_created_by, p_reverses_id, now())
  ON CONFLICT (idempotency_key) DO NOTHING RETURNING t.id, t.created_at INTO v_tx, v_at;
  IF v_tx IS NULL THEN  -- committed meanwhile by a concurrent call with the same key
    SELECT t.id, t.fingerprint INTO v_tx, v_fp FROM funding_transactions t WHERE t.idempotency_key = p_key;
    outcome := CASE WHEN v_fp = p_fingerprint THEN 'replay' ELSE 'conflict' END; transaction_id := v_tx;
    RETURN NEXT; RETURN;
  END IF;
  INSERT INTO funding_postings (transaction_id, account_id, amount, currency, balance_after)
  SELECT v_tx, u.a, u.m, u.c, u.b FROM unnest(p_accounts, p_amounts, line_cur, line_after) AS u(a, m, c, b);
  FOR j IN 1 .. cardinality(ids) LOOP  -- one primary-key update each (a join's generic plan scans them all)
    IF after[j] <> before[j] THEN
      UPDATE funding_ledger_accounts x SET balance = after[j] WHERE x.id = ids[j];
    END IF;
  END LOOP;
  FOR i IN 1 .. n LOOP
    outcome := 'posted'; transaction_id := v_tx; created_at := v_at; account_id := p_accounts[i];
    currency := line_cur[i]; amount := p_amounts[i]; balance := line_after[i];
    RETURN NEXT;
  END LOOP;
END $$"""

STATEMENTS = (
    # --- accounts -------------------------------------------------------------------------------
    "ALTER TABLE funding_ledger_accounts ADD CONSTRAINT funding_ledger_accounts_kind_known "
    f"CHECK (kind IN ({KINDS}))",
    "ALTER TABLE funding_ledger_accounts ADD CONSTRAINT funding_ledger_accounts_normal_side "
    "CHECK (normal_side = CASE WHEN kind = 'provider_clearing' THEN 'debit' ELSE 'credit' END)",
    "ALTER TABLE funding_ledger_accounts ADD CONSTRAINT funding_ledger_accounts_currency_code "
    "CHECK (currency ~ '^[A-Z]{{3,5}}$')",
    "ALTER TABLE funding_ledger_accounts ADD CONSTRAINT funding_ledger_accounts_minor_units "
    "CHECK (minor_units BETWEEN 0 AND 18)",
    "ALTER TABLE funding_ledger_accounts ADD CONSTRAINT funding_ledger_accounts_client_not_negative "
    "CHECK (kind NOT IN ('client_wallet', 'client_hold') OR balance >= 0)",
    "ALTER TABLE funding_ledger_accounts ADD CONSTRAINT funding_ledger_accounts_owner_shape CHECK ("
    "(client_id IS NOT NULL) = (kind IN ('client_wallet', 'client_hold', 'trading_account')) "
    "AND (trading_account_id IS NOT NULL) = (kind = 'trading_account') "
    "AND (parent_id IS NOT NULL) = (kind = 'client_hold') "
    "AND (provider <> '') = (kind = 'provider_clearing'))",
    # every posting rewrites its accounts' cached balance: room on each page keeps those updates HOT
    # (no index touched), which matters once the table holds more than a few pages of accounts
    "ALTER TABLE funding_ledger_accounts SET (fillfactor = 50)",
    "ALTER TABLE funding_ledger_accounts ADD CONSTRAINT funding_ledger_accounts_id_currency "
    "UNIQUE (id, currency)",
    "CREATE UNIQUE INDEX funding_ledger_accounts_one_wallet ON funding_ledger_accounts (client_id, currency) "
    "WHERE kind = 'client_wallet'",
    "CREATE UNIQUE INDEX funding_ledger_accounts_one_hold ON funding_ledger_accounts (parent_id) "
    "WHERE kind = 'client_hold'",
    "CREATE UNIQUE INDEX funding_ledger_accounts_one_trading ON funding_ledger_accounts (trading_account_id) "
    "WHERE kind = 'trading_account'",
    "CREATE UNIQUE INDEX funding_ledger_accounts_one_clearing ON funding_ledger_accounts (provider, currency) "
    "WHERE kind = 'provider_clearing'",
    "CREATE UNIQUE INDEX funding_ledger_accounts_one_system ON funding_ledger_accounts (kind, currency) "
    "WHERE kind IN ('fees', 'suspense', 'fx')",
    """CREATE FUNCTION funding_account_identity_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'a ledger account''s kind, currency and owner never change (account %)', OLD.id
    USING ERRCODE = 'integrity_constraint_violation';
END $$""",
    "CREATE TRIGGER funding_ledger_accounts_identity BEFORE UPDATE OF kind, currency, minor_units, normal_side, client_id, "
    "trading_account_id, parent_id, provider ON funding_ledger_accounts FOR EACH ROW "
    "WHEN ((OLD.kind, OLD.currency, OLD.minor_units, OLD.normal_side, OLD.client_id, OLD.trading_account_id, "
    "OLD.parent_id, OLD.provider) IS DISTINCT FROM (NEW.kind, NEW.currency, NEW.minor_units, NEW.normal_side, NEW.client_id, "
    "NEW.trading_account_id, NEW.parent_id, NEW.provider)) "
    "EXECUTE FUNCTION funding_account_identity_fixed()",
    # --- transactions and postings --------------------------------------------------------------
    f"ALTER TABLE funding_transactions ADD CONSTRAINT funding_transactions_kind_known CHECK (kind IN ({TX_KINDS}))",
    "ALTER TABLE funding_transactions ADD CONSTRAINT funding_transactions_key_present "
    "CHECK (idempotency_key <> '')",
    "ALTER TABLE funding_transactions ADD CONSTRAINT funding_transactions_reversal_shape "
    "CHECK ((kind = 'reversal') = (reverses_id IS NOT NULL))",
    "CREATE UNIQUE INDEX funding_transactions_reversed_once ON funding_transactions (reverses_id) "
    "WHERE reverses_id IS NOT NULL",
    "CREATE INDEX funding_transactions_created_at ON funding_transactions (created_at)",
    "ALTER TABLE funding_postings ADD CONSTRAINT funding_postings_amount_nonzero CHECK (amount <> 0)",
    "ALTER TABLE funding_postings ADD CONSTRAINT funding_postings_account_currency "
    "FOREIGN KEY (account_id, currency) REFERENCES funding_ledger_accounts (id, currency)",
    # the composite key implies the plain one Piccolo made: one foreign-key check per posting, not two
    "ALTER TABLE funding_postings DROP CONSTRAINT funding_postings_account_id_fkey",
    "CREATE INDEX funding_postings_account_id_id ON funding_postings (account_id, id)",
    """CREATE FUNCTION funding_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: correct a transaction by reversing it', TG_TABLE_NAME
    USING ERRCODE = 'integrity_constraint_violation';
END $$""",
    "CREATE TRIGGER funding_postings_immutable BEFORE UPDATE OR DELETE ON funding_postings "
    "FOR EACH ROW EXECUTE FUNCTION funding_refuse_change()",
    "CREATE TRIGGER funding_postings_no_truncate BEFORE TRUNCATE ON funding_postings "
    "FOR EACH STATEMENT EXECUTE FUNCTION funding_refuse_change()",
    "CREATE TRIGGER funding_transactions_immutable BEFORE UPDATE OR DELETE ON funding_transactions "
    "FOR EACH ROW EXECUTE FUNCTION funding_refuse_change()",
    "CREATE TRIGGER funding_transactions_no_truncate BEFORE TRUNCATE ON funding_transactions "
    "FOR EACH STATEMENT EXECUTE FUNCTION funding_refuse_change()",
    """CREATE FUNCTION funding_assert_balanced(tx bigint) RETURNS void LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  bad record;
BEGIN
  SELECT currency, sum(amount) AS total INTO bad FROM funding_postings
   WHERE transaction_id = tx GROUP BY currency HAVING sum(amount) <> 0 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'ledger transaction % does not balance: its % postings sum to %', tx, bad.currency, bad.total
      USING ERRCODE = 'check_violation';
  END IF;
END $$""",
    """CREATE FUNCTION funding_check_posting() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  PERFORM funding_assert_balanced(NEW.transaction_id);
  RETURN NULL;
END $$""",
    """CREATE FUNCTION funding_check_transaction() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM funding_postings WHERE transaction_id = NEW.id) THEN
    RAISE EXCEPTION 'ledger transaction % has no postings', NEW.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $$""",
    "CREATE CONSTRAINT TRIGGER funding_postings_balanced AFTER INSERT ON funding_postings "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION funding_check_posting()",
    "CREATE CONSTRAINT TRIGGER funding_transactions_have_postings AFTER INSERT ON funding_transactions "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION funding_check_transaction()",
    # --- holds ----------------------------------------------------------------------------------
    "ALTER TABLE funding_holds ADD CONSTRAINT funding_holds_amount_positive CHECK (amount > 0)",
    "ALTER TABLE funding_holds ADD CONSTRAINT funding_holds_status_known "
    "CHECK (status IN ('held', 'released', 'captured'))",
    "ALTER TABLE funding_holds ADD CONSTRAINT funding_holds_settled_shape "
    "CHECK ((status = 'held') = (settle_transaction_id IS NULL) AND (status = 'held') = (settled_at IS NULL))",
    "CREATE INDEX funding_holds_open ON funding_holds (wallet_id) WHERE status = 'held'",
    "ALTER TABLE funding_reconciliation_runs ADD CONSTRAINT funding_reconciliation_runs_status_known "
    "CHECK (status IN ('running', 'ok', 'differences', 'failed'))",
    "CREATE INDEX funding_reconciliation_runs_started ON funding_reconciliation_runs (started_at)",
    POST_FUNCTION,
)

DROP = (
    "DROP FUNCTION IF EXISTS funding_post(text, text, text, text, text, text, bigint, int[], numeric[], boolean)",
    "DROP TRIGGER IF EXISTS funding_transactions_have_postings ON funding_transactions",
    "DROP TRIGGER IF EXISTS funding_postings_balanced ON funding_postings",
    "DROP TRIGGER IF EXISTS funding_transactions_no_truncate ON funding_transactions",
    "DROP TRIGGER IF EXISTS funding_transactions_immutable ON funding_transactions",
    "DROP TRIGGER IF EXISTS funding_postings_no_truncate ON funding_postings",
    "DROP TRIGGER IF EXISTS funding_postings_immutable ON funding_postings",
    "DROP TRIGGER IF EXISTS funding_ledger_accounts_identity ON funding_ledger_accounts",
    "DROP FUNCTION IF EXISTS funding_check_transaction()",
    "DROP FUNCTION IF EXISTS funding_check_posting()",
    "DROP FUNCTION IF EXISTS funding_assert_balanced(bigint)",
    "DROP FUNCTION IF EXISTS funding_refuse_change()",
    "DROP FUNCTION IF EXISTS funding_account_identity_fixed()",
    "ALTER TABLE funding_postings DROP CONSTRAINT IF EXISTS funding_postings_account_currency",
    "ALTER TABLE funding_postings ADD CONSTRAINT funding_postings_account_id_fkey FOREIGN KEY (account_id) "
    "REFERENCES funding_ledger_accounts (id) ON UPDATE CASCADE ON DELETE RESTRICT",
)


class Raw(Table, tablename="funding_postings"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="funding", description=DESCRIPTION)

    async def add():
        for statement in STATEMENTS:
            await Raw.raw(statement)

    async def drop():
        for statement in DROP:
            await Raw.raw(statement)

    manager.add_raw(add)
    manager.add_raw_backwards(drop)
    return manager
