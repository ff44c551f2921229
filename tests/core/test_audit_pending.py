"""The canonical JSON that a SQL function completes (`audit.pending`, `audit.canonical_cut`) is
byte for byte the one `record` hashes and `verify` recomputes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.core import audit
from app.core.audit import Actor, canonical, canonical_cut

ACTORS = [
    Actor("staff", "7", "auditor@staff.test", "203.0.113.9", "pytest-agent"),
    Actor.system("ledger bench"),
    Actor("client", None, 'Zoë "q" \\ \t\n ✓ 😀', None, ""),
    Actor("staff", "1", "x" * 300, "::1", "y" * 500),
]
VIEWS = [
    {"kind": "transfer", "idempotency_key": "k:1", "reference": "", "memo": "", "reverses_id": None},
    {
        "kind": "reversal",
        "idempotency_key": 'é"\\\n\u2028\x01',
        "reference": "«r»",
        "memo": "😀",
        "reverses_id": 7,
    },
]


@pytest.mark.parametrize("value", VIEWS)
def test_a_cut_object_joined_with_its_holes_is_its_canonical_json(value):
    postings = [[12, "-0.01", "USD"], [13, "0.01", "USD"]]
    left, right = canonical_cut(value | {"postings": None}, ("postings",))
    assert left + audit._dumps(postings) + right == audit._dumps(value | {"postings": postings})


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("view", VIEWS)
def test_a_pending_row_filled_in_is_the_canonical_json_that_record_hashes(actor, view):
    after = view | {"postings": [[1, "100.00", "EUR"]]}
    at = datetime(2026, 11, 24, 16, 36, 0, 123456, tzinfo=UTC)
    p = audit.pending(actor, "funding.transaction.posted", "funding_transaction")
    row = audit._actor_columns(actor) | {
        "seq": 42,
        "occurred_at": at,
        "action": "funding.transaction.posted",
        "subject_type": "funding_transaction",
        "subject_id": "314",
        "before": None,
        "after": after,
    }
    filled = [p.parts[0], audit._dumps(after).encode(), p.parts[1], audit._iso(at).encode(), p.parts[2]]
    filled += [b"42", p.parts[3], b"314", p.parts[4]]
    assert b"".join(filled).decode() == canonical(row)
    assert p.actor == tuple(row[k] for k in ("actor_kind", "actor_id", "actor_label", "ip", "user_agent"))
