"""`funding_post_batch()`: the ledger's one statement for postings (`app.funding.ledger`,
`app.funding.ledger_batch`): one or many independent ledger transactions, each with its audit row
when asked, in a caller's transaction or as a transaction of its own. It replaced `funding_post()`
(funding_0002) and `funding_post_audited()` (funding_0012), which funding_0015 drops, so the rules
of a posting are written once.

A transfer that is its own transaction pays, besides its own work, for a statement, a commit and
the audit chain's lock; when many arrive at once (one worker serving many requests), the batcher
gathers those waiting and posts them here together: group commit, as PostgreSQL itself does for
the WAL. Each item is still its own ledger transaction with its own idempotency key, its own
checks and its own audit row; a refused item (unknown account, a hold account without
`p_holds_ok`, too many decimals, unbalanced, insufficient funds, a replayed or conflicting key) is
a result row for that item and does not stop the others, nor spoil a caller's transaction. Should
the statement fail as a whole (only when another connection committed one of its keys after they
were read), nothing of it is written and the batcher posts each item on its own.

Locks: every account of every item is locked first, in id order, so a batch and any other posting
queue instead of deadlocking, whatever accounts the items share (two items on one wallet simply
see each other in order). Then the items are checked in the order they arrived against running
balances, written with one INSERT each for transactions and postings, the deferred balance checks
are run once for all of them, and only then the audit chain's lock is taken for the audit rows
(hashed by `audit_hash()`, core_0005). The chain's lock is thus held for the end of one statement
and its commit; with `p_commit_early` (the statement is its own transaction) not across the disk
flush either (`synchronous_commit = off` for this transaction only), and the caller waits for the
flush before it reports any item as done (`SELECT pg_current_xact_id()`: a transaction with an xid
commits synchronously, flushing the WAL past this one). Whatever read these rows and committed
after them has its commit record later in the WAL, so the audit chain never points at a lost row;
what is given up is that, for about a millisecond, a reader may see a posting that a crash would
still undo and that its caller has not reported yet.

Arguments are flat arrays (PostgreSQL's arrays must be rectangular): per item its fields, and the
lines of item i at p_accounts[p_first[i] .. p_first[i] + p_count[i] - 1]; p_actor holds five
values per item (kind, id, label, ip, user agent), p_canonical five (the audit row's canonical
JSON cut around after, occurred_at, seq and subject_id: `app.core.audit.pending`), p_view two (the
`after` JSON before and after its postings), p_action and p_subject_type one.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T19:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "funding_post_batch(): independent ledger transactions and their audit rows in one statement"

CHECKS = "funding_postings_balanced, funding_transactions_have_postings"

POST_BATCH = f"""CREATE OR REPLACE FUNCTION funding_post_batch(
  p_kind text[], p_key text[], p_fingerprint text[], p_reference text[], p_memo text[], p_created_by text[],
  p_reverses_id bigint[], p_holds_ok boolean[], p_first int[], p_count int[], p_accounts int[],
  p_amounts numeric[], p_audit boolean[], p_lock_key bigint, p_action text[], p_subject_type text[],
  p_actor text[], p_canonical bytea[], p_view text[], p_commit_early boolean
) RETURNS TABLE (item int, outcome text, transaction_id bigint, created_at timestamptz, account_id int,
                 kind text, currency text, amount numeric, balance numeric)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
  n int := cardinality(p_kind);
  r record;
  i int; k int; j int; a int; c int; q int;
  v_at timestamptz := now();
  ids int[] := ARRAY[]::int[];        -- the locked accounts, in id order, and what is known of each
  kinds text[] := ARRAY[]::text[];
  curs text[] := ARRAY[]::text[];
  units int[] := ARRAY[]::int[];
  signs int[] := ARRAY[]::int[];
  bal numeric[] := ARRAY[]::numeric[];  -- running balances, item after item
  orig numeric[] := ARRAY[]::numeric[];
  old_keys text[]; old_ids bigint[]; old_fps text[];   -- keys already committed
  new_keys text[] := ARRAY[]::text[]; new_ids bigint[] := ARRAY[]::bigint[]; new_fps text[] := ARRAY[]::text[];
  refusal text;
  pos int[];                          -- per line of the item: its account's index in ids
  trial numeric[];                    -- the item's accounts' balances if it is posted
  line_after numeric[];
  sum_cur text[]; sums numeric[];
  v_tx bigint;
  tx_ids bigint[] := ARRAY[]::bigint[]; tx_item int[] := ARRAY[]::int[];
  l_tx bigint[] := ARRAY[]::bigint[]; l_acc int[] := ARRAY[]::int[]; l_amt numeric[] := ARRAY[]::numeric[];
  l_cur text[] := ARRAY[]::text[]; l_after numeric[] := ARRAY[]::numeric[];
  v_lines text[] := array_fill(''::text, ARRAY[n]);
  written int;
  last_seq bigint; prev text; ts timestamptz; v_after text; digest text;
  e_seq bigint[] := ARRAY[]::bigint[]; e_ts timestamptz[] := ARRAY[]::timestamptz[]; e_item int[] := ARRAY[]::int[];
  e_after text[] := ARRAY[]::text[]; e_prev text[] := ARRAY[]::text[]; e_hash text[] := ARRAY[]::text[]; e_tx bigint[] := ARRAY[]::bigint[];
BEGIN
  FOR r IN SELECT x.id, x.kind, x.currency, x.minor_units, x.normal_side, x.balance FROM funding_ledger_accounts x
            WHERE x.id = ANY (p_accounts) ORDER BY x.id FOR UPDATE LOOP
    ids := ids || r.id; kinds := kinds || r.kind::text; curs := curs || r.currency::text;
    units := units || r.minor_units::int; signs := signs || CASE r.normal_side WHEN 'debit' THEN 1 ELSE -1 END;
    bal := bal || r.balance; orig := orig || r.balance;
  END LOOP;
  -- read after the locks: a posting with one of these keys that committed meanwhile is seen
  SELECT array_agg(t.idempotency_key), array_agg(t.id), array_agg(t.fingerprint) INTO old_keys, old_ids, old_fps
    FROM funding_transactions t WHERE t.idempotency_key = ANY (p_key);
  FOR i IN 1 .. n LOOP
    a := p_first[i]; c := p_count[i];
    item := i; transaction_id := NULL; created_at := NULL; account_id := NULL; kind := NULL; currency := NULL;
    amount := NULL; balance := NULL;
    k := array_position(old_keys, p_key[i]);
    IF k IS NOT NULL THEN
      outcome := CASE WHEN old_fps[k] = p_fingerprint[i] THEN 'replay' ELSE 'conflict' END;
      transaction_id := old_ids[k]; RETURN NEXT; CONTINUE;
    END IF;
    k := array_position(new_keys, p_key[i]);
    IF k IS NOT NULL THEN  -- the same key earlier in this batch (a double submit)
      outcome := CASE WHEN new_fps[k] = p_fingerprint[i] THEN 'replay' ELSE 'conflict' END;
      transaction_id := new_ids[k]; RETURN NEXT; CONTINUE;
    END IF;
    refusal := NULL; pos := ARRAY[]::int[]; trial := ARRAY[]::numeric[]; line_after := ARRAY[]::numeric[];
    sum_cur := ARRAY[]::text[]; sums := ARRAY[]::numeric[];
    FOR q IN a .. a + c - 1 LOOP
      j := array_position(ids, p_accounts[q]);
      IF j IS NULL THEN
        refusal := 'unknown_account'; account_id := p_accounts[q]; EXIT;
      END IF;
      IF kinds[j] = 'client_hold' AND NOT p_holds_ok[i] THEN
        refusal := 'hold_account'; account_id := ids[j]; EXIT;
      END IF;
      IF p_amounts[q] <> round(p_amounts[q], units[j]) THEN
        refusal := 'precision'; account_id := ids[j]; currency := curs[j]; amount := p_amounts[q];
        balance := units[j]; EXIT;
      END IF;
      pos := pos || j;
      IF trial[j] IS NULL THEN trial[j] := bal[j]; END IF;
      trial[j] := trial[j] + signs[j] * p_amounts[q];
      line_after := line_after || trial[j];
      k := array_position(sum_cur, curs[j]);
      IF k IS NULL THEN
        sum_cur := sum_cur || curs[j]; sums := sums || p_amounts[q];
      ELSE
        sums[k] := sums[k] + p_amounts[q];
      END IF;
    END LOOP;
    IF refusal IS NULL THEN
      FOR k IN 1 .. cardinality(sum_cur) LOOP
        IF sums[k] <> 0 THEN
          refusal := 'unbalanced'; currency := sum_cur[k]; amount := sums[k]; EXIT;
        END IF;
      END LOOP;
    END IF;
    IF refusal IS NULL THEN
      FOREACH j IN ARRAY pos LOOP
        IF kinds[j] IN ('client_wallet', 'client_hold') AND trial[j] < 0 THEN
          refusal := 'insufficient'; account_id := ids[j]; kind := kinds[j]; currency := curs[j];
          amount := bal[j]; balance := trial[j]; EXIT;
        END IF;
      END LOOP;
    END IF;
    IF refusal IS NOT NULL THEN
      outcome := refusal; RETURN NEXT; CONTINUE;
    END IF;
    v_tx := nextval('funding_transactions_id_seq');
    tx_ids := tx_ids || v_tx; tx_item := tx_item || i;
    new_keys := new_keys || p_key[i]; new_ids := new_ids || v_tx; new_fps := new_fps || p_fingerprint[i];
    FOREACH j IN ARRAY pos LOOP
      bal[j] := trial[j];
    END LOOP;
    outcome := 'posted'; transaction_id := v_tx; created_at := v_at; kind := NULL; amount := NULL; balance := NULL;
    FOR q IN 1 .. c LOOP
      j := pos[q];
      l_tx := l_tx || v_tx; l_acc := l_acc || ids[j]; l_amt := l_amt || p_amounts[a + q - 1];
      l_cur := l_cur || curs[j]; l_after := l_after || line_after[q];
      account_id := ids[j]; currency := curs[j]; amount := p_amounts[a + q - 1]; balance := line_after[q];
      RETURN NEXT;
      v_lines[i] := v_lines[i] || CASE WHEN q = 1 THEN '' ELSE ',' END
                    || '[' || ids[j] || ',"' || p_amounts[a + q - 1]::text || '","' || curs[j] || '"]';
    END LOOP;
  END LOOP;
  IF cardinality(tx_ids) = 0 THEN  -- all refused or replayed: nothing to write
    RETURN;
  END IF;
  INSERT INTO funding_transactions AS t (id, kind, idempotency_key, fingerprint, reference, memo, created_by,
                                         reverses_id, created_at)
  SELECT u.id, p_kind[u.i], p_key[u.i], p_fingerprint[u.i], p_reference[u.i], p_memo[u.i], p_created_by[u.i],
         p_reverses_id[u.i], v_at
    FROM unnest(tx_ids, tx_item) AS u(id, i)
  ON CONFLICT (idempotency_key) DO NOTHING;
  GET DIAGNOSTICS written = ROW_COUNT;
  IF written <> cardinality(tx_ids) THEN  -- a key committed by a concurrent posting since it was read
    RAISE EXCEPTION 'funding_post_batch: an idempotency key was taken meanwhile; post one by one'
      USING ERRCODE = 'serialization_failure';
  END IF;
  INSERT INTO funding_postings (transaction_id, account_id, amount, currency, balance_after)
  SELECT * FROM unnest(l_tx, l_acc, l_amt, l_cur, l_after);
  FOR j IN 1 .. cardinality(ids) LOOP  -- one primary-key update each (a join's generic plan scans them all)
    IF bal[j] <> orig[j] THEN
      UPDATE funding_ledger_accounts x SET balance = bal[j] WHERE x.id = ids[j];
    END IF;
  END LOOP;
  IF p_commit_early THEN
    PERFORM set_config('synchronous_commit', 'off', true);
  END IF;
  SET CONSTRAINTS {CHECKS} IMMEDIATE;
  SET CONSTRAINTS {CHECKS} DEFERRED;
  IF NOT (p_audit && ARRAY[true]) THEN
    RETURN;
  END IF;
  -- the audit rows, chained as audit_append() chains one: same lock, same hash (audit_hash, core_0005)
  PERFORM pg_advisory_xact_lock(p_lock_key);
  SELECT e.seq, e.hash INTO last_seq, prev FROM audit_events e ORDER BY e.seq DESC LIMIT 1;
  IF NOT FOUND THEN
    last_seq := 0;
    prev := repeat('0', 64);
  END IF;
  FOR k IN 1 .. cardinality(tx_ids) LOOP
    i := tx_item[k];
    CONTINUE WHEN NOT p_audit[i];
    v_after := p_view[2 * i - 1] || '[' || v_lines[i] || ']' || p_view[2 * i];
    ts := date_trunc('microseconds', clock_timestamp());
    last_seq := last_seq + 1;
    digest := audit_hash(
      prev, p_canonical[5 * i - 4] || convert_to(v_after, 'UTF8') || p_canonical[5 * i - 3], ts,
      p_canonical[5 * i - 2], last_seq, p_canonical[5 * i - 1] || convert_to(tx_ids[k]::text, 'UTF8') || p_canonical[5 * i]
    );
    e_seq := e_seq || last_seq; e_ts := e_ts || ts; e_item := e_item || i; e_after := e_after || v_after;
    e_prev := e_prev || prev; e_hash := e_hash || digest; e_tx := e_tx || tx_ids[k];
    prev := digest;
  END LOOP;
  INSERT INTO audit_events (seq, occurred_at, actor_kind, actor_id, actor_label, action, subject_type,
                            subject_id, before, after, ip, user_agent, prev_hash, hash)
  SELECT u.seq, u.ts, p_actor[5 * u.i - 4], p_actor[5 * u.i - 3], p_actor[5 * u.i - 2], p_action[u.i],
         p_subject_type[u.i], u.tx::text, NULL, u.after::jsonb, p_actor[5 * u.i - 1], p_actor[5 * u.i],
         u.prev, u.hash
    FROM unnest(e_seq, e_ts, e_item, e_after, e_prev, e_hash, e_tx) AS u(seq, ts, i, after, prev, hash, tx);
END $$"""

DROP = (
    "DROP FUNCTION IF EXISTS funding_post_batch(text[], text[], text[], text[], text[], text[], bigint[], "
    "boolean[], int[], int[], int[], numeric[], boolean[], bigint, text[], text[], text[], bytea[], text[], boolean)"
)


class Raw(Table, tablename="funding_transactions"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="funding", description=DESCRIPTION)

    async def add():
        await Raw.raw(POST_BATCH)

    async def drop():
        await Raw.raw(DROP)

    manager.add_raw(add)
    manager.add_raw_backwards(drop)
    return manager
