"""`funding_post_audited()`: a posting and its audit record in one statement (`app.funding.ledger`).

`funding_post()` (funding_0002) writes the transaction; this wrapper then writes the audit row of
a transaction it did post (not of a refusal or a replay) through `audit_append()` (core_0004), in
the same transaction. Outside a caller's transaction the statement is its own transaction, so a
transfer with its audit record is one round trip and the audit chain's lock (held until commit)
is held for the end of one statement and its commit, with no client round trip inside it.

The audit row's canonical JSON is built in Python (`app.core.audit.Pending`) with holes for what
only the database knows: the `after` view's postings (account, amount, currency), the transaction
id, the time and the sequence number. The postings are written here as compact JSON: account ids
are integers, amounts are `numeric::text` (digits, sign, point) and currencies are `^[A-Z]{3,5}$`
(a check on the accounts), so nothing in them needs escaping.

Before it takes the chain's lock the wrapper runs the ledger's deferred balance checks
(SET CONSTRAINTS … IMMEDIATE, then back to DEFERRED), so they are not done under the lock at commit.

Early lock release (`p_commit_early`, only for a statement that is its own transaction): the
chain's lock is released at commit, and with `synchronous_commit` on that is after the WAL flush,
so every audited write would wait for the one before it to reach the disk: one fsync at a time.
With it, this transaction commits with `synchronous_commit = off` (set here, for this transaction
only), so the lock goes as soon as the commit record is written, and the caller then waits for
durability itself before it reports success (`app.funding.ledger._post`: a transaction with an
xid commits synchronously, which flushes the WAL up to and including this commit record).
Whatever read this transaction's rows and committed after it has its commit record later in the
WAL, so it cannot survive a crash that this one does not: the audit chain never points at a lost
row. What is given up is only that, for about a millisecond, a reader may see a transfer that a
crash would still undo, and which its caller has not yet reported as done.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T16:37:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "funding_post_audited(): post a ledger transaction and its audit record in one statement"

CHECKS = "funding_postings_balanced, funding_transactions_have_postings"

POST_AUDITED = f"""CREATE OR REPLACE FUNCTION funding_post_audited(
  p_kind text, p_key text, p_fingerprint text, p_reference text, p_memo text, p_created_by text,
  p_reverses_id bigint, p_accounts int[], p_amounts numeric[], p_holds_ok boolean,
  p_lock_key bigint, p_action text, p_subject_type text, p_actor text[], p_canonical bytea[], p_view text[],
  p_commit_early boolean
) RETURNS TABLE (outcome text, transaction_id bigint, created_at timestamptz, account_id int, kind text,
                 currency text, amount numeric, balance numeric)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
-- p_actor: kind, id, label, ip, user_agent. p_view: the `after` JSON before and after its postings.
-- p_canonical: the audit row's canonical JSON cut around after, occurred_at, seq and subject_id.
DECLARE
  r record;
  v_tx bigint;
  v_lines text[] := ARRAY[]::text[];
  v_after text;
BEGIN
  FOR r IN SELECT * FROM funding_post(p_kind, p_key, p_fingerprint, p_reference, p_memo, p_created_by,
                                      p_reverses_id, p_accounts, p_amounts, p_holds_ok) LOOP
    outcome := r.outcome; transaction_id := r.transaction_id; created_at := r.created_at;
    account_id := r.account_id; kind := r.kind; currency := r.currency; amount := r.amount;
    balance := r.balance;
    RETURN NEXT;
    IF r.outcome = 'posted' THEN
      v_tx := r.transaction_id;
      v_lines := v_lines || ('[' || r.account_id || ',"' || r.amount::text || '","' || r.currency || '"]');
    END IF;
  END LOOP;
  IF v_tx IS NULL THEN  -- refused or replayed: nothing was written, nothing to audit
    RETURN;
  END IF;
  IF p_commit_early THEN
    PERFORM set_config('synchronous_commit', 'off', true);
  END IF;
  SET CONSTRAINTS {CHECKS} IMMEDIATE;
  SET CONSTRAINTS {CHECKS} DEFERRED;
  v_after := p_view[1] || '[' || array_to_string(v_lines, ',') || ']' || p_view[2];
  PERFORM audit_append(
    p_lock_key,
    p_canonical[1] || convert_to(v_after, 'UTF8') || p_canonical[2],
    p_canonical[3],
    p_canonical[4] || convert_to(v_tx::text, 'UTF8') || p_canonical[5],
    p_actor[1], p_actor[2], p_actor[3], p_action, p_subject_type, v_tx::text, NULL, v_after,
    p_actor[4], p_actor[5]);
END $$"""

DROP = (
    "DROP FUNCTION IF EXISTS funding_post_audited(text, text, text, text, text, text, bigint, int[], "
    "numeric[], boolean, bigint, text, text, text[], bytea[], text[], boolean)"
)


class Raw(Table, tablename="funding_transactions"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="funding", description=DESCRIPTION)

    async def add():
        await Raw.raw(POST_AUDITED)

    async def drop():
        await Raw.raw(DROP)

    manager.add_raw(add)
    manager.add_raw_backwards(drop)
    return manager
