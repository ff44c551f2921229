"""Funding › Deposits (the service every method uses): checks before anything is stored, one
balanced booking per completed deposit whatever the retries, fees and conversions recorded."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from app.core import db, mail
from app.core.errors import FormErrors, NotFound
from app.core.tables import OutboundEmail
from app.funding import deposits
from app.funding.amounts import IdempotencyConflict, LedgerError
from app.kyc.levels import RightDenied
from app.settings import use_settings
from tests import conftest as harness
from tests.funding.deposit_support import (
    SYSTEM,
    add_rate,
    balance,
    card_method,
    count_deposits,
    set_level,
    verified_client,
)
from tests.funding.support import ledger_totals
from tests.personas import principal_of

pytestmark = pytest.mark.usefixtures("database")


async def test_a_deposit_is_created_with_both_fees_and_a_reference():
    client_id = await verified_client()
    method = await card_method()
    d = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("100.00"), "usd")
    assert d["status"] == "created" and d["currency"] == "USD" and d["credit_currency"] == "USD"
    assert (d["fee_broker"], d["fee_provider"]) == (Decimal("1.00"), Decimal("2.80"))
    assert d["reference"].startswith("D") and len(d["reference"]) == 9 and d["reference"].isupper()
    audit = await db.fetchrow(
        "SELECT action FROM audit_events WHERE subject_type = 'funding_deposit' AND subject_id = $1",
        str(d["id"]),
    )
    assert audit is not None and audit["action"] == "funding.deposit.created"


@pytest.mark.parametrize(
    ("amount", "currency", "field", "message"),
    [
        (Decimal("-5"), "USD", "amount", "The amount must be positive."),
        (Decimal("0"), "USD", "amount", "The amount must not be zero."),
        (Decimal("10.001"), "USD", "amount", "USD amounts have at most 2 decimals: 10.001 has more."),
        (Decimal("5"), "USD", "amount", "The minimum deposit by Visa / Mastercard is 10.00 USD."),
        (Decimal("5000.01"), "USD", "amount", "The maximum deposit by Visa / Mastercard is 5,000.00 USD."),
        (Decimal("100"), "GBP", "currency", "Visa / Mastercard takes USD, EUR, not GBP."),
        (Decimal("100"), "XYZ", "currency", "Unknown currency 'XYZ'."),
        (Decimal("2500"), "USD", "amount", "allows deposits of up to 2,000.00 USD in total"),
    ],
)
async def test_a_bad_amount_is_refused_with_a_clear_message_and_nothing_is_stored(
    database, amount, currency, field, message
):
    client_id = await verified_client()
    method = await card_method()
    with pytest.raises(LedgerError) as refused:
        await deposits.create_deposit(SYSTEM, client_id, method["id"], amount, currency)
    assert message in refused.value.errors[field]
    assert await count_deposits() == 0


async def test_a_float_or_text_amount_is_refused_not_rounded():
    client_id = await verified_client()
    method = await card_method()
    with pytest.raises(LedgerError, match="exact decimals"):
        await deposits.create_deposit(SYSTEM, client_id, method["id"], 100.1, "USD")  # type: ignore[arg-type]
    for text in ("1e3", "1,5", "", "abc", "NaN"):
        with pytest.raises(LedgerError):
            deposits.parse_amount(text)
    assert deposits.parse_amount(" 12.50 ") == Decimal("12.50")


async def test_the_kyc_limit_counts_completed_deposits_in_its_currency():
    client_id = await verified_client()
    method = await card_method()
    await add_rate("EUR", "USD", "1.10")
    await add_rate("USD", "EUR", "0.90")  # the 0.30 USD fixed fee in EUR
    first = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("1000"), "EUR")
    await deposits.complete_deposit(SYSTEM, first["id"])
    # 1,000 EUR = 1,100 USD done; 900 USD left
    with pytest.raises(LedgerError, match="at most 900.00 USD more"):
        await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("901"), "USD")
    assert (await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("900"), "USD"))["id"]


async def test_a_client_without_the_deposit_right_is_told_what_would_grant_it():
    client_id = await verified_client(level=0, stage="registered")
    method = await card_method(kyc_level=0)
    with pytest.raises(RightDenied) as denied:
        await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("100"), "USD")
    assert "level 1" in denied.value.message
    assert await count_deposits() == 0


async def test_a_method_not_offered_to_the_client_is_refused():
    client_id = await verified_client()
    inactive = await card_method(active=False)
    french = await card_method(name="Carte FR", countries="FR")
    for m in (inactive, french):
        with pytest.raises(LedgerError, match="not available to you"):
            await deposits.create_deposit(SYSTEM, client_id, m["id"], Decimal("100"), "USD")


async def test_a_double_submit_creates_one_deposit_and_another_body_with_the_key_is_refused():
    client_id = await verified_client()
    method = await card_method()
    args = (SYSTEM, client_id, method["id"], Decimal("100"), "USD")
    results = await asyncio.gather(
        *(deposits.create_deposit(*args, idempotency_key="form-1") for _ in range(5))
    )
    assert len({r["id"] for r in results}) == 1 and await count_deposits() == 1
    with pytest.raises(IdempotencyConflict):
        await deposits.create_deposit(
            SYSTEM, client_id, method["id"], Decimal("101"), "USD", idempotency_key="form-1"
        )


async def test_completing_books_one_balanced_transaction_with_the_fees_apart():
    client_id = await verified_client()
    method = await card_method()
    d = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("100.00"), "USD")
    done = await deposits.complete_deposit(
        SYSTEM, d["id"], provider_payment_id="pay_1", instrument="Visa •••• 4242", instrument_key="card_x"
    )
    again = await deposits.complete_deposit(SYSTEM, d["id"])
    assert (
        done["status"] == again["status"] == "completed" and again["transaction_id"] == done["transaction_id"]
    )
    assert done["credited_amount"] == Decimal("96.20") and done["fx_rate"] is None
    assert done["instrument_key"] == "card_x" and done["paid_at"] is not None
    assert await balance("client_wallet", "USD", client_id=client_id) == Decimal("96.20")
    assert await balance("fees", "USD") == Decimal("1.00")
    # the provider kept its 2.80: it owes us 97.20
    assert await balance("provider_clearing", "USD", provider="simcard") == Decimal("97.20")
    n = await db.fetchrow(
        "SELECT count(*) AS n FROM funding_transactions WHERE idempotency_key = $1", f"deposit:{d['id']}"
    )
    assert n is not None and n["n"] == 1
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}


async def test_concurrent_completions_credit_once():
    client_id = await verified_client()
    method = await card_method()
    d = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("50"), "USD")
    await asyncio.gather(*(deposits.complete_deposit(SYSTEM, d["id"]) for _ in range(6)))
    assert await balance("client_wallet", "USD", client_id=client_id) == Decimal("47.95")


async def test_a_different_paid_amount_is_credited_and_the_request_kept():
    client_id = await verified_client()
    method = await card_method(
        broker_fee_percent=Decimal(0), provider_fee_percent=Decimal(0), provider_fee_fixed=Decimal(0)
    )
    d = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("100"), "USD")
    done = await deposits.complete_deposit(SYSTEM, d["id"], amount=Decimal("95"))
    assert (done["amount"], done["requested_amount"], done["credited_amount"]) == (
        Decimal("95"),
        Decimal("100"),
        Decimal("95"),
    )


async def test_a_deposit_credited_in_another_currency_goes_through_fx_and_keeps_the_rate():
    client_id = await verified_client(level=2)
    method = await card_method(
        broker_fee_percent=Decimal(0), provider_fee_percent=Decimal(0), provider_fee_fixed=Decimal(0)
    )
    await add_rate("EUR", "USD", "1.2")
    await add_rate("EUR", "USD", "1.0850")  # the latest one counts
    d = await deposits.create_deposit(
        SYSTEM, client_id, method["id"], Decimal("100"), "EUR", credit_currency="USD"
    )
    done = await deposits.complete_deposit(SYSTEM, d["id"])
    assert done["fx_rate"] == Decimal("1.0850") and done["credited_amount"] == Decimal("108.50")
    assert await balance("client_wallet", "USD", client_id=client_id) == Decimal("108.50")
    assert await balance("fx", "EUR") == Decimal("100")
    assert await balance("fx", "USD") == Decimal("-108.50")
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}


async def test_without_a_rate_the_paid_deposit_waits_and_completes_when_one_is_recorded():
    client_id = await verified_client(level=2)
    method = await card_method(
        broker_fee_percent=Decimal(0), provider_fee_percent=Decimal(0), provider_fee_fixed=Decimal(0)
    )
    d = await deposits.create_deposit(
        SYSTEM, client_id, method["id"], Decimal("100"), "USD", credit_currency="GBP"
    )
    waiting = await deposits.complete_deposit(SYSTEM, d["id"], provider_payment_id="pay_w")
    assert waiting["status"] == "pending" and waiting["paid_at"] is not None
    assert "no exchange rate from USD to GBP" in waiting["failure_reason"]
    assert await balance("client_wallet", "GBP", client_id=client_id) == 0
    assert await deposits.retry_awaiting(SYSTEM) == 0
    await add_rate("USD", "GBP", "0.79")
    assert await deposits.retry_awaiting(SYSTEM) == 1
    done = await deposits.get_deposit(d["id"])
    assert (
        done["status"] == "completed" and done["fx_rate"] == Decimal("0.79") and done["failure_reason"] == ""
    )
    assert await balance("client_wallet", "GBP", client_id=client_id) == Decimal("79.00")


async def test_the_first_completed_deposit_funds_the_client_and_feeds_the_risk():
    client_id = await verified_client()
    method = await card_method()
    d = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("100"), "USD")
    await deposits.complete_deposit(SYSTEM, d["id"])
    row = await db.fetchrow("SELECT stage FROM clients WHERE id = $1", client_id)
    assert row is not None and row["stage"] == "funded"
    profile = await db.fetchrow(
        "SELECT risk_factors::text AS f FROM kyc_profiles WHERE client = $1", client_id
    )
    assert profile is not None and "Deposits: 100 USD" in profile["f"]


async def test_a_client_not_yet_approved_keeps_their_stage():
    client_id = await verified_client(stage="kyc_pending")
    method = await card_method()
    d = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("100"), "USD")
    await deposits.complete_deposit(SYSTEM, d["id"])
    row = await db.fetchrow("SELECT stage FROM clients WHERE id = $1", client_id)
    assert row is not None and row["stage"] == "kyc_pending"


async def test_the_client_receives_the_deposit_e_mails(smtp_server, database):
    url, box = smtp_server
    use_settings(harness.test_settings(database, SMTP_URL=url))
    client_id = await verified_client(name="mailer_dep")
    method = await card_method()
    ok = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("100"), "USD")
    await deposits.complete_deposit(SYSTEM, ok["id"])
    bad = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("20"), "USD")
    await deposits.fail_deposit(SYSTEM, bad["id"], "Your card was declined.")
    for row in await OutboundEmail.select().order_by(OutboundEmail.id):
        assert await mail.deliver(row["id"]) == "sent"
    received, failed = box.to("mailer.dep@client.test")
    assert ok["reference"] in received["Subject"] and "credited" in received["Subject"]
    assert "96.20 USD" in received.get_content()
    assert bad["reference"] in failed["Subject"] and "Your card was declined." in failed.get_content()


async def test_failing_and_pending_never_move_a_deposit_backwards():
    client_id = await verified_client()
    method = await card_method()
    d = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("100"), "USD")
    assert (await deposits.mark_pending(SYSTEM, d["id"]))["status"] == "pending"
    await deposits.complete_deposit(SYSTEM, d["id"])
    assert (await deposits.mark_pending(SYSTEM, d["id"]))["status"] == "completed"
    assert (await deposits.fail_deposit(SYSTEM, d["id"], "late"))["status"] == "completed"
    other = await deposits.create_deposit(SYSTEM, client_id, method["id"], Decimal("20"), "USD")
    await deposits.fail_deposit(SYSTEM, other["id"], "declined")
    assert (await deposits.mark_pending(SYSTEM, other["id"]))["status"] == "failed"


async def test_another_client_gets_404_and_finance_sees_it(personas):
    a, b = personas["client_a"], personas["client_b"]
    await set_level(a.id, 1)
    method = await card_method()
    d = await deposits.create_deposit(SYSTEM, a.id, method["id"], Decimal("100"), "USD")
    assert (await deposits.get_deposit_for(principal_of(a), d["id"]))["id"] == d["id"]
    assert (await deposits.get_deposit_for(principal_of(personas["finance"]), d["id"]))["id"] == d["id"]
    for outsider in (principal_of(b), principal_of(personas["sales"])):
        with pytest.raises(NotFound):
            await deposits.get_deposit_for(outsider, d["id"])


async def test_errors_are_form_errors_for_the_form(database):
    assert issubclass(LedgerError, FormErrors)


async def test_an_unknown_client_is_not_found():
    method = await card_method()
    with pytest.raises(NotFound):
        await deposits.create_deposit(SYSTEM, 999999, method["id"], Decimal("100"), "USD")


async def test_the_deposit_e_mails_exist_in_every_language():
    context = {
        "first_name": "Ada", "reference": "DABCDEFGH", "method": "Visa", "amount": "100.00 USD",
        "credited": "96.20 USD", "fees": "3.80 USD", "fx_rate": "", "reason": "Declined.", "deposit_id": 7,
        "base_url": "https://crm.example",
    }  # fmt: skip
    subjects = set()
    for language in ("en", "de", "fr", "es", "ar"):
        subject, text, _ = mail.render("deposit_received", context, language)
        assert "DABCDEFGH" in subject and "96.20 USD" in text
        subjects.add(subject)
        subject, text, _ = mail.render("deposit_failed", context, language)
        assert "DABCDEFGH" in subject and "Declined." in text
        subjects.add(subject)
    assert len(subjects) == 10  # each language its own words
