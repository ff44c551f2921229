"""A client's money history: deposits, withdrawals and transfers merged newest first, filtered,
paged, and shown only to the client it belongs to (and to staff who may see their money)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.core.audit import Actor
from app.core.errors import NotFound
from app.funding import deposits, history
from app.funding.history import Filters
from tests.funding.support import trading_account
from tests.funding.wallet_support import add_deposit, add_transfer, add_withdrawal, ago
from tests.personas import principal_of


async def _mixed(cast) -> dict[str, int]:
    """client_a: a deposit, a withdrawal, a transfer to an account, and transfers from client_b."""
    a, b = cast["client_a"].id, cast["client_b"].id
    account = await trading_account(a)
    return {
        "deposit": await add_deposit(a, "100.00", status="failed", at=ago(300), failure_reason="Card declined"),
        "withdrawal": await add_withdrawal(a, "40.00", status="rejected", at=ago(200), rejection_reason="Bad IBAN"),
        "to_account": await add_transfer(a, "25.00", to_account_id=account, status="done", at=ago(100)),
        "received": await add_transfer(b, "7.50", kind="client_to_client", to_client_id=a, status="done", at=ago(50)),
        "incoming_pending": await add_transfer(
            b, "9.00", kind="client_to_client", to_client_id=a, status="awaiting_approval", at=ago(10)
        ),
        "sent_by_b": await add_transfer(b, "3.00", kind="client_to_client", to_client_id=a, status="rejected", at=ago(5)),
    }  # fmt: skip


async def test_the_history_merges_every_kind_of_movement_newest_first(personas):
    ids = await _mixed(personas)
    page = await history.history_for_client(principal_of(personas["client_a"]))
    shown = [(m["kind"], m["id"]) for m in page["movements"]]
    assert shown == [
        ("transfer", ids["received"]),
        ("transfer", ids["to_account"]),
        ("withdrawal", ids["withdrawal"]),
        ("deposit", ids["deposit"]),
    ]
    received, to_account, withdrawal, deposit = page["movements"]
    assert (received["direction"], received["description"], received["sign"]) == (
        "in",
        "From Client Client_B",
        "+",
    )
    assert to_account["description"].startswith("Wallet → account 5")
    assert (withdrawal["status_label"], withdrawal["message"], withdrawal["sign"]) == (
        "Rejected",
        "Bad IBAN",
        "−",
    )
    assert (deposit["status_label"], deposit["message"]) == ("Failed", "Card declined")
    assert deposit["description"] == "Card · Visa •••• 4242"
    assert deposit["element_id"] == f"movement-deposit-{ids['deposit']}"
    assert (deposit["amount_text"], deposit["currency"]) == ("100.00", "USD")


async def test_a_recipient_sees_a_client_transfer_only_once_it_is_done(personas):
    ids = await _mixed(personas)
    a = principal_of(personas["client_a"])
    with pytest.raises(NotFound):
        await history.movement_for(a, "transfer", ids["incoming_pending"])
    received = await history.movement_for(a, "transfer", ids["received"])
    assert received["status_label"] == "Completed"


async def test_the_sender_sees_their_client_transfers_in_every_state(personas):
    ids = await _mixed(personas)
    page = await history.history_for_client(principal_of(personas["client_b"]))
    shown = {m["id"]: (m["direction"], m["status_label"]) for m in page["movements"]}
    assert shown == {
        ids["sent_by_b"]: ("out", "Rejected"),
        ids["incoming_pending"]: ("out", "Awaiting approval"),
        ids["received"]: ("out", "Completed"),
    }
    assert page["movements"][0]["description"] == "To Client Client_A"


async def test_the_history_filters_by_kind_and_by_status(personas):
    ids = await _mixed(personas)
    a = principal_of(personas["client_a"])
    transfers = await history.history_for_client(a, Filters(kind="transfer"))
    assert [m["id"] for m in transfers["movements"]] == [ids["received"], ids["to_account"]]
    failed = await history.history_for_client(a, Filters(status="failed"))
    assert [m["kind"] for m in failed["movements"]] == ["withdrawal", "deposit"]
    both = await history.history_for_client(a, Filters(kind="deposit", status="completed"))
    assert both["movements"] == []


async def test_unknown_filters_mean_everything_and_never_an_error():
    parsed = Filters.parse({"kind": "bonus'; drop", "status": "lost", "page": "-3"})
    assert parsed == Filters()
    assert Filters.parse({"kind": "deposit", "status": "pending", "page": "2"}).query(3) == (
        "kind=deposit&status=pending&page=3"
    )


async def test_the_history_pages_through_long_lists(personas):
    a = personas["client_a"].id
    made = [await add_deposit(a, f"{10 + i}.00", at=ago(100 - i)) for i in range(history.PAGE_SIZE + 3)]
    p = principal_of(personas["client_a"])
    first = await history.history_for_client(p)
    second = await history.history_for_client(p, Filters(page=2))
    assert (first["has_next"], first["has_prev"], second["has_next"], second["has_prev"]) == (
        True,
        False,
        False,
        True,
    )
    assert [m["id"] for m in first["movements"] + second["movements"]] == list(reversed(made))


async def test_a_completed_deposit_shows_what_was_credited(personas):
    a = personas["client_a"].id
    deposit_id = await add_deposit(a, "250.00")
    await deposits.complete_deposit(Actor.system("test"), deposit_id)
    row = await history.movement_for(principal_of(personas["client_a"]), "deposit", deposit_id)
    assert (row["status"], row["status_label"], row["status_group"]) == (
        "completed",
        "Completed",
        "completed",
    )
    assert row["credited_text"] == ""  # no fees, no conversion: the same amount
    wallets = await history.wallets_of(a)
    assert wallets == [
        {"currency": "USD", "available": "250.00", "held": "0.00", "total": "250.00", "has_held": False}
    ]


async def test_another_client_gets_nothing_of_someone_elses_history(personas):
    ids = await _mixed(personas)
    b = principal_of(personas["client_b"])
    for kind, key in (("deposit", "deposit"), ("withdrawal", "withdrawal"), ("transfer", "to_account")):
        with pytest.raises(NotFound):
            await history.movement_for(b, kind, ids[key])
    with pytest.raises(NotFound):
        await history.movement_for(b, "bonus", 1)
    with pytest.raises(NotFound):
        await history.movement_for(b, "deposit", 10**20)


async def test_staff_with_a_money_role_see_the_same_history_with_incoming_transfers_in_every_state(personas):
    ids = await _mixed(personas)
    a = personas["client_a"].id
    for role in ("finance", "compliance", "dealing", "admin"):
        page = await history.history_for_staff(principal_of(personas[role]), a)
        assert [m["id"] for m in page["movements"]][:2] == [ids["sent_by_b"], ids["incoming_pending"]], role
        assert len(page["movements"]) == 6
    with pytest.raises(NotFound):
        await history.history_for_staff(principal_of(personas["sales"]), a)  # sees the client, not the money
    with pytest.raises(NotFound):
        await history.history_for_staff(principal_of(personas["client_a"]), a)
    staff_row = await history.movement_for(principal_of(personas["finance"]), "withdrawal", ids["withdrawal"])
    assert staff_row["message"] == "Bad IBAN"


async def test_amounts_keep_their_currencys_digits(personas):
    a = personas["client_a"].id
    await add_deposit(a, "0.00012345", currency="BTC", kind="crypto", instrument="")
    await add_deposit(a, "1500", currency="JPY", kind="wire", instrument="")
    page = await history.history_for_client(principal_of(personas["client_a"]))
    assert [(m["amount_text"], m["description"]) for m in page["movements"]] == [
        ("1,500", "Bank wire"),
        ("0.00012345", "Crypto"),
    ]
    assert Decimal(page["movements"][1]["amount"]) == Decimal("0.00012345")
