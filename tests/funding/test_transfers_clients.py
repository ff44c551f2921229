"""Client → client transfers: held at once, approved by a finance officer who did not ask for
it (audited), or rejected with a reason; a recipient is found only by e-mail plus a second detail."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from app.core import db
from app.core.audit import Actor
from app.core.errors import FormErrors, NotFound
from app.funding import client_transfers, transfer_views
from app.funding.amounts import AlreadySettled, InsufficientFunds, LedgerError
from tests.funding.support import ledger_totals, trading_account
from tests.funding.transfer_support import client_actor, fund, key, new_client, verified, wallet
from tests.personas import make_staff, principal_of


async def sender_and_recipient(amount: str = "500") -> tuple:
    sender = await new_client()
    await fund(sender.id, Decimal(amount))
    recipient = await new_client(level=1)  # level 1 may deposit, so may receive
    return sender, recipient


async def requested(sender, recipient, amount: str = "100", **kw) -> dict:
    return await client_transfers.request(
        kw.pop("actor", client_actor(sender.id)), sender.id, "USD", Decimal(amount), recipient.email,
        str(kw.pop("ref", recipient.id)), kw.pop("idempotency_key", key()), **kw,
    )  # fmt: skip


async def test_a_transfer_to_another_client_waits_for_finance_then_lands_in_their_wallet(personas):
    sender, recipient = await sender_and_recipient()
    t = await requested(sender, recipient, note="rent")
    assert t["status"] == "awaiting_approval"
    w = await wallet(sender.id)
    assert (w.available, w.held) == (Decimal(400), Decimal(100))
    finance = personas["finance"]
    done = await client_transfers.approve(
        principal_of(finance), t["id"], Actor("staff", str(finance.id), finance.email)
    )
    assert (done["status"], done["decided_by"]) == ("done", finance.email)
    w = await wallet(sender.id)
    assert (w.available, w.held) == (Decimal(400), 0)
    assert (await wallet(recipient.id)).available == Decimal(100)
    audit = await db.fetch(
        "SELECT action, actor_label FROM audit_events WHERE subject_type = 'funding_transfer' AND subject_id = {} "
        "ORDER BY seq",
        str(t["id"]),
    )
    assert [a["action"] for a in audit] == ["funding.transfer.requested", "funding.transfer.approved"]
    assert audit[1]["actor_label"] == finance.email
    totals = await ledger_totals()
    assert (totals["unbalanced"], totals["stale"], totals["negative"]) == (0, 0, 0)


async def test_the_recipient_can_be_named_by_one_of_their_account_logins(personas):
    sender, recipient = await sender_and_recipient()
    account_id = await trading_account(recipient.id)
    login = (await db.fetchrow("SELECT login FROM trading_accounts WHERE id = $1", account_id))["login"]
    t = await requested(sender, recipient, ref=login)
    assert t["to_client_id"] == recipient.id


async def test_an_unknown_email_a_wrong_number_or_a_recipient_who_may_not_receive_all_get_the_same_answer(
    personas,
):
    sender, recipient = await sender_and_recipient()
    unverified = await new_client(level=0)
    other = await new_client(level=1)
    attempts = [
        ("nobody@nowhere.test", recipient.id),
        (recipient.email, other.id),  # a real e-mail with someone else's number
        (unverified.email, unverified.id),  # exists, but may not deposit
    ]
    for email, ref in attempts:
        with pytest.raises(LedgerError) as exc:
            await client_transfers.request(
                client_actor(sender.id), sender.id, "USD", Decimal(10), email, str(ref), key()
            )
        assert exc.value.errors == {"recipient": client_transfers.NO_MATCH}
    await db.fetch("UPDATE clients SET is_active = false WHERE id = {}", other.id)
    with pytest.raises(LedgerError, match="No client matches"):
        await client_transfers.request(
            client_actor(sender.id), sender.id, "USD", Decimal(10), other.email, str(other.id), key()
        )
    with pytest.raises(LedgerError, match="your own"):
        await client_transfers.request(
            client_actor(sender.id), sender.id, "USD", Decimal(10), sender.email, str(sender.id), key()
        )
    with pytest.raises(InsufficientFunds):
        await requested(sender, recipient, "500.01")
    assert (await wallet(sender.id)).held == 0


async def test_a_sender_without_the_withdrawal_right_is_told_what_is_missing(personas):
    sender, recipient = await sender_and_recipient()
    await verified(sender.id, 1)
    with pytest.raises(LedgerError, match="verification level 2"):
        await requested(sender, recipient)


async def test_the_officer_who_requested_a_transfer_cannot_approve_it_but_another_can(personas):
    sender, recipient = await sender_and_recipient()
    finance = personas["finance"]
    on_behalf = Actor("staff", str(finance.id), finance.email)
    t = await requested(sender, recipient, actor=on_behalf)
    assert (t["requester_kind"], t["requester_id"]) == ("staff", finance.id)
    with pytest.raises(FormErrors, match="another finance officer"):
        await client_transfers.approve(principal_of(finance), t["id"], on_behalf)
    second = await make_staff("finance_two", ["finance"])
    done = await client_transfers.approve(
        principal_of(second), t["id"], Actor("staff", str(second.id), second.email)
    )
    assert done["decided_by"] == second.email


async def test_staff_outside_finance_cannot_decide_and_a_decided_transfer_stays_decided(personas):
    sender, recipient = await sender_and_recipient()
    t = await requested(sender, recipient)
    sales = personas["sales"]
    with pytest.raises(NotFound):
        await client_transfers.approve(
            principal_of(sales), t["id"], Actor("staff", str(sales.id), sales.email)
        )
    finance = personas["finance"]
    officer = principal_of(finance)
    actor = Actor("staff", str(finance.id), finance.email)
    with pytest.raises(FormErrors, match="Say why"):
        await client_transfers.reject(officer, t["id"], "  ", actor)
    rejected = await client_transfers.reject(officer, t["id"], "The recipient's name does not match.", actor)
    assert (rejected["status"], rejected["message"]) == ("rejected", "The recipient's name does not match.")
    w = await wallet(sender.id)
    assert (w.available, w.held) == (Decimal(500), 0)
    with pytest.raises(AlreadySettled):
        await client_transfers.approve(officer, t["id"], actor)
    assert (await wallet(recipient.id)).available == 0


async def test_a_double_submitted_request_holds_the_money_once(personas):
    sender, recipient = await sender_and_recipient()
    same = key()
    results = await asyncio.gather(*(requested(sender, recipient, idempotency_key=same) for _ in range(3)))
    assert len({r["id"] for r in results}) == 1
    assert (await wallet(sender.id)).held == Decimal(100)


async def test_only_the_sender_finance_and_after_approval_the_recipient_see_a_transfer(personas):
    sender, recipient = await sender_and_recipient()
    t = await requested(sender, recipient)
    outsider = await new_client()
    for viewer in (outsider, recipient, personas["sales"]):
        with pytest.raises(NotFound):
            await transfer_views.get_transfer_for(principal_of(viewer), t["id"])
    assert (await transfer_views.get_transfer_for(principal_of(sender), t["id"]))["id"] == t["id"]
    finance = personas["finance"]
    await client_transfers.approve(
        principal_of(finance), t["id"], Actor("staff", str(finance.id), finance.email)
    )
    seen = await transfer_views.get_transfer_for(principal_of(recipient), t["id"])
    assert seen["incoming"] and seen["to_label"] == "Your USD wallet"
    with pytest.raises(NotFound):
        await transfer_views.get_transfer_for(principal_of(outsider), t["id"])
