"""Chain money nobody could be credited with is in the ledger once confirmed: Dr the chain provider's
clearing / Cr suspense, once per chain transaction; assigning it to a client or resolving it takes
it out again in the decision's transaction, and suspense always equals the unassigned confirmed
payments. The feed is applied item by item here (`crypto.ingest`), without the chain simulator."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.core import db
from app.funding import crypto, crypto_suspense, reconcile, reconcile_suspense
from app.funding.providers.simchain import ChainItem
from tests.funding.deposit_support import balance
from tests.funding.wire_support import FINANCE, crypto_method, may_deposit
from tests.personas import principal_of

pytestmark = pytest.mark.asyncio

PROVIDER = "simchain"
NEEDED = 3


def item(
    confirmations: int, amount: str = "0.1", currency: str = "BTC", status: str = "confirmed"
) -> ChainItem:
    return ChainItem(
        "0xfeed01", "sb1qnobodyhasthis", Decimal(amount), currency, "bitcoin-sim", confirmations, status
    )


async def feed(*items: ChainItem) -> list[str]:
    return [await crypto.ingest(FINANCE, i, PROVIDER, NEEDED) for i in items]


async def chain_tx() -> dict:
    row = await db.fetchrow("SELECT * FROM funding_chain_transactions")
    assert row is not None
    return row


async def transaction(key: str) -> dict | None:
    return await db.fetchrow("SELECT * FROM funding_transactions WHERE idempotency_key = $1", key)


async def transaction_count() -> int:
    row = await db.fetchrow("SELECT count(*) AS n FROM funding_transactions")
    assert row is not None
    return int(row["n"])


async def agrees() -> None:
    assert (await reconcile.reconcile_balances()).ok
    assert await reconcile_suspense.check_suspense() == []


async def test_a_payment_to_an_unknown_address_enters_suspense_once_confirmed_and_only_once(database) -> None:
    assert await feed(item(1), item(2)) == ["unassigned", "unchanged"]
    assert await transaction_count() == 0
    await agrees()
    assert await feed(item(3)) == ["unchanged"]
    row = await chain_tx()
    booked = await transaction(f"chain-suspense:{row['id']}")
    assert booked is not None and booked["kind"] == "deposit" and booked["reference"] == "0xfeed01"
    assert await balance("suspense", "BTC") == Decimal("0.1")
    assert await balance("provider_clearing", "BTC", provider=PROVIDER) == Decimal("0.1")
    await feed(item(4), item(5))
    assert await transaction_count() == 1
    await agrees()


async def test_assigning_takes_the_money_out_of_suspense_and_credits_the_client(personas) -> None:
    await may_deposit(personas["client_b"])
    await crypto_method()
    assert await feed(item(3, "0.4")) == ["unassigned"]
    row = await chain_tx()
    assert await balance("suspense", "BTC") == Decimal("0.4")
    await crypto_suspense.assign(
        FINANCE, principal_of(personas["finance"]), row["id"], personas["client_b"].id, "ticket 42"
    )
    unwind = await transaction(f"chain-unsuspense:{row['id']}")
    d = await db.fetchrow("SELECT * FROM funding_deposits")
    assert unwind is not None and d is not None and d["status"] == "completed"
    assert unwind["kind"] == "adjustment" and "ticket 42" in unwind["memo"]
    assert unwind["id"] < d["transaction_id"]
    assert await balance("suspense", "BTC") == Decimal("0")
    assert await balance("client_wallet", "BTC", client_id=personas["client_b"].id) == Decimal("0.4")
    assert await balance("provider_clearing", "BTC", provider=PROVIDER) == Decimal("0.4")
    await feed(item(6, "0.4"))
    assert await balance("client_wallet", "BTC", client_id=personas["client_b"].id) == Decimal("0.4")
    await agrees()


async def test_resolving_takes_the_money_out_of_suspense_with_the_note(personas) -> None:
    await feed(item(5))
    row = await chain_tx()
    await crypto_suspense.resolve(
        FINANCE, principal_of(personas["finance"]), row["id"], "sent back to the sender"
    )
    unwind = await transaction(f"chain-unsuspense:{row['id']}")
    assert unwind is not None and "sent back to the sender" in unwind["memo"]
    assert await balance("suspense", "BTC") == Decimal("0")
    assert await balance("provider_clearing", "BTC", provider=PROVIDER) == Decimal("0")
    await feed(item(9))
    assert await balance("suspense", "BTC") == Decimal("0")
    await agrees()


async def test_money_assigned_before_it_was_confirmed_was_never_in_suspense(personas) -> None:
    await may_deposit(personas["client_a"])
    await crypto_method()
    await feed(item(1))
    row = await chain_tx()
    await crypto_suspense.assign(
        FINANCE, principal_of(personas["finance"]), row["id"], personas["client_a"].id, "theirs"
    )
    assert await transaction(f"chain-unsuspense:{row['id']}") is None
    assert await feed(item(3)) == ["completed"]
    assert await transaction(f"chain-suspense:{row['id']}") is None
    assert await balance("client_wallet", "BTC", client_id=personas["client_a"].id) == Decimal("0.1")
    await agrees()


async def test_a_reorg_after_booking_leaves_it_in_suspense_and_a_drop_is_flagged(personas) -> None:
    await feed(item(3))
    await feed(item(1))
    assert await balance("suspense", "BTC") == Decimal("0.1")
    await agrees()
    await feed(item(0, status="dropped"))
    row = await chain_tx()
    assert row["status"] == "unassigned" and "dropped this transaction after it was booked" in row["note"]
    await crypto_suspense.resolve(FINANCE, principal_of(personas["finance"]), row["id"], "re-organised away")
    assert await balance("suspense", "BTC") == Decimal("0")
    await agrees()


async def test_decimals_beyond_the_ledgers_precision_stay_out_of_the_books(database) -> None:
    await feed(item(3, "1.1234567", "USDT"))
    row = await chain_tx()
    booked = await transaction(f"chain-suspense:{row['id']}")
    assert booked is not None and "0.0000007 USDT below the ledger's precision" in booked["memo"]
    assert await balance("suspense", "USDT") == Decimal("1.123456")
    await agrees()


async def test_the_reconciliation_lists_a_confirmed_payment_missing_from_suspense(database) -> None:
    await feed(item(3))
    await db.fetch(  # recorded behind the feed's back: in the list, not in the ledger
        "INSERT INTO funding_chain_transactions (provider, tx_hash, address, network, currency, amount, "
        "confirmations, status, note, resolved_by, first_seen_at, updated_at) VALUES ('simchain', '0xplanted', "
        "'sb1qx', 'bitcoin-sim', 'BTC', 0.25, 7, 'unassigned', '', '', now(), now())"
    )
    planted = await db.fetchrow("SELECT id FROM funding_chain_transactions WHERE tx_hash = '0xplanted'")
    assert planted is not None
    (diff,) = await reconcile_suspense.check_suspense()
    assert (diff["currency"], Decimal(diff["expected"]), Decimal(diff["found"])) == (
        "BTC",
        Decimal("0.35"),
        Decimal("0.1"),
    )
    assert f"never booked to suspense: {planted['id']}" in diff["detail"]
    assert await balance("suspense", "BTC") == Decimal("0.1")  # listed, not fixed
