"""Withdrawal services: pre-checks, request and hold, cancel, dual-control approvals, rejection,
amount changes and payouts that never pay twice (real database, in-process provider)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest

from app.core import db
from app.core.errors import FormErrors
from app.funding import approvals, ledger, payouts, withdrawals
from app.funding.withdrawal_checks import blocking, prechecks
from app.funding.withdrawals import WithdrawalRefused
from tests.funding.withdraw_support import (
    actor_of,
    card_deposit,
    funded_client,
    install_provider,
    officer,
    verified_client,
    wallet_of,
    wire_method,
)

CARD = "card:tok_4242"


@pytest.fixture
async def provider(database):
    return install_provider()


async def request(client, amount="100", destination=CARD, **kw):
    return await withdrawals.request_withdrawal(
        actor_of(client), client, source="wallet", amount=Decimal(amount), currency="USD",
        destination=destination, **kw,
    )  # fmt: skip


def blocked(checks) -> set[str]:
    return {c.key for c in blocking(checks)}


# --- pre-checks -------------------------------------------------------------------------------


async def test_prechecks_pass_for_a_verified_client_returning_to_the_card(database):
    client = await funded_client(Decimal("500"))
    checks = await prechecks(
        client.id, source="wallet", amount=Decimal("200"), currency="USD", destination=CARD
    )
    assert blocked(checks) == set()


async def test_prechecks_block_more_than_the_available_balance(database):
    client = await funded_client(Decimal("50"))
    checks = await prechecks(
        client.id, source="wallet", amount=Decimal("60"), currency="USD", destination=CARD
    )
    assert "balance" in blocked(checks)


async def test_a_decimal_comma_blocks_the_withdrawal_instead_of_reading_ten_times_the_amount(database):
    client = await funded_client(Decimal("500"))
    checks = await prechecks(client.id, source="wallet", amount="1,5", currency="USD", destination=CARD)
    assert "amount" in blocked(checks)
    assert "point for decimals" in next(c.message for c in checks if c.key == "amount")
    grouped = await prechecks(client.id, source="wallet", amount="1,250.50", currency="USD", destination=CARD)
    assert "amount" not in blocked(grouped) and "balance" in blocked(grouped)  # read as 1250.50, over 500


def test_deposit_and_withdrawal_forms_read_typed_amounts_the_same_way():
    from app.funding.amounts import LedgerError
    from app.funding.deposit_checks import parse_amount as deposit_amount
    from app.funding.withdrawal_checks import parse_amount as withdrawal_amount

    for parse in (deposit_amount, withdrawal_amount):
        assert parse(" 1,250.50 ") == Decimal("1250.50")
        assert parse("12 000") == Decimal(12000)
        assert parse("250") == Decimal(250)
        for bad, words in (("1,5", "point for decimals"), ("1,25,0", "point for decimals"), ("1e3", "as a number"),
                           ("NaN", "as a number"), ("", "Enter an amount")):  # fmt: skip
            with pytest.raises(LedgerError, match=words):
                parse(bad)


async def test_prechecks_block_a_client_without_the_withdrawal_right(database):
    client = await verified_client(level=1)
    await card_deposit(client.id, Decimal("100"))
    checks = await prechecks(
        client.id, source="wallet", amount=Decimal("10"), currency="USD", destination=CARD
    )
    assert blocked(checks) == {"kyc"}
    assert "verification level 2" in next(c.message for c in checks if c.key == "kyc")


async def test_prechecks_send_card_money_back_to_the_card_before_another_method(database):
    client = await funded_client(Decimal("300"))
    wire = await wire_method()
    checks = await prechecks(
        client.id, source="wallet", amount=Decimal("10"), currency="USD", destination=wire
    )
    assert blocked(checks) == {"return_to_source"}
    assert "Visa •••• 4242" in next(c.message for c in checks if c.key == "return_to_source")


async def test_prechecks_limit_a_card_to_what_was_deposited_from_it(database):
    client = await funded_client(Decimal("100"))
    wallet = await ledger.wallet_for(client.id, "USD")
    from tests.funding.support import deposit

    await deposit(wallet, Decimal("400"))  # money from elsewhere (not a card)
    checks = await prechecks(
        client.id, source="wallet", amount=Decimal("150"), currency="USD", destination=CARD
    )
    assert blocked(checks) == {"return_to_source"}


async def test_prechecks_allow_another_method_once_the_card_is_repaid(database, provider):
    client = await funded_client(Decimal("100"))
    wallet = await ledger.wallet_for(client.id, "USD")
    from tests.funding.support import deposit

    await deposit(wallet, Decimal("400"))
    await request(client, "100")  # the whole card deposit goes back
    wire = await wire_method()
    checks = await prechecks(
        client.id, source="wallet", amount=Decimal("50"), currency="USD", destination=wire
    )
    assert blocked(checks) == set()


async def test_prechecks_block_a_client_with_an_open_due_diligence_questionnaire(database):
    client = await funded_client(Decimal("100"))
    staff = await officer()
    task = await db.fetchrow(
        "INSERT INTO client_tasks (client, title, due_at, assignee, created_by, created_at) "
        "VALUES ($1, 'Enhanced due diligence', now(), $2, $2, now()) RETURNING id",
        client.id,
        staff.id,
    )
    await db.fetchrow("UPDATE kyc_profiles SET risk_edd_task = $2 WHERE client = $1", client.id, task["id"])
    checks = await prechecks(
        client.id, source="wallet", amount=Decimal("10"), currency="USD", destination=CARD
    )
    assert blocked(checks) == {"questionnaire"}


async def test_prechecks_word_bad_amounts(database):
    client = await funded_client(Decimal("100"))
    for typed in (Decimal("-5"), Decimal("0"), Decimal("1.234"), "abc"):
        checks = await prechecks(client.id, source="wallet", amount=typed, currency="USD", destination=CARD)
        assert "amount" in blocked(checks)


async def test_prechecks_block_an_account_withdrawal_over_free_margin(database):
    from tests.funding.support import trading_account

    client = await funded_client(Decimal("100"))
    account = await trading_account(client.id)
    await db.fetchrow(
        "UPDATE trading_accounts SET balance = 500, credit = 50, equity = 520, margin_free = 250, state_at = now() "
        "WHERE id = $1",
        account,
    )
    kw = {"source": "account", "trading_account_id": account, "currency": "USD", "destination": CARD}
    assert "margin" in blocked(await prechecks(client.id, amount=Decimal("201"), **kw))
    assert "margin" not in blocked(await prechecks(client.id, amount=Decimal("100"), **kw))


async def test_prechecks_block_an_account_never_synced(database):
    from tests.funding.support import trading_account

    client = await funded_client(Decimal("100"))
    account = await trading_account(client.id)
    checks = await prechecks(
        client.id,
        source="account",
        trading_account_id=account,
        amount=Decimal("1"),
        currency="USD",
        destination=CARD,
    )
    assert "margin" in blocked(checks)


# --- request, cancel ----------------------------------------------------------------------------


async def test_a_request_holds_the_amount_and_a_repeat_of_its_key_returns_it(database, provider):
    client = await funded_client(Decimal("500"))
    first = await request(client, "120", idempotency_key="form-1")
    again = await request(client, "120", idempotency_key="form-1")
    assert again["id"] == first["id"] and first["status"] == "requested"
    assert await wallet_of(client.id) == {"available": Decimal("380"), "held": Decimal("120")}
    assert first["approvals_required"] == 1


async def test_a_refused_request_says_why_and_holds_nothing(database, provider):
    client = await funded_client(Decimal("50"))
    with pytest.raises(WithdrawalRefused) as exc:
        await request(client, "80")
    assert "Available in your USD wallet" in exc.value.messages[0]
    assert await wallet_of(client.id) == {"available": Decimal("50"), "held": Decimal("0")}


async def test_the_client_cancels_before_approval_and_gets_the_money_back(database, provider):
    client = await funded_client(Decimal("500"))
    w = await request(client)
    done = await withdrawals.cancel(client, w["id"], actor_of(client))
    assert done["status"] == "cancelled"
    assert await wallet_of(client.id) == {"available": Decimal("500"), "held": Decimal("0")}


async def test_another_client_cannot_see_or_cancel_a_withdrawal(database, provider):
    from app.core.errors import NotFound

    client, other = await funded_client(), await funded_client()
    w = await request(client)
    with pytest.raises(NotFound):
        await withdrawals.get_withdrawal_for(other, w["id"])
    with pytest.raises(NotFound):
        await withdrawals.cancel(other, w["id"], actor_of(other))


async def test_fifty_concurrent_requests_on_one_wallet_never_overdraw_it(database, provider):
    await db.close_pool()
    await db.start_pool(min_size=2, max_size=20)
    client = await funded_client(Decimal("1000"))

    async def one(n: int) -> str:
        try:
            await request(client, "30", idempotency_key=f"race-{n}")
            return "ok"
        except WithdrawalRefused:
            return "refused"

    results = await asyncio.gather(*(one(n) for n in range(50)))
    assert results.count("ok") == 33  # 33 × 30 = 990 ≤ 1000 < 34 × 30
    assert await wallet_of(client.id) == {"available": Decimal("10"), "held": Decimal("990")}


async def test_a_withdrawal_racing_a_transfer_never_overdraws_the_wallet(database, provider):
    from tests.funding.support import FINANCE, key, trading_account

    await db.close_pool()
    await db.start_pool(min_size=2, max_size=10)
    client = await funded_client(Decimal("100"))
    wallet = await ledger.wallet_for(client.id, "USD")
    account = await ledger.account_for_trading(await trading_account(client.id))

    async def withdraw() -> str:
        try:
            await request(client, "70")
            return "withdrawn"
        except WithdrawalRefused:
            return "refused"

    async def transfer() -> str:
        from app.funding.amounts import InsufficientFunds

        try:
            await ledger.transfer(
                FINANCE,
                "transfer",
                debit=wallet,
                credit=account,
                amount=Decimal("70"),
                idempotency_key=key("tr"),
            )
            return "transferred"
        except InsufficientFunds:
            return "refused"

    outcome = sorted(await asyncio.gather(withdraw(), transfer()))
    assert outcome.count("refused") == 1
    state = await wallet_of(client.id)
    assert state["available"] == Decimal("30") and state["available"] >= 0


# --- approvals ----------------------------------------------------------------------------------


async def test_the_creator_of_a_withdrawal_may_not_approve_it(database, provider):
    client = await funded_client()
    creator = await officer()
    w = await withdrawals.request_withdrawal(
        actor_of(creator), creator, client_id=client.id, source="wallet", amount=Decimal("50"),
        currency="USD", destination=CARD,
    )  # fmt: skip
    with pytest.raises(FormErrors, match="You created this withdrawal"):
        await approvals.approve(creator, w["id"], actor_of(creator))
    other = await officer()
    assert (await approvals.approve(other, w["id"], actor_of(other)))["status"] == "approved"


async def test_a_staff_member_who_is_the_client_may_not_approve(database, provider):
    client = await funded_client()
    w = await request(client)
    me = await officer()
    same = type(me)(me.kind, me.id, client.email, me.name, 0, True, True, me.roles)
    with pytest.raises(FormErrors, match="your own withdrawal"):
        await approvals.approve(same, w["id"], actor_of(same))


async def test_non_finance_staff_may_not_decide(database, provider):
    from app.core.auth.principal import Principal

    client = await funded_client()
    w = await request(client)
    sales = Principal("staff", 99, "sales@staff.test", "Sales", 0, True, True, frozenset(["sales"]))
    with pytest.raises(PermissionError):
        await approvals.approve(sales, w["id"], actor_of(sales))
    with pytest.raises(PermissionError):
        await approvals.reject(sales, w["id"], "no", actor_of(sales))


async def test_above_the_threshold_two_distinct_officers_approve_in_order(database, provider):
    await db.fetchrow("UPDATE funding_policy SET dual_approval_over = 100 WHERE id = 1")
    client = await funded_client(Decimal("1000"))
    w = await request(client, "500")
    assert w["approvals_required"] == 2
    first, second = await officer(), await officer()
    after_one = await approvals.approve(first, w["id"], actor_of(first))
    assert after_one["status"] == "requested"
    with pytest.raises(FormErrors, match="different officer"):
        await approvals.approve(first, w["id"], actor_of(first))
    after_two = await approvals.approve(second, w["id"], actor_of(second))
    assert after_two["status"] == "approved"
    steps = await withdrawals.approvals_of(w["id"])
    assert [(a["step"], a["staff_user_id"]) for a in steps] == [(1, first.id), (2, second.id)]


async def test_without_an_exchange_rate_a_foreign_withdrawal_needs_two_approvers(database, provider):
    client = await verified_client()
    await card_deposit(client.id, Decimal("100"), currency="EUR")
    w = await withdrawals.request_withdrawal(
        actor_of(client), client, source="wallet", amount=Decimal("5"), currency="EUR", destination=CARD
    )
    assert w["approvals_required"] == 2


async def test_the_database_refuses_a_second_approval_by_the_same_officer(database, provider):
    client = await funded_client()
    w = await request(client)
    with pytest.raises(asyncpg.UniqueViolationError):
        async with db.transaction():
            for step in (1, 2):
                await db.fetchrow(
                    "INSERT INTO funding_withdrawal_approvals (withdrawal_id, step, staff_user_id, staff_label, "
                    "created_at) VALUES ($1, $2, 7, 'x', now())",
                    w["id"],
                    step,
                )


async def test_the_same_officer_racing_themselves_approves_once(database, provider):
    await db.close_pool()
    await db.start_pool(min_size=2, max_size=10)
    await db.fetchrow("UPDATE funding_policy SET dual_approval_over = 10 WHERE id = 1")
    client = await funded_client()
    w = await request(client, "50")
    me = await officer()

    async def go() -> str:
        try:
            await approvals.approve(me, w["id"], actor_of(me))
            return "ok"
        except FormErrors:
            return "refused"

    assert sorted(await asyncio.gather(go(), go())) == ["ok", "refused"]
    assert len(await withdrawals.approvals_of(w["id"])) == 1


async def test_two_officers_racing_take_steps_one_and_two(database, provider):
    await db.close_pool()
    await db.start_pool(min_size=2, max_size=10)
    await db.fetchrow("UPDATE funding_policy SET dual_approval_over = 10 WHERE id = 1")
    client = await funded_client()
    w = await request(client, "50")
    a, b = await officer(), await officer()
    await asyncio.gather(
        approvals.approve(a, w["id"], actor_of(a)), approvals.approve(b, w["id"], actor_of(b))
    )
    steps = await withdrawals.approvals_of(w["id"])
    assert sorted(s["step"] for s in steps) == [1, 2] and len({s["staff_user_id"] for s in steps}) == 2
    assert (await withdrawals.get_withdrawal(w["id"]))["status"] == "approved"


async def test_rejecting_releases_the_hold_and_needs_a_reason(database, provider):
    client = await funded_client(Decimal("500"))
    w = await request(client, "200")
    me = await officer()
    with pytest.raises(FormErrors):
        await approvals.reject(me, w["id"], "  ", actor_of(me))
    done = await approvals.reject(me, w["id"], "Third-party card", actor_of(me))
    assert done["status"] == "rejected" and done["rejection_reason"] == "Third-party card"
    assert await wallet_of(client.id) == {"available": Decimal("500"), "held": Decimal("0")}
    mails = await db.fetch("SELECT template FROM outbound_emails WHERE to_addr = {}", client.email)
    assert [m["template"] for m in mails] == ["withdrawal_rejected"]


async def test_changing_the_amount_is_logged_and_gives_the_difference_back(database, provider):
    client = await funded_client(Decimal("500"))
    w = await request(client, "200")
    me = await officer()
    with pytest.raises(FormErrors, match="only be lowered"):
        await approvals.change_amount(me, w["id"], Decimal("250"), "more", actor_of(me))
    changed = await approvals.change_amount(me, w["id"], Decimal("150"), "fee agreed", actor_of(me))
    assert changed["amount"] == Decimal("150") and changed["requested_amount"] == Decimal("200")
    assert await wallet_of(client.id) == {"available": Decimal("350"), "held": Decimal("150")}
    row = await db.fetchrow(
        "SELECT before, after FROM audit_events WHERE action = 'funding.withdrawal.amount_changed' AND subject_id = $1",
        str(w["id"]),
    )
    assert row is not None and "200" in str(row["before"]) and "150" in str(row["after"])


async def test_the_amount_cannot_change_after_an_approval(database, provider):
    await db.fetchrow("UPDATE funding_policy SET dual_approval_over = 10 WHERE id = 1")
    client = await funded_client(Decimal("500"))
    w = await request(client, "200")
    a, b = await officer(), await officer()
    await approvals.approve(a, w["id"], actor_of(a))
    with pytest.raises(FormErrors, match="before any approval"):
        await approvals.change_amount(b, w["id"], Decimal("100"), "late", actor_of(b))


# --- payouts ----------------------------------------------------------------------------------


async def approved(client, amount="100"):
    w = await request(client, amount)
    me = await officer()
    return await approvals.approve(me, w["id"], actor_of(me))


async def test_an_approved_withdrawal_is_paid_once_however_often_the_job_runs(database, provider):
    client = await funded_client(Decimal("500"))
    w = await approved(client)
    assert await payouts.pay_out(w["id"]) == "paid"
    assert await payouts.pay_out(w["id"]) == "paid"
    assert len(provider.payouts) == 1 and provider.calls == 1
    mails = await db.fetch("SELECT template, body_text FROM outbound_emails WHERE to_addr = {}", client.email)
    assert [m["template"] for m in mails] == ["withdrawal_approved"] and "100.00 USD" in mails[0]["body_text"]
    assert await wallet_of(client.id) == {"available": Decimal("400"), "held": Decimal("0")}
    clearing = await ledger.system_account("provider_clearing", "USD", "testcard")
    from app.funding import balances

    assert await balances.balance_of(clearing) == Decimal("-100")  # the provider paid 100 on our behalf


async def test_a_timeout_stays_paying_and_the_sweep_settles_without_paying_again(database, provider):
    client = await funded_client(Decimal("500"))
    w = await approved(client)
    provider.mode = "timeout"
    assert await payouts.pay_out(w["id"]) == "paying"
    provider.mode = "paid"
    assert await payouts.sweep(older_than_seconds=0) == {"paid": 1}
    assert len(provider.payouts) == 1
    assert (await withdrawals.get_withdrawal(w["id"]))["status"] == "paid"


async def test_a_payout_the_provider_never_received_is_sent_again_under_the_same_key(database, provider):
    client = await funded_client(Decimal("500"))
    w = await approved(client)
    provider.mode = "down"
    assert await payouts.pay_out(w["id"]) == "paying"
    provider.mode = "paid"
    assert await payouts.resolve(w["id"]) == "paid"
    assert list(provider.payouts) == [f"withdrawal:{w['id']}"]


async def test_a_refused_payout_fails_and_gives_the_money_back(database, provider):
    client = await funded_client(Decimal("500"))
    w = await approved(client)
    provider.mode = "refuse"
    assert await payouts.pay_out(w["id"]) == "failed"
    failed = await withdrawals.get_withdrawal(w["id"])
    assert "declined" in failed["payout_error"]
    assert await wallet_of(client.id) == {"available": Decimal("500"), "held": Decimal("0")}


async def test_a_pending_payout_is_confirmed_by_finance(database, provider):
    client = await funded_client(Decimal("500"))
    w = await approved(client)
    provider.mode = "pending"
    assert await payouts.pay_out(w["id"]) == "paying"
    me = await officer()
    assert await payouts.confirm_payout(me, w["id"], "BANKREF1", actor_of(me)) == "paid"


async def test_no_payout_without_the_required_approvals(database, provider):
    await db.fetchrow("UPDATE funding_policy SET dual_approval_over = 10 WHERE id = 1")
    client = await funded_client(Decimal("500"))
    w = await request(client, "50")
    a = await officer()
    await approvals.approve(a, w["id"], actor_of(a))
    # forced to 'approved' with one approver: the claim still refuses to pay
    await db.fetchrow("UPDATE funding_withdrawals SET status = 'approved' WHERE id = $1", w["id"])
    assert await payouts.pay_out(w["id"]) == "approved"
    assert provider.calls == 0


async def test_a_request_publishes_live_events_for_the_client_and_finance(database, provider):
    import json

    from app.core.live import CHANNEL

    client = await funded_client(Decimal("500"))
    events: list[dict] = []
    conn = await asyncpg.connect(database)
    try:
        await conn.add_listener(CHANNEL, lambda *args: events.append(json.loads(args[-1])))
        w = await request(client, "40")
        for _ in range(50):
            if len(events) >= 3:
                break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    seen = {(e["topic"], e["type"]) for e in events}
    assert (f"client:{client.id}", "funding.withdrawal") in seen
    assert ("staff:finance", "funding.withdrawal") in seen
    assert (f"client:{client.id}", "funding.wallet") in seen
    assert any(e["ids"].get("withdrawal_id") == w["id"] for e in events)
