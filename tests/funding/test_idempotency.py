"""The idempotency layer on its own, against the database, with a small real handler that moves
money through the ledger under the service key: a replay gets the first response byte for byte and
money moves once; the same key with another request is refused; twins wait; crashes are safe."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from app.core import db
from app.funding import idempotency, ledger
from app.funding.idempotency import IdempotencyError, Reply
from tests.funding.support import FINANCE, funded_wallet, ledger_totals

PATH = "/api/v1/funding/test"


class Mover:
    """Moves `amount` from one funded wallet to another, keyed like a service would be."""

    def __init__(self, source: int, target: int) -> None:
        self.source, self.target, self.calls = source, target, 0

    def handler(self, scope: str, key: str, amount: str, *, status: int = 201, pause: float = 0):
        async def run() -> Reply:
            self.calls += 1
            if pause:
                await asyncio.sleep(pause)
            if status >= 400:
                return Reply(status, json.dumps({"error": "refused", "calls": self.calls}).encode())
            posted = await ledger.transfer(
                FINANCE,
                "transfer",
                debit=self.source,
                credit=self.target,
                amount=Decimal(amount),
                idempotency_key=idempotency.service_key(scope, key),
            )
            return Reply(status, json.dumps({"transaction": posted.id, "calls": self.calls}).encode())

        return run

    async def call(self, scope: str, key: str, amount: str = "10.00", **kw) -> Reply:
        return await idempotency.run(
            scope, key, "POST", PATH, {"amount": amount}, self.handler(scope, key, amount, **kw)
        )


@pytest.fixture
async def mover(database) -> Mover:
    return Mover(await funded_wallet(Decimal("1000")), await funded_wallet(Decimal("0")))


async def postings() -> int:
    row = await db.fetchrow("SELECT count(*) AS n FROM funding_postings")
    assert row is not None
    return int(row["n"])


async def test_a_replay_returns_the_first_response_and_moves_money_once(mover):
    first = await mover.call("apikey:1", "k-1")
    before = await postings()
    again = await mover.call("apikey:1", "k-1")
    assert (again.status, again.body) == (first.status, first.body)
    assert again.replayed and not first.replayed
    assert mover.calls == 1 and await postings() == before
    assert (await ledger.get_account(mover.target)).balance == Decimal("10.00")


async def test_the_same_key_with_another_body_is_refused(mover):
    await mover.call("apikey:1", "k-1", "10.00")
    with pytest.raises(IdempotencyError) as exc:
        await mover.call("apikey:1", "k-1", "11.00")
    assert (exc.value.status, exc.value.code) == (422, "idempotency_key_reused")
    assert mover.calls == 1


async def test_the_same_key_on_another_endpoint_is_refused(mover):
    await mover.call("apikey:1", "k-1")
    with pytest.raises(IdempotencyError) as exc:
        await idempotency.run(
            "apikey:1", "k-1", "POST", PATH + "/other", {"amount": "10.00"}, mover.handler("", "", "")
        )
    assert exc.value.code == "idempotency_key_reused"


async def test_a_key_belongs_to_its_scope(mover):
    a = await mover.call("apikey:1", "shared")
    b = await mover.call("apikey:2", "shared")
    assert not b.replayed and a.body != b.body and mover.calls == 2
    assert (await ledger.get_account(mover.target)).balance == Decimal("20.00")


@pytest.mark.parametrize(
    "raw, code",
    [(None, "idempotency_key_missing"), ("", "idempotency_key_missing"), ("x" * 201, "idempotency_key_invalid"),
     ("tab\there", "idempotency_key_invalid"), ("clé", "idempotency_key_invalid")],
)  # fmt: skip
def test_a_missing_or_malformed_key_is_a_400(raw, code):
    with pytest.raises(IdempotencyError) as exc:
        idempotency.check_key(raw)
    assert (exc.value.status, exc.value.code) == (400, code)


def test_a_key_of_200_printable_characters_is_accepted():
    assert idempotency.check_key("a" * 200) == "a" * 200
    assert idempotency.check_key("4f1c-…"[:5]) == "4f1c-"


async def test_a_refusal_is_stored_and_replayed_without_running_again(mover):
    first = await mover.call("apikey:1", "k-4xx", status=422)
    again = await mover.call("apikey:1", "k-4xx", status=422)
    assert (again.status, again.body, again.replayed) == (422, first.body, True)
    assert mover.calls == 1


async def test_a_server_error_releases_the_key_for_a_retry(mover):
    failed = await mover.call("apikey:1", "k-5xx", status=500)
    assert failed.status == 500
    assert await db.fetchrow("SELECT 1 FROM funding_idempotent_requests WHERE key = 'k-5xx'") is None
    retried = await mover.call("apikey:1", "k-5xx")
    assert retried.status == 201 and not retried.replayed and mover.calls == 2


async def test_an_exception_releases_the_key_and_propagates(mover):
    async def boom() -> Reply:
        raise RuntimeError("provider down")

    with pytest.raises(RuntimeError):
        await idempotency.run("apikey:1", "k-exc", "POST", PATH, {"amount": "10.00"}, boom)
    assert (await mover.call("apikey:1", "k-exc")).status == 201


async def test_a_twin_arriving_while_the_first_runs_gets_409_with_retry_after(mover):
    slow = asyncio.create_task(mover.call("apikey:1", "k-twin", pause=0.3))
    await asyncio.sleep(0.1)
    with pytest.raises(IdempotencyError) as exc:
        await mover.call("apikey:1", "k-twin")
    assert (exc.value.status, exc.value.code, exc.value.retry_after) == (409, "request_in_progress", 1)
    first = await slow
    assert (await mover.call("apikey:1", "k-twin")).body == first.body


async def test_concurrent_identical_requests_move_money_once(mover):
    before = await ledger_totals()
    results = await asyncio.gather(
        *(mover.call("apikey:1", "k-race", pause=0.05) for _ in range(5)), return_exceptions=True
    )
    replies = [r for r in results if isinstance(r, Reply)]
    refused = [r for r in results if isinstance(r, IdempotencyError)]
    assert len(replies) + len(refused) == 5
    assert {r.code for r in refused} <= {"request_in_progress"}
    assert len({r.body for r in replies}) == 1 and sum(not r.replayed for r in replies) == 1
    assert (await ledger.get_account(mover.target)).balance == Decimal("10.00")
    assert await ledger_totals() == before


async def test_an_abandoned_claim_is_taken_over_and_rebuilt_from_the_same_business_object(mover):
    """A crash after the service committed but before the response was stored: the replay re-runs
    the handler with the same service key, which returns the first transaction, not a second."""
    first = await mover.call("apikey:1", "k-crash")
    await db.fetchrow(
        "UPDATE funding_idempotent_requests SET status_code = NULL, response = '{}', "
        "created_at = now() - interval '5 minutes' WHERE key = 'k-crash'"
    )
    before = await postings()
    rebuilt = await mover.call("apikey:1", "k-crash")
    assert rebuilt.status == 201 and not rebuilt.replayed
    assert json.loads(rebuilt.body)["transaction"] == json.loads(first.body)["transaction"]
    assert await postings() == before
    assert (await ledger.get_account(mover.target)).balance == Decimal("10.00")
    assert (await mover.call("apikey:1", "k-crash")).body == rebuilt.body


async def test_a_fresh_unfinished_claim_is_not_taken_over(mover):
    await db.fetchrow(
        "INSERT INTO funding_idempotent_requests (scope, key, fingerprint, method_path, response, created_at) "
        "VALUES ('apikey:1', 'k-fresh', $1, 'POST x', '{}', now())",
        idempotency.fingerprint("POST", PATH, {"amount": "10.00"}),
    )
    with pytest.raises(IdempotencyError) as exc:
        await mover.call("apikey:1", "k-fresh")
    assert exc.value.status == 409 and mover.calls == 0


async def test_when_a_slow_owner_and_a_takeover_both_finish_everyone_gets_the_first_stored(mover):
    slow = asyncio.create_task(mover.call("apikey:1", "k-slow", pause=0.4))
    await asyncio.sleep(0.1)
    await db.fetchrow(
        "UPDATE funding_idempotent_requests SET created_at = now() - interval '5 minutes' WHERE key = 'k-slow'"
    )
    quick = await mover.call("apikey:1", "k-slow")
    late = await slow
    assert late.body == quick.body and late.replayed
    assert (await ledger.get_account(mover.target)).balance == Decimal("10.00")


def test_the_fingerprint_ignores_key_order_but_not_values():
    a = idempotency.fingerprint("post", PATH, {"a": "1", "b": "2"})
    assert a == idempotency.fingerprint("POST", PATH, {"b": "2", "a": "1"})
    assert a != idempotency.fingerprint("POST", PATH, {"a": "1", "b": "3"})


def test_service_keys_differ_per_scope_and_fit_the_services_column():
    one, two = idempotency.service_key("apikey:1", "k" * 200), idempotency.service_key("apikey:2", "k" * 200)
    assert one != two and len(one) <= 200
