"""The payment simulator's state in one SQLite file: payments, payouts, the webhook deliveries
still to make (so a restart neither loses nor repeats them) and the knobs.

Everything runs on the server's event loop thread, one call at a time; the lock only guards the
odd call from a worker thread."""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY, idem_key TEXT UNIQUE, reference TEXT NOT NULL, amount TEXT NOT NULL,
    currency TEXT NOT NULL, paid_amount TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
    return_url TEXT NOT NULL, customer TEXT NOT NULL, instrument TEXT NOT NULL DEFAULT '',
    instrument_key TEXT NOT NULL DEFAULT '', failure_reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS payouts (
    id TEXT PRIMARY KEY, idem_key TEXT UNIQUE NOT NULL, fingerprint TEXT NOT NULL, amount TEXT NOT NULL,
    currency TEXT NOT NULL, destination TEXT NOT NULL, reference TEXT NOT NULL, status TEXT NOT NULL,
    failure_reason TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, provider TEXT NOT NULL,
    type TEXT NOT NULL, body TEXT NOT NULL, due_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    delivered_at REAL, last_status INTEGER, last_error TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (delivered_at, due_at);
CREATE INDEX IF NOT EXISTS payments_updated ON payments (updated_at);
CREATE INDEX IF NOT EXISTS payouts_updated ON payouts (updated_at);
"""

DEFAULT_KNOBS: dict[str, Any] = {
    "webhook_url": "",  # where payment events go (…/api/funding/webhooks/simcard)
    "duplicates": 0,  # extra copies of every webhook
    "out_of_order": False,  # the outcome event before payment.processing
    "delay": 0.0,  # seconds before a webhook's first attempt
    "retry_base": 1.0,  # retry backoff: retry_base × 2^attempts seconds
    "max_attempts": 8,
    "drop_webhooks": False,  # send nothing (missed webhooks: the app must ask)
    "fail_payouts": 0,  # the next N payouts are refused by the "bank"
    "payout_timeout_next": 0,  # the next N payouts are made but answered with a 504
    "next_paid_amount": "",  # the next successful payment pays this amount instead
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.lock = threading.RLock()

    def close(self) -> None:
        self.db.close()

    def one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        with self.lock:
            row = self.db.execute(sql, args).fetchone()
        return None if row is None else dict(row)

    def all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.db.execute(sql, args).fetchall()]

    def run(self, sql: str, *args: Any) -> int:
        with self.lock:
            return self.db.execute(sql, args).lastrowid or 0

    # --- knobs ------------------------------------------------------------------------------------

    def knobs(self) -> dict[str, Any]:
        stored = {r["key"]: json.loads(r["value"]) for r in self.all("SELECT key, value FROM config")}
        return {**DEFAULT_KNOBS, **{k: v for k, v in stored.items() if k in DEFAULT_KNOBS}}

    def set_knobs(self, values: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            for key, value in values.items():
                self.db.execute(
                    "INSERT INTO config (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value)),
                )
        return self.knobs()

    def take(self, knob: str) -> bool:
        """Use up one of a counting knob (fail_payouts, payout_timeout_next): True if one was left."""
        with self.lock:
            left = int(self.knobs()[knob] or 0)
            if left <= 0:
                return False
            self.set_knobs({knob: left - 1})
            return True

    # --- deliveries -------------------------------------------------------------------------------

    def queue_event(self, provider: str, event_type: str, data: dict[str, Any], *, after: float = 0.0) -> str:
        """One event (and the knobs' duplicates), first attempt `after` seconds from now plus `delay`."""
        knobs = self.knobs()
        event_id = new_id("evt")
        body = json.dumps(
            {"id": event_id, "type": event_type, "created_at": time.time(), "data": data},
            separators=(",", ":"),
        )
        now = time.time()
        due = now + float(knobs["delay"] or 0) + after
        copies = 1 + max(0, int(knobs["duplicates"] or 0))
        with self.lock:
            for i in range(copies):
                self.db.execute(
                    "INSERT INTO deliveries (event_id, provider, type, body, due_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (event_id, provider, event_type, body, due + 0.05 * i, now),
                )
        return event_id

    def due_deliveries(self, limit: int = 20) -> list[dict[str, Any]]:
        return self.all(
            "SELECT * FROM deliveries WHERE delivered_at IS NULL AND attempts < ? AND due_at <= ? "
            "ORDER BY due_at, id LIMIT ?",
            int(self.knobs()["max_attempts"]),
            time.time(),
            limit,
        )
