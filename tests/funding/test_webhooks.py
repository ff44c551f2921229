"""Provider webhooks: Standard Webhooks signatures refuse what is forged, stale or malformed, and
the inbox processes every event exactly once by its id, however often and in whatever order it
arrives, and leaves a failed one for a retry with nothing of the failed attempt kept."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from app.core import db
from app.funding import balances, webhooks
from app.funding.webhooks import InboxEvent, WebhookRejected
from tests.funding.support import deposit, funded_wallet, ledger_totals

# The specification's published test vector (the same in every Standard Webhooks library).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = webhooks.new_secret()
BODY = b'{"type": "payment.succeeded", "data": {"payment": "p_1", "amount": "100.00"}}'
NOW = 1_800_000_000
PROVIDER = "simpay"


def spec_headers(**changes: str) -> dict[str, str]:
    headers = {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TS), "webhook-signature": SPEC_SIGNATURE}
    headers.update({k.replace("_", "-"): v for k, v in changes.items()})
    return headers


def rejection(secret: str, headers: dict[str, str], body: bytes | str, now: float) -> str:
    with pytest.raises(WebhookRejected) as caught:
        webhooks.verify(secret, headers, body, now=now)
    return caught.value.reason


# --- signatures ----------------------------------------------------------------------------------


def test_it_reproduces_the_specification_test_vector():
    assert webhooks.sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE
    assert webhooks.verify(SPEC_SECRET, spec_headers(), SPEC_BODY.encode(), now=SPEC_TS) == webhooks.Verified(
        msg_id=SPEC_ID, timestamp=SPEC_TS
    )


def test_it_accepts_its_own_signature_with_headers_in_any_case():
    headers = webhooks.headers_for(SECRET, "evt_1", BODY, timestamp=NOW)
    assert webhooks.verify(SECRET, headers, BODY, now=NOW).msg_id == "evt_1"
    shouted = {k.title(): v for k, v in headers.items()}  # Webhook-Id, as some proxies send it
    assert webhooks.verify(SECRET, shouted, BODY, now=NOW + 1).timestamp == NOW


def test_any_one_matching_signature_is_enough_during_a_secret_rotation():
    old, new = webhooks.new_secret(), SECRET
    both = f"{webhooks.sign(old, 'evt_2', NOW, BODY)} {webhooks.sign(new, 'evt_2', NOW, BODY)}"
    headers = {"webhook-id": "evt_2", "webhook-timestamp": str(NOW), "webhook-signature": both}
    assert webhooks.verify(new, headers, BODY, now=NOW).msg_id == "evt_2"
    assert webhooks.verify(old, headers, BODY, now=NOW).msg_id == "evt_2"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_it_rejects_a_missing_or_empty_header(missing):
    headers = spec_headers()
    del headers[missing]
    assert rejection(SPEC_SECRET, headers, SPEC_BODY, SPEC_TS) == "missing_header"
    assert rejection(SPEC_SECRET, {**spec_headers(), missing: "  "}, SPEC_BODY, SPEC_TS) == "missing_header"


@pytest.mark.parametrize("stamp", ["abc", "-5", "1.5", "+1614265330", "1_614_265_330", "1614265330000000"])
def test_it_rejects_a_timestamp_that_is_not_whole_seconds(stamp):
    assert (
        rejection(SPEC_SECRET, spec_headers(webhook_timestamp=stamp), SPEC_BODY, SPEC_TS) == "bad_timestamp"
    )


def test_it_rejects_an_id_too_long_for_the_inbox():
    headers = webhooks.headers_for(SECRET, "e" * 201, BODY, timestamp=NOW)
    assert rejection(SECRET, headers, BODY, NOW) == "bad_id"


def test_exactly_five_minutes_either_way_is_accepted_and_a_second_more_is_not():
    headers = spec_headers()
    assert webhooks.verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TS + 300)
    assert webhooks.verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TS - 300)
    assert rejection(SPEC_SECRET, headers, SPEC_BODY, SPEC_TS + 301) == "too_old"
    assert rejection(SPEC_SECRET, headers, SPEC_BODY, SPEC_TS - 301) == "too_new"
    assert rejection(SPEC_SECRET, headers, SPEC_BODY, SPEC_TS + 300.5) == "too_old"


def test_it_rejects_a_forged_or_tampered_delivery():
    forged = webhooks.headers_for(webhooks.new_secret(), "evt_3", BODY, timestamp=NOW)  # another secret
    assert rejection(SECRET, forged, BODY, NOW) == "no_matching_signature"
    good = webhooks.headers_for(SECRET, "evt_3", BODY, timestamp=NOW)
    assert rejection(SECRET, good, BODY.replace(b"100.00", b"900.00"), NOW) == "no_matching_signature"
    assert rejection(SECRET, {**good, "webhook-id": "evt_4"}, BODY, NOW) == "no_matching_signature"
    # a fresh timestamp on an old signature: the timestamp is signed too
    assert (
        rejection(SECRET, {**good, "webhook-timestamp": str(NOW + 1)}, BODY, NOW) == "no_matching_signature"
    )
    value = good["webhook-signature"].removeprefix("v1,")
    for bad in (value, f"v2,{value}", f"v1a,{value}", "v1,", "v1,not-base64-é", "v1," + value[:-4]):
        assert rejection(SECRET, {**good, "webhook-signature": bad}, BODY, NOW) == "no_matching_signature"


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_",
        "whsec_not*base64!",
        "whsec_c2hvcnQ=",
        "whsec_" + "A" * 200,
    ],
)
def test_it_rejects_a_malformed_secret(secret):
    assert rejection(secret, spec_headers(), SPEC_BODY, SPEC_TS) == "bad_secret"
    with pytest.raises(WebhookRejected, match="bad_secret"):
        webhooks.sign(secret, SPEC_ID, SPEC_TS, SPEC_BODY)


# --- the inbox -----------------------------------------------------------------------------------


class Recorder:
    """A handler that remembers what it saw; optionally slow, or failing its first `fail` runs."""

    def __init__(self, delay: float = 0.0, fail: int = 0) -> None:
        self.seen: list[InboxEvent] = []
        self.delay, self.fail = delay, fail

    async def __call__(self, event: InboxEvent) -> None:
        self.seen.append(event)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            self.fail -= 1
            raise RuntimeError("provider said: try later")


async def deliver(event_id: str, handler: Recorder, event_type: str = "payment.succeeded") -> str:
    """What the endpoint will do with a verified delivery."""
    await webhooks.record_event(PROVIDER, event_id, event_type, {"payment": event_id, "amount": "100.00"})
    return await webhooks.process(PROVIDER, event_id, handler)


async def inbox_row(event_id: str) -> dict:
    row = await db.fetchrow(
        "SELECT processed_at, attempts, last_error, signature_ok, event_type FROM funding_webhook_events "
        "WHERE provider = $1 AND event_id = $2",
        PROVIDER,
        event_id,
    )
    assert row is not None
    return row


async def test_an_event_is_recorded_once_and_its_handler_sees_the_payload(database):
    assert await webhooks.record_event(PROVIDER, "evt_1", "payment.succeeded", {"amount": "1.50", "n": [1]})
    assert not await webhooks.record_event(PROVIDER, "evt_1", "payment.succeeded", {"amount": "999"})
    assert await webhooks.record_event("otherpay", "evt_1", "payment.succeeded", {})  # ids are per provider
    handler = Recorder()
    assert await webhooks.process(PROVIDER, "evt_1", handler) == "processed"
    [event] = handler.seen
    assert (event.provider, event.event_id, event.event_type) == (PROVIDER, "evt_1", "payment.succeeded")
    assert event.payload == {"amount": "1.50", "n": [1]} and event.attempts == 0
    row = await inbox_row("evt_1")
    assert row["processed_at"] is not None and row["attempts"] == 1 and row["signature_ok"]


async def test_a_replayed_event_is_processed_once(database):
    handler = Recorder()
    assert await deliver("evt_r", handler) == "processed"
    assert await deliver("evt_r", handler) == "already_processed"
    assert await deliver("evt_r", handler) == "already_processed"
    assert len(handler.seen) == 1


async def test_twenty_concurrent_deliveries_of_one_event_run_its_handler_once(database):
    handler = Recorder(delay=0.05)  # long enough for the duplicates to find the row locked
    wallet = await funded_wallet(Decimal(0))

    async def credit(event: InboxEvent) -> None:
        await handler(event)
        await deposit(
            wallet, Decimal(event.payload["amount"]), idempotency_key=f"dep:{event.event_id}:{event.id}"
        )

    outcomes = await asyncio.gather(
        *(
            webhooks.record_event(PROVIDER, "evt_c", "payment.succeeded", {"amount": "100.00"})
            for _ in range(20)
        )
    )
    assert sorted(outcomes) == [False] * 19 + [True]
    results = await asyncio.gather(*(webhooks.process(PROVIDER, "evt_c", credit) for _ in range(20)))
    assert results.count("processed") == 1
    assert set(results) <= {"processed", "busy", "already_processed"}
    assert len(handler.seen) == 1
    assert await balances.balance_of(wallet) == Decimal("100.00")
    assert (await inbox_row("evt_c"))["attempts"] == 1


async def test_concurrent_deliveries_recorded_and_processed_together_credit_once(database):
    handler = Recorder(delay=0.02)
    results = await asyncio.gather(*(deliver("evt_rc", handler) for _ in range(20)))
    assert results.count("processed") == 1 and len(handler.seen) == 1
    assert await webhooks.pending(PROVIDER) == []


async def test_out_of_order_events_are_each_processed_once(database):
    handler = Recorder()
    for event_id, event_type in (("evt_b", "payment.succeeded"), ("evt_a", "payment.pending")):
        assert await deliver(event_id, handler, event_type) == "processed"
    for event_id in ("evt_a", "evt_b", "evt_a"):
        assert await deliver(event_id, handler) == "already_processed"
    assert [(e.event_id, e.event_type) for e in handler.seen] == [
        ("evt_b", "payment.succeeded"),
        ("evt_a", "payment.pending"),
    ]


async def test_a_failed_handler_is_rolled_back_and_the_retry_processes_the_event(database):
    wallet = await funded_wallet(Decimal(0))
    flaky = Recorder(fail=1)

    async def credit(event: InboxEvent) -> None:
        await deposit(wallet, Decimal("100.00"), idempotency_key=f"dep:{event.event_id}")
        await flaky(event)  # fails after the ledger wrote the deposit: that write must not stay

    assert await deliver("evt_f", Recorder()) == "processed"  # an unrelated event, already done
    await webhooks.record_event(PROVIDER, "evt_x", "payment.succeeded", {"amount": "100.00"})
    assert await webhooks.process(PROVIDER, "evt_x", credit) == "failed"
    row = await inbox_row("evt_x")
    assert row["processed_at"] is None and row["attempts"] == 1
    assert row["last_error"] == "RuntimeError: provider said: try later"
    assert await balances.balance_of(wallet) == 0
    assert await db.fetchrow("SELECT count(*) AS n FROM funding_transactions") == {"n": 0}
    assert await webhooks.pending(PROVIDER) == [(PROVIDER, "evt_x")]

    assert await webhooks.process(PROVIDER, "evt_x", credit) == "processed"  # the retry
    row = await inbox_row("evt_x")
    assert row["processed_at"] is not None and row["attempts"] == 2 and row["last_error"] == ""
    assert [e.attempts for e in flaky.seen] == [0, 1]
    assert await balances.balance_of(wallet) == Decimal("100.00")
    assert await webhooks.process(PROVIDER, "evt_x", credit) == "already_processed"
    assert await webhooks.pending() == []
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}


async def test_an_unknown_event_is_not_processed(database):
    handler = Recorder()
    assert await webhooks.process(PROVIDER, "evt_never_sent", handler) == "unknown"
    assert handler.seen == []


async def test_a_forged_delivery_kept_for_the_record_cannot_block_the_real_event(database):
    handler = Recorder()
    assert await webhooks.record_event(
        PROVIDER, "evt_s", "payment.succeeded", {"amount": "1e9"}, signature_ok=False
    )
    assert await webhooks.process(PROVIDER, "evt_s", handler) == "unverified"
    assert not await webhooks.record_event(PROVIDER, "evt_s", "payment.failed", {}, signature_ok=False)
    assert await webhooks.record_event(PROVIDER, "evt_s", "payment.succeeded", {"amount": "100.00"})
    assert await webhooks.process(PROVIDER, "evt_s", handler) == "processed"
    assert [e.payload for e in handler.seen] == [{"amount": "100.00"}]
    assert not await webhooks.record_event(PROVIDER, "evt_s", "payment.succeeded", {"amount": "5"})


async def test_process_refuses_to_run_inside_a_callers_transaction(database):
    await webhooks.record_event(PROVIDER, "evt_t", "payment.succeeded", {})
    with pytest.raises(RuntimeError, match="outside"):
        async with db.transaction():
            await webhooks.process(PROVIDER, "evt_t", Recorder())


async def test_the_database_refuses_a_duplicate_or_an_unverified_processed_event(database):
    import asyncpg

    await webhooks.record_event(PROVIDER, "evt_d", "payment.succeeded", {})
    conn = await asyncpg.connect(db.current_url())
    try:
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO funding_webhook_events (provider, event_id, signature_ok) VALUES ($1, 'evt_d', true)",
                PROVIDER,
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO funding_webhook_events (provider, event_id, processed_at) VALUES ($1, 'evt_e', now())",
                PROVIDER,
            )
    finally:
        await conn.close()
