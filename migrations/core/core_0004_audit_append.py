"""`audit_append()`: the audit trail's one statement for a row (see `app.core.audit.record`).

It takes the chain's advisory lock, reads the last row, stamps the time, hashes and inserts, in
one round trip instead of four, so the lock (held until commit) is held for as little as
possible. The canonical JSON is built in Python, around the two values only known under the
lock (the time and the sequence number); `audit.verify()` recomputes every hash in Python.

The function is VOLATILE plpgsql, so the SELECT of the last row takes its snapshot after the lock
is granted: it sees the row of the writer that held the lock before (a single SQL statement
would not, its snapshot is taken before it waits for the lock).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-24T15:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit_append(): lock, chain, hash and insert an audit row in one statement"

# The hash is SHA-256 over prev_hash || head || occurred_at || mid || seq || tail, as UTF-8 bytes
# (head, mid and tail arrive as bytes, so the database's encoding plays no part); occurred_at is
# written like Python's isoformat(timespec="microseconds") in UTC. SET plan_cache_mode: the app's
# pool forces custom plans, which would re-plan these lookups on every call.
APPEND_FUNCTION = """CREATE FUNCTION audit_append(
  lock_key bigint, head bytea, mid bytea, tail bytea,
  p_actor_kind text, p_actor_id text, p_actor_label text, p_action text, p_subject_type text,
  p_subject_id text, p_before text, p_after text, p_ip text, p_user_agent text
) RETURNS bigint LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  last_seq bigint;
  prev text;
  ts timestamptz;
  digest text;
BEGIN
  PERFORM pg_advisory_xact_lock(lock_key);
  SELECT seq, hash INTO last_seq, prev FROM audit_events ORDER BY seq DESC LIMIT 1;
  IF NOT FOUND THEN
    last_seq := 0;
    prev := repeat('0', 64);
  END IF;
  ts := date_trunc('microseconds', clock_timestamp());
  digest := encode(sha256(
    convert_to(prev, 'UTF8') || head
    || convert_to(to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), 'UTF8')
    || mid || convert_to((last_seq + 1)::text, 'UTF8') || tail
  ), 'hex');
  INSERT INTO audit_events (seq, occurred_at, actor_kind, actor_id, actor_label, action, subject_type,
                            subject_id, before, after, ip, user_agent, prev_hash, hash)
  VALUES (last_seq + 1, ts, p_actor_kind, p_actor_id, p_actor_label, p_action, p_subject_type,
          p_subject_id, p_before::jsonb, p_after::jsonb, p_ip, p_user_agent, prev, digest);
  RETURN last_seq + 1;
END $$"""

DROP = (
    "DROP FUNCTION IF EXISTS audit_append(bigint, bytea, bytea, bytea, text, text, text, text, text, text, "
    "text, text, text, text)"
)


class AuditEventRaw(Table, tablename="audit_events"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="core", description=DESCRIPTION)

    async def create():
        await AuditEventRaw.raw(APPEND_FUNCTION)

    async def drop():
        await AuditEventRaw.raw(DROP)

    manager.add_raw(create)
    manager.add_raw_backwards(drop)

    return manager
