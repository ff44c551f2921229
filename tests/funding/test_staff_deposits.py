"""Finance settles a stuck card deposit by hand: paid (the provider's payment reference, the amount
actually received) or failed, each with a reason in the audit; exactly one outcome, booked once,
whether the provider's webhook settles it before, after or at the same moment."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from app.core import db
from app.core.auth.principal import Principal
from app.core.errors import FormErrors
from app.funding import deposit_events, deposits, staff_actions, webhooks
from tests.conftest import csrf_token
from tests.funding.deposit_support import SYSTEM, card_method, set_level, verified_client
from tests.funding.support import ledger_totals
from tests.funding.withdraw_support import actor_of, officer
from tests.personas import sign_in

HX = {"HX-Request": "true"}
REASON = "Provider support confirmed by e-mail, ticket 5512"


def paid_form(**changes: str) -> dict[str, str]:
    return {"payment_reference": "pay_manual_1", "amount": "100.00", "reason": REASON, **changes}


async def stuck_deposit(client_id: int | None = None, *, payment_id: str = "", amount: str = "100") -> dict:
    """A card deposit the client started and the provider is processing (`pending`)."""
    client_id = client_id or await verified_client()
    method = await card_method()
    d = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal(amount), "USD")
    return await deposits.mark_pending(SYSTEM, d["id"], provider_payment_id=payment_id)


async def bookings(deposit_id: int) -> int:
    row = await db.fetchrow(
        "SELECT count(*) AS n FROM funding_transactions WHERE idempotency_key = $1", f"deposit:{deposit_id}"
    )
    assert row is not None
    return int(row["n"])


async def manual_audits(deposit_id: int) -> list[dict]:
    rows = await db.fetch(
        "SELECT actor_label, after::text AS after FROM audit_events WHERE action = 'funding.deposit.settled_by_hand' "
        "AND subject_id = {} ORDER BY seq",
        str(deposit_id),
    )
    return [{"by": r["actor_label"], **json.loads(r["after"])} for r in rows]


async def webhook_succeeds(d: dict, event_id: str, amount: str = "100.00") -> str:
    """The provider's `payment.succeeded` for `d`, through the inbox as the endpoint records it."""
    body = {"id": d["provider_payment_id"] or "pay_hook", "status": "succeeded", "amount": amount,
            "currency": "USD", "reference": d["reference"]}  # fmt: skip
    await webhooks.record_event(
        "simcard", event_id, "payment.succeeded", {"type": "payment.succeeded", "data": body}
    )
    return await deposit_events.process_event("simcard", event_id)


# --- the service --------------------------------------------------------------------------------


async def test_finance_marks_a_stuck_deposit_paid_for_the_amount_received_and_it_is_audited(database):
    d = await stuck_deposit()
    finance = await officer()
    after = await staff_actions.mark_paid(finance, d["id"], paid_form(amount="95.00"), actor_of(finance))
    assert after["status"] == "completed" and after["provider_payment_id"] == "pay_manual_1"
    assert (after["amount"], after["requested_amount"]) == (Decimal("95.00"), Decimal("100.00"))
    assert await bookings(d["id"]) == 1
    [entry] = await manual_audits(d["id"])
    assert entry["by"] == finance.email
    assert (entry["outcome"], entry["reason"], entry["staff"]) == ("paid", REASON, finance.name)
    assert (entry["provider_payment_id"], entry["amount_received"]) == ("pay_manual_1", "95.00")
    assert (
        await webhook_succeeds(after, "evt_late") == "processed"
    )  # the provider's late word books nothing more
    assert await bookings(d["id"]) == 1 and (await deposits.get_deposit(d["id"]))["amount"] == Decimal(
        "95.00"
    )
    assert (await ledger_totals())["unbalanced"] == 0


async def test_finance_marks_a_stuck_deposit_failed_and_the_client_reads_the_reason(database):
    d = await stuck_deposit()
    finance = await officer()
    after = await staff_actions.mark_failed(
        finance, d["id"], {"failure_reason": "Declined by the issuer"}, actor_of(finance)
    )
    assert (after["status"], after["failure_reason"]) == ("failed", "Declined by the issuer")
    assert await bookings(d["id"]) == 0
    assert [(e["outcome"], e["reason"]) for e in await manual_audits(d["id"])] == [
        ("failed", "Declined by the issuer")
    ]


async def test_a_deposit_the_webhook_completed_cannot_be_settled_again(database):
    d = await stuck_deposit(payment_id="pay_hook_1")
    assert await webhook_succeeds(d, "evt_1") == "processed"
    finance = await officer()
    with pytest.raises(FormErrors, match="already completed and credited"):
        await staff_actions.mark_paid(
            finance, d["id"], paid_form(payment_reference="pay_hook_1"), actor_of(finance)
        )
    with pytest.raises(FormErrors, match="cannot be settled again"):
        await staff_actions.mark_failed(finance, d["id"], {"failure_reason": "no"}, actor_of(finance))
    assert (await deposits.get_deposit(d["id"]))["status"] == "completed"
    assert await bookings(d["id"]) == 1 and await manual_audits(d["id"]) == []


async def test_a_failed_deposit_cannot_be_settled_again_and_a_late_webhook_changes_nothing_twice(database):
    d = await stuck_deposit(payment_id="pay_hook_2")
    finance = await officer()
    await staff_actions.mark_failed(finance, d["id"], {"failure_reason": "Declined"}, actor_of(finance))
    with pytest.raises(FormErrors, match="already failed"):
        await staff_actions.mark_paid(
            finance, d["id"], paid_form(payment_reference="pay_hook_2"), actor_of(finance)
        )
    assert len(await manual_audits(d["id"])) == 1


async def test_racing_the_webhook_settles_exactly_once(database):
    finance = await officer()
    for n in range(3):
        d = await stuck_deposit(payment_id=f"pay_race_{n}")

        async def by_hand(d=d):
            try:
                await staff_actions.mark_paid(
                    finance, d["id"], paid_form(payment_reference=d["provider_payment_id"]), actor_of(finance)
                )
            except FormErrors as exc:
                return exc.errors["__all__"]
            return "by hand"

        hand, hook = await asyncio.gather(by_hand(), webhook_succeeds(d, f"evt_race_{n}"))
        assert hook == "processed"
        assert hand == "by hand" or "already completed" in hand
        assert (await deposits.get_deposit(d["id"]))["status"] == "completed"
        assert await bookings(d["id"]) == 1
        assert len(await manual_audits(d["id"])) == (1 if hand == "by hand" else 0)
    assert (await ledger_totals())["unbalanced"] == 0


async def test_failing_by_hand_while_the_webhook_confirms_never_books_twice(database):
    finance = await officer()
    d = await stuck_deposit(payment_id="pay_race_f")

    async def by_hand():
        try:
            await staff_actions.mark_failed(
                finance, d["id"], {"failure_reason": "Declined"}, actor_of(finance)
            )
        except FormErrors:
            return "refused"
        return "failed"

    await asyncio.gather(by_hand(), webhook_succeeds(d, "evt_race_f"))
    # Whichever came first, the money the provider confirmed is credited, once.
    assert (await deposits.get_deposit(d["id"]))["status"] == "completed"
    assert await bookings(d["id"]) == 1


async def test_a_payment_reference_of_another_payment_or_deposit_is_refused(database):
    client_id = await verified_client()
    linked = await stuck_deposit(client_id, payment_id="pay_a")
    other = await stuck_deposit(client_id, payment_id="pay_b")
    finance = await officer()
    with pytest.raises(FormErrors, match="linked to the provider's payment pay_a"):
        await staff_actions.mark_paid(
            finance, linked["id"], paid_form(payment_reference="pay_x"), actor_of(finance)
        )
    fresh = await stuck_deposit(client_id)
    with pytest.raises(FormErrors, match=f"belongs to deposit {other['reference']}"):
        await staff_actions.mark_paid(
            finance, fresh["id"], paid_form(payment_reference="pay_b"), actor_of(finance)
        )
    assert await bookings(linked["id"]) + await bookings(fresh["id"]) == 0


async def test_bad_input_is_reported_field_by_field(database):
    d = await stuck_deposit()
    finance = await officer()
    with pytest.raises(FormErrors) as refused:
        await staff_actions.mark_paid(finance, d["id"], {"amount": "abc"}, actor_of(finance))
    assert set(refused.value.errors) == {"payment_reference", "reason", "amount"}
    with pytest.raises(FormErrors) as refused:
        await staff_actions.mark_paid(finance, d["id"], paid_form(amount="-5"), actor_of(finance))
    assert "positive" in refused.value.errors["amount"]
    with pytest.raises(FormErrors, match="client reads"):
        await staff_actions.mark_failed(finance, d["id"], {"failure_reason": " "}, actor_of(finance))
    assert (await deposits.get_deposit(d["id"]))["status"] == "pending"


async def test_only_card_and_e_wallet_deposits_are_settled_here(database):
    client_id = await verified_client()
    row = await db.fetchrow(
        "INSERT INTO funding_deposits (client_id, provider, kind, reference, amount, currency, credit_currency, "
        "status, created_at, updated_at) VALUES ($1, 'wire', 'wire', 'WIRE1', 75, 'USD', 'USD', 'pending', now(), now()) "
        "RETURNING id",
        client_id,
    )
    assert row is not None
    finance = await officer()
    with pytest.raises(FormErrors, match="bank statement line"):
        await staff_actions.mark_paid(finance, row["id"], paid_form(), actor_of(finance))


async def test_other_desks_may_not_settle(database):
    d = await stuck_deposit()
    for role in ("sales", "dealing", "compliance"):
        someone = Principal("staff", 99, f"{role}@staff.test", role.title(), 0, True, True, frozenset([role]))
        with pytest.raises(PermissionError):
            await staff_actions.mark_paid(someone, d["id"], paid_form(), actor_of(someone))
        with pytest.raises(PermissionError):
            await staff_actions.mark_failed(someone, d["id"], {"failure_reason": "x"}, actor_of(someone))
    assert (await deposits.get_deposit(d["id"]))["status"] == "pending"


# --- the pages ----------------------------------------------------------------------------------


@pytest.fixture
async def personas(personas):
    await set_level(personas["client_a"].id, 1)  # client_a may deposit
    return personas


async def test_finance_opens_the_deposit_from_the_queue_with_and_without_htmx(client, personas):
    d = await stuck_deposit(personas["client_a"].id)
    await sign_in(client, personas["finance"])
    queue = await client.get("/staff/funding/queue?kind=deposits", headers=HX)
    assert f'href="/staff/funding/deposits/{d["id"]}"' in queue.text
    url = f"/staff/funding/deposits/{d['id']}"
    page = await client.get(url)
    assert page.status_code == 200 and "<html" in page.text.lower() and d["reference"] in page.text
    fragment = await client.get(url, headers=HX)
    assert fragment.text.lstrip().startswith('<div id="finance-deposit"')
    assert 'id="mark-paid"' in fragment.text and 'id="mark-failed"' in fragment.text


async def test_marking_paid_with_htmx_and_failed_without(client, personas):
    a = personas["client_a"]
    first, second = await stuck_deposit(a.id), await stuck_deposit(a.id)
    await sign_in(client, personas["finance"])
    token = await csrf_token(client, f"/staff/funding/deposits/{first['id']}")
    paid = await client.post(
        f"/staff/funding/deposits/{first['id']}/paid", data={**paid_form(), "_csrf_token": token}, headers=HX
    )
    assert paid.status_code == 200 and paid.text.lstrip().startswith('<div id="finance-deposit"')
    assert "Marked paid" in paid.text and "already completed" in paid.text
    failed = await client.post(
        f"/staff/funding/deposits/{second['id']}/failed",
        data={"failure_reason": "Declined by the issuer", "_csrf_token": token},
    )
    assert failed.status_code == 200 and "<html" in failed.text.lower() and "Marked failed" in failed.text
    for headers in (HX, {}):
        again = await client.post(
            f"/staff/funding/deposits/{first['id']}/paid",
            data={**paid_form(), "_csrf_token": token},
            headers=headers,
        )
        assert again.status_code == 422 and "cannot be settled again" in again.text
    assert await bookings(first["id"]) == 1 and await bookings(second["id"]) == 0


async def test_bad_input_re_renders_the_screen_with_the_input_kept(client, personas):
    d = await stuck_deposit(personas["client_a"].id)
    await sign_in(client, personas["finance"])
    url = f"/staff/funding/deposits/{d['id']}"
    token = await csrf_token(client, url)
    for htmx in (True, False):
        r = await client.post(
            f"{url}/paid",
            data={**paid_form(amount="12,x", reason=""), "_csrf_token": token},
            headers=HX if htmx else {},
        )
        assert r.status_code == 422 and ("<html" in r.text.lower()) is not htmx
        assert 'value="pay_manual_1"' in r.text and 'value="12,x"' in r.text
        assert "Say how the provider confirmed" in r.text and "as a number" in r.text
    assert (await deposits.get_deposit(d["id"]))["status"] == "pending"


async def test_other_desks_and_clients_are_refused(client, personas):
    d = await stuck_deposit(personas["client_a"].id)
    url = f"/staff/funding/deposits/{d['id']}"
    for persona in ("sales", "dealing", "compliance", "client_a"):
        await sign_in(client, personas[persona])
        assert (await client.get(url)).status_code == 403, persona
        token = await csrf_token(client, "/portal/login")
        r = await client.post(f"{url}/paid", data={**paid_form(), "_csrf_token": token})
        assert r.status_code == 403, persona
    assert (await deposits.get_deposit(d["id"]))["status"] == "pending"
