"""Funding › Queue and approval screen: filters, CSV export, approve / reject / change amount with
and without htmx, the funding policy form, and only finance gets in."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from app.core import db
from app.funding import approvals, finance_queue, withdrawals
from tests.conftest import csrf_token
from tests.funding.withdraw_support import actor_of, card_deposit, install_provider, officer, verified_client
from tests.personas import principal_of, sign_in

HX = {"HX-Request": "true"}


@pytest.fixture
async def pending(personas):
    install_provider()
    a = personas["client_a"]
    await db.fetchrow(
        "INSERT INTO kyc_profiles (client, entity_type, level, nationality, address, source_of_funds, updated_at, "
        "risk, risk_score) VALUES ($1, 'individual', 2, '', '', '', now(), 'medium', 42)",
        a.id,
    )
    await card_deposit(a.id, Decimal("900"))
    p = principal_of(a)
    made = []
    for amount in ("100", "250", "400"):
        made.append(
            await withdrawals.request_withdrawal(
                actor_of(p),
                p,
                source="wallet",
                amount=Decimal(amount),
                currency="USD",
                destination="card:tok_4242",
            )
        )
    return personas, made


async def test_the_queue_lists_open_withdrawals_with_filters(client, pending):
    personas, made = pending
    await sign_in(client, personas["finance"])
    page = await client.get("/staff/funding/queue")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert all(f'href="/staff/funding/withdrawals/{w["id"]}"' in page.text for w in made)
    fragment = await client.get("/staff/funding/queue?min=200&max=300", headers=HX)
    assert fragment.text.lstrip().startswith('<div id="finance-queue"')
    assert f'data-id="{made[1]["id"]}"' in fragment.text and f'data-id="{made[0]["id"]}"' not in fragment.text
    searched = await client.get("/staff/funding/queue?q=nobody@nowhere", headers=HX)
    assert "Nothing waiting" in searched.text
    bad = await client.get("/staff/funding/queue?min=abc&from=yesterday", headers=HX)
    assert "Enter an amount" in bad.text and "YYYY-MM-DD" in bad.text


async def test_the_deposit_queue_lists_pending_deposits(client, pending):
    personas, _ = pending
    await db.fetchrow(
        "INSERT INTO funding_deposits (client_id, provider, kind, reference, amount, currency, credit_currency, "
        "status, created_at, updated_at) VALUES ($1, 'wire', 'wire', 'WIRE-REF-1', 75, 'USD', 'USD', 'pending', "
        "now(), now())",
        personas["client_a"].id,
    )
    await sign_in(client, personas["finance"])
    r = await client.get("/staff/funding/queue?kind=deposits", headers=HX)
    assert "WIRE-REF-1" in r.text


async def test_the_csv_export_streams_the_filtered_queue(client, pending):
    personas, made = pending
    await sign_in(client, personas["finance"])
    r = await client.get("/staff/funding/queue.csv?min=200")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted(int(row["id"]) for row in rows) == sorted(w["id"] for w in made[1:])
    assert rows[0]["email"] == personas["client_a"].email
    logged = await db.fetchrow(
        "SELECT actor_label, after::text AS after FROM audit_events WHERE action = 'funding.queue.exported'"
    )
    assert (
        logged is not None and "min" in logged["after"] and personas["finance"].email in logged["actor_label"]
    )


async def test_the_approval_screen_shows_kyc_risk_activity_and_checks(client, pending):
    personas, made = pending
    await sign_in(client, personas["finance"])
    url = f"/staff/funding/withdrawals/{made[0]['id']}"
    page = await client.get(url)
    assert page.status_code == 200
    for text in (
        "level 2 (Fully verified)",
        "medium (score 42)",
        "Recent deposits",
        "Visa •••• 4242",
        "Return to source",
    ):
        assert text in page.text
    fragment = await client.get(url, headers=HX)
    assert fragment.text.lstrip().startswith('<div id="finance-withdrawal"')


async def test_approving_through_the_screen_with_htmx_and_without(client, pending):
    personas, made = pending
    await db.fetchrow("UPDATE funding_withdrawals SET approvals_required = 2 WHERE id = $1", made[0]["id"])
    url = f"/staff/funding/withdrawals/{made[0]['id']}"
    await sign_in(client, personas["finance"])
    token = await csrf_token(client, url)
    r = await client.post(url + "/approve", data={"_csrf_token": token}, headers=HX)
    assert r.status_code == 200 and "Step 1 approved" in r.text and "<html" not in r.text.lower()
    again = await client.post(url + "/approve", data={"_csrf_token": token})
    assert again.status_code == 422 and "different officer" in again.text
    second = await officer()
    await approvals.approve(second, made[0]["id"], actor_of(second))
    screen = await client.get(url)
    assert "step 1: Finance" in screen.text and "step 2:" in screen.text


async def test_rejecting_needs_a_reason_and_sends_the_client_an_email(client, pending):
    personas, made = pending
    url = f"/staff/funding/withdrawals/{made[1]['id']}"
    await sign_in(client, personas["finance"])
    token = await csrf_token(client, url)
    empty = await client.post(url + "/reject", data={"_csrf_token": token, "reason": ""}, headers=HX)
    assert empty.status_code == 422 and "Say why" in empty.text
    r = await client.post(url + "/reject", data={"_csrf_token": token, "reason": "Card expired"})
    assert r.status_code == 200 and "Rejected" in r.text
    mail = await db.fetchrow(
        "SELECT subject, body_text FROM outbound_emails WHERE template = 'withdrawal_rejected'"
    )
    assert mail is not None and "Card expired" in mail["body_text"]


async def test_changing_the_amount_through_the_screen(client, pending):
    personas, made = pending
    url = f"/staff/funding/withdrawals/{made[2]['id']}"
    await sign_in(client, personas["finance"])
    token = await csrf_token(client, url)
    bad = await client.post(
        url + "/amount", data={"_csrf_token": token, "amount": "1.234", "reason": "x"}, headers=HX
    )
    assert bad.status_code == 422 and "decimals" in bad.text
    ok = await client.post(url + "/amount", data={"_csrf_token": token, "amount": "350", "reason": "agreed"})
    assert ok.status_code == 200 and "Amount changed" in ok.text
    assert (await withdrawals.get_withdrawal(made[2]["id"]))["amount"] == Decimal("350")


async def test_the_policy_form_saves_and_audits(client, pending):
    personas, _ = pending
    await sign_in(client, personas["finance"])
    page = await client.get("/staff/funding/policy")
    assert page.status_code == 200 and "Two approvers above" in page.text
    token = await csrf_token(client, "/staff/funding/policy")
    form = {"_csrf_token": token, "policy_currency": "EUR", "dual_approval_over": "5000", "crypto_confirmations": "6",
            "bank_name": "Bank", "bank_beneficiary": "Us", "bank_iban": "DE00", "bank_swift": "BANKDEFF"}  # fmt: skip
    bad = await client.post("/staff/funding/policy", data={**form, "dual_approval_over": "-1"}, headers=HX)
    assert bad.status_code == 422 and "zero or more" in bad.text and "<html" not in bad.text.lower()
    r = await client.post("/staff/funding/policy", data=form)
    assert r.status_code == 303
    row = await db.fetchrow("SELECT policy_currency, dual_approval_over FROM funding_policy WHERE id = 1")
    assert row == {"policy_currency": "EUR", "dual_approval_over": Decimal("5000")}
    audit = await db.fetchrow("SELECT after FROM audit_events WHERE action = 'funding.policy.updated'")
    assert audit is not None and "5000" in str(audit["after"])


@pytest.mark.parametrize("who", ["sales", "compliance", "dealing"])
async def test_non_finance_staff_are_refused(client, pending, who):
    personas, made = pending
    await sign_in(client, personas[who])
    for url in ("/staff/funding/queue", "/staff/funding/queue.csv", f"/staff/funding/withdrawals/{made[0]['id']}",
                "/staff/funding/policy"):  # fmt: skip
        assert (await client.get(url)).status_code == 403, url


async def test_a_client_cannot_reach_the_finance_screens(client, pending):
    personas, made = pending
    await sign_in(client, personas["client_a"])
    r = await client.get(f"/staff/funding/withdrawals/{made[0]['id']}")
    assert r.status_code in (302, 303, 403)


async def test_paying_out_and_confirming_a_wire_through_the_screen(client, pending):
    personas, made = pending
    wid = made[0]["id"]
    url = f"/staff/funding/withdrawals/{wid}"
    other = await officer()
    await approvals.approve(other, wid, actor_of(other))
    from app.funding import providers

    providers.get("testcard").mode = "pending"  # a wire: the provider waits for the bank
    await sign_in(client, personas["finance"])
    token = await csrf_token(client, url)
    r = await client.post(url + "/retry", data={"_csrf_token": token}, headers=HX)
    assert r.status_code == 200 and "Payout status: paying" in r.text and "<html" not in r.text.lower()
    missing = await client.post(url + "/paid", data={"_csrf_token": token, "bank_reference": ""}, headers=HX)
    assert missing.status_code == 422 and "bank&#39;s reference" in missing.text
    done = await client.post(url + "/paid", data={"_csrf_token": token, "bank_reference": "SEPA-123"})
    assert done.status_code == 200 and "Marked as paid" in done.text and "<html" in done.text.lower()
    assert (await withdrawals.get_withdrawal(wid))["status"] == "paid"


async def test_a_btc_withdrawal_shows_its_eight_decimals_on_the_queue_and_the_approval_screen(
    client, personas
):
    install_provider()
    a = await verified_client()
    await card_deposit(a.id, Decimal("0.5"), currency="BTC")
    w = await withdrawals.request_withdrawal(
        actor_of(a),
        a,
        source="wallet",
        amount=Decimal("0.00123456"),
        currency="BTC",
        destination="card:tok_4242",
    )
    await sign_in(client, personas["finance"])
    screen = await client.get(f"/staff/funding/withdrawals/{w['id']}")
    assert screen.status_code == 200 and "0.00123456 BTC" in screen.text
    queue = await client.get("/staff/funding/queue?currency=BTC", headers=HX)
    assert f'data-id="{w["id"]}"' in queue.text and "0.00123456 BTC" in queue.text


async def test_the_csv_export_pages_through_the_queue_without_losing_or_repeating_a_row(pending):
    _, made = pending
    f = finance_queue.parse_filters({"kind": "withdrawals"})
    text = "".join([chunk async for chunk in finance_queue.export_csv(f, batch=1)])
    ids = [row["id"] for row in csv.DictReader(io.StringIO(text))]
    assert ids == [str(w["id"]) for w in made]
