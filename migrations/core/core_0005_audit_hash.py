"""`audit_hash()`: the audit chain's hash in SQL, defined once.

`audit_append()` (core_0004) hashed a row itself, and the ledger's batch posting
(`funding_post_batch()`, migrations/funding/funding_0013) chains many rows in one statement and
needed the same bytes. Both now call this function, so the chain's formula is written once in
SQL (and once in Python, `app.core.audit`, which `audit.verify()` uses to recompute every hash):
SHA-256 over prev_hash || head || occurred_at || mid || seq || tail, as UTF-8 bytes, occurred_at
written like Python's isoformat(timespec="microseconds") in UTC.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T19:45:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit_hash(): one definition of the chain's hash, used by audit_append()"

HASH_FUNCTION = """CREATE OR REPLACE FUNCTION audit_hash(
  prev text, head bytea, ts timestamptz, mid bytea, seq bigint, tail bytea
) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT encode(sha256(
    convert_to(prev, 'UTF8') || head
    || convert_to(to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), 'UTF8')
    || mid || convert_to(seq::text, 'UTF8') || tail
  ), 'hex')
$$"""

APPEND_FUNCTION = """CREATE OR REPLACE FUNCTION audit_append(
  lock_key bigint, head bytea, mid bytea, tail bytea,
  p_actor_kind text, p_actor_id text, p_actor_label text, p_action text, p_subject_type text,
  p_subject_id text, p_before text, p_after text, p_ip text, p_user_agent text
) RETURNS bigint LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  last_seq bigint;
  prev text;
  ts timestamptz;
BEGIN
  PERFORM pg_advisory_xact_lock(lock_key);
  SELECT seq, hash INTO last_seq, prev FROM audit_events ORDER BY seq DESC LIMIT 1;
  IF NOT FOUND THEN
    last_seq := 0;
    prev := repeat('0', 64);
  END IF;
  ts := date_trunc('microseconds', clock_timestamp());
  INSERT INTO audit_events (seq, occurred_at, actor_kind, actor_id, actor_label, action, subject_type,
                            subject_id, before, after, ip, user_agent, prev_hash, hash)
  VALUES (last_seq + 1, ts, p_actor_kind, p_actor_id, p_actor_label, p_action, p_subject_type,
          p_subject_id, p_before::jsonb, p_after::jsonb, p_ip, p_user_agent, prev,
          audit_hash(prev, head, ts, mid, last_seq + 1, tail));
  RETURN last_seq + 1;
END $$"""


class AuditEventRaw(Table, tablename="audit_events"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)

    async def create():
        await AuditEventRaw.raw(HASH_FUNCTION)
        await AuditEventRaw.raw(APPEND_FUNCTION)

    manager.add_raw(create)  # no way back: audit_append() now relies on audit_hash(), and both are right
    return manager
