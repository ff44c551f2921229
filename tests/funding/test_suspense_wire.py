"""Bank money nobody has claimed is in the ledger: a statement line left unmatched by the import is
booked Dr wire clearing / Cr suspense in the import's transaction, once; matching it by hand or
ignoring it takes it out again before anything else is booked; suspense always equals the open
lines, and the suspense reconciliation lists what does not agree (and fixes nothing)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.core import db
from app.core.live import render_template
from app.funding import deposits, ledger, reconcile, reconcile_suspense, statements
from tests.funding.deposit_support import balance
from tests.funding.wire_support import FINANCE, deposit, may_deposit, pending_wire, wire_method
from tests.personas import principal_of

pytestmark = pytest.mark.asyncio

HEADER = "Booking date;Amount;Currency;Description;Payer;Transaction ID\n"


def csv(*lines: str) -> bytes:
    return (HEADER + "".join(line + "\n" for line in lines)).encode()


async def setup(personas, *amounts: str) -> list[dict]:
    await may_deposit(personas["client_a"])
    method = await wire_method()
    return [await pending_wire(personas["client_a"], method, amount) for amount in amounts]


async def do_import(personas, data: bytes):
    return await statements.import_statement(FINANCE, principal_of(personas["finance"]), "st.csv", data)


async def line(bank_id: str) -> dict:
    row = await db.fetchrow("SELECT * FROM funding_statement_lines WHERE bank_id = $1", bank_id)
    assert row is not None
    return row


async def transaction(key: str) -> dict | None:
    return await db.fetchrow("SELECT * FROM funding_transactions WHERE idempotency_key = $1", key)


async def transaction_count() -> int:
    row = await db.fetchrow("SELECT count(*) AS n FROM funding_transactions")
    assert row is not None
    return int(row["n"])


async def agrees() -> None:
    """The ledger is balanced and suspense equals the open items, in every currency."""
    assert (await reconcile.reconcile_balances()).ok
    assert await reconcile_suspense.check_suspense() == []


async def test_an_unmatched_line_is_booked_into_suspense_and_an_auto_matched_one_is_not(personas) -> None:
    (d,) = await setup(personas, "100.00")
    data = csv(
        f"24.11.2026;100,00;EUR;{d['reference']};Anna;B-1",
        "24.11.2026;5,00;EUR;interest;Bank;B-2",
        "24.11.2026;7,50;USD;who is this;Bob;B-3",
    )
    result = await do_import(personas, data)
    assert (result.matched, result.unmatched) == (1, 2)
    assert await balance("suspense", "EUR") == Decimal("5.00")
    assert await balance("suspense", "USD") == Decimal("7.50")
    assert await balance("provider_clearing", "EUR", provider="wire") == Decimal("105.00")
    assert await balance("provider_clearing", "USD", provider="wire") == Decimal("7.50")
    matched, interest = await line("B-1"), await line("B-2")
    assert await transaction(f"wire-line-suspense:{matched['id']}") is None
    booked = await transaction(f"wire-line-suspense:{interest['id']}")
    assert booked is not None and booked["kind"] == "deposit" and "statement line" in booked["memo"]
    audit = await db.fetchrow(
        "SELECT after FROM audit_events WHERE action = 'funding.statement.imported' ORDER BY seq DESC LIMIT 1"
    )
    assert audit is not None and "in_suspense" in str(audit["after"]) and "5.00" in str(audit["after"])
    await agrees()

    before = await transaction_count()
    again = await do_import(personas, data)
    assert (again.new_lines, again.duplicates) == (0, 3)
    assert await transaction_count() == before
    assert await balance("suspense", "EUR") == Decimal("5.00")


async def test_matching_a_line_by_hand_takes_it_out_of_suspense_before_the_deposit_is_booked(
    personas,
) -> None:
    (d,) = await setup(personas, "1500.00")
    await do_import(personas, csv(f"24.11.2026;1.480,00;EUR;{d['reference']};Anna;B-1"))
    row = await line("B-1")
    assert row["status"] == "unmatched" and await balance("suspense", "EUR") == Decimal("1480.00")
    await statements.match_line(FINANCE, principal_of(personas["finance"]), row["id"], d["id"], "fee")
    unwind = await transaction(f"wire-line-unsuspense:{row['id']}")
    assert unwind is not None and unwind["kind"] == "adjustment" and d["reference"] in unwind["memo"]
    assert unwind["id"] < (await deposit(d["id"]))["transaction_id"]
    assert await balance("suspense", "EUR") == Decimal("0")
    assert await balance("client_wallet", "EUR", client_id=personas["client_a"].id) == Decimal("1480.00")
    assert await balance("provider_clearing", "EUR", provider="wire") == Decimal("1480.00")
    audit = await db.fetchrow(
        "SELECT after FROM audit_events WHERE action = 'funding.statement_line.matched' ORDER BY seq DESC LIMIT 1"
    )
    assert audit is not None and str(unwind["id"]) in str(audit["after"])
    await agrees()


async def test_ignoring_a_line_takes_it_out_of_suspense_with_the_reason(personas) -> None:
    await setup(personas)
    await do_import(personas, csv("24.11.2026;250,00;EUR;no idea;Carl;B-1", "24.11.2026;5,00;EUR;x;Y;B-2"))
    row = await line("B-1")
    await statements.ignore_line(
        FINANCE, principal_of(personas["finance"]), row["id"], "returned to the sender"
    )
    unwind = await transaction(f"wire-line-unsuspense:{row['id']}")
    assert unwind is not None and "returned to the sender" in unwind["memo"]
    assert await balance("suspense", "EUR") == Decimal("5.00")
    assert await balance("provider_clearing", "EUR", provider="wire") == Decimal("5.00")
    await agrees()


async def test_a_line_whose_automatic_matching_fails_is_booked_and_left_for_finance(
    personas, monkeypatch
) -> None:
    (d,) = await setup(personas, "100.00")

    async def broken(*args, **kwargs):
        await db.fetch("UPDATE funding_deposits SET failure_reason = 'half done' WHERE id = {}", d["id"])
        raise RuntimeError("boom")

    monkeypatch.setattr(deposits, "complete_deposit", broken)
    result = await do_import(personas, csv(f"24.11.2026;100,00;EUR;{d['reference']};Anna;B-1"))
    assert (result.new_lines, result.matched) == (1, 0)
    row = await line("B-1")
    assert row["status"] == "unmatched" and "Automatic matching failed" in row["note"]
    assert (await deposit(d["id"]))["failure_reason"] == ""  # its half-done work was rolled back
    assert await balance("suspense", "EUR") == Decimal("100.00")
    await agrees()


async def test_the_reconciliation_lists_a_line_never_booked_and_money_put_in_suspense_elsewhere(
    personas,
) -> None:
    await setup(personas)
    await do_import(personas, csv("24.11.2026;40,00;EUR;unknown;Dan;B-1"))
    await agrees()
    imp = await db.fetchrow("SELECT id FROM funding_statement_imports")
    assert imp is not None
    await db.fetch(  # a line stored behind the service's back: in the list, not in the ledger
        "INSERT INTO funding_statement_lines (import_id, line_no, booked_on, amount, currency, reference, payer, "
        "bank_id, status, note, matched_by) VALUES ({}, 9, '2026-11-24', 12.00, 'EUR', '', '', 'B-9', "
        "'unmatched', '', '')",
        imp["id"],
    )
    (diff,) = await reconcile_suspense.check_suspense()
    assert (diff["currency"], Decimal(diff["expected"]), Decimal(diff["found"])) == ("EUR", 52, 40)
    assert "1 open lines were never booked" in diff["detail"]
    assert await balance("suspense", "EUR") == Decimal("40.00")  # listed, not fixed

    usd = await ledger.system_account("suspense", "USD")
    fees = await ledger.system_account("fees", "USD")
    await ledger.transfer(
        FINANCE, "adjustment", debit=fees, credit=usd, amount=Decimal("3"), idempotency_key="x"
    )
    found = {d["currency"]: d for d in await reconcile_suspense.check_suspense()}
    assert set(found) == {"EUR", "USD"}
    assert (Decimal(found["USD"]["expected"]), Decimal(found["USD"]["found"])) == (0, 3)
    run_id = await reconcile.run_reconciliation(FINANCE)
    run = await db.fetchrow(
        "SELECT status, differences FROM funding_reconciliation_runs WHERE id = $1", run_id
    )
    assert (
        run is not None and run["status"] == "differences" and '"suspense_differs"' in str(run["differences"])
    )


async def test_mt5_corrections_held_in_suspense_are_not_taken_for_a_difference(personas) -> None:
    await setup(personas)
    await do_import(personas, csv("24.11.2026;40,00;EUR;unknown;Dan;B-1"))
    suspense = await ledger.system_account("suspense", "EUR")
    fees = await ledger.system_account("fees", "EUR")
    await ledger.post(  # as trading_books books a correction: keyed by its operation
        FINANCE, "adjustment", [(suspense, Decimal("15")), (fees, Decimal("-15"))], idempotency_key="mt5op:T1"
    )
    assert await balance("suspense", "EUR") == Decimal("25.00")
    await agrees()
    (eur,) = await reconcile_suspense.summary()
    assert (eur.ledger, eur.other, eur.wire, eur.wire_lines) == (Decimal(25), Decimal(-15), Decimal(40), 1)


async def test_the_finance_pages_show_suspense_per_currency_and_whether_it_agrees(app, personas) -> None:
    await setup(personas)
    await do_import(personas, csv("24.11.2026;40,00;EUR;unknown;Dan;B-1"))
    figures = await reconcile_suspense.summary()
    html = render_template("funding/_suspense_balances.html", suspense=figures, focus="wire")
    assert 'data-currency="EUR"' in html and "40.00" in html and "agrees" in html
    figures[0].ledger += 1
    assert "differs by 1.00" in render_template(
        "funding/_suspense_balances.html", suspense=figures, focus="chain"
    )
    assert render_template("funding/_suspense_balances.html", suspense=[], focus="wire").strip() == ""


async def test_items_open_before_suspense_was_booked_are_booked_once_by_the_backfill(
    personas, database
) -> None:
    """`fxcrm funding book-suspense` books them; run again, it books nothing."""
    import asyncio

    from app.funding import suspense_backfill
    from tests.core.test_audit import run_cli

    await setup(personas)
    await do_import(personas, csv("24.11.2026;40,00;EUR;unknown;Dan;B-1"))
    imp = await db.fetchrow("SELECT id FROM funding_statement_imports")
    assert imp is not None
    await db.fetch(
        "INSERT INTO funding_statement_lines (import_id, line_no, booked_on, amount, currency, reference, payer, "
        "bank_id, status, note, matched_by) VALUES ({}, 9, '2026-11-24', 12.00, 'EUR', '', '', 'OLD-1', "
        "'unmatched', '', '')",
        imp["id"],
    )
    await db.fetch(
        "INSERT INTO funding_chain_transactions (provider, tx_hash, address, network, currency, amount, "
        "confirmations, status, note, resolved_by, first_seen_at, updated_at) VALUES ('simchain', '0xold', "
        "'sb1qx', 'bitcoin-sim', 'BTC', 0.25, 7, 'unassigned', '', '', now(), now())"
    )
    assert len(await reconcile_suspense.check_suspense()) == 2
    done = await asyncio.to_thread(run_cli, database, "funding", "book-suspense")
    assert done.returncode == 0, done.stderr
    assert "booked to suspense: 1 statement line(s), 1 chain payment(s)" in done.stdout
    assert await balance("suspense", "EUR") == Decimal("52.00")
    assert await balance("suspense", "BTC") == Decimal("0.25")
    await agrees()
    before = await transaction_count()
    assert await suspense_backfill.book_open_items(FINANCE) == suspense_backfill.Backfilled(0, 0)
    assert await transaction_count() == before


@pytest.mark.parametrize("htmx", [False, True])
async def test_both_finance_pages_show_the_suspense_balance(client, personas, htmx) -> None:
    from tests.personas import sign_in

    await setup(personas)
    await do_import(personas, csv("24.11.2026;40,00;EUR;unknown;Dan;B-1"))
    await sign_in(client, personas["finance"])
    for url in ("/staff/funding/statements", "/staff/funding/crypto"):
        r = await client.get(url, headers={"HX-Request": "true"} if htmx else {})
        assert r.status_code == 200 and ("<html" in r.text) != htmx
        assert 'id="suspense-balances"' in r.text and 'data-currency="EUR"' in r.text and "40.00" in r.text
