"""Finance › Bank statements: importing a CSV matches wire deposits by reference and completes them
with what the bank received; re-importing adds nothing; what cannot be matched waits for finance's
manual match or ignore, each audited."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.core import db
from app.funding import statements
from app.funding.statement_csv import StatementError
from tests.conftest import csrf_token, post_form
from tests.funding.deposit_support import balance
from tests.funding.wire_support import FINANCE, audit_actions, deposit, may_deposit, pending_wire, wire_method
from tests.personas import principal_of, sign_in

pytestmark = pytest.mark.asyncio

HEADER = "Booking date;Amount;Currency;Description;Payer;Transaction ID\n"


def csv(*lines: str) -> bytes:
    return (HEADER + "".join(line + "\n" for line in lines)).encode()


def spaced(reference: str) -> str:
    """How clients type it: lower case, with a space and a dash in it."""
    return f"{reference[:3].lower()} {reference[3:6]}-{reference[6:].lower()}"


async def setup(personas, *amounts: str):
    await may_deposit(personas["client_a"], personas["client_b"])
    method = await wire_method()
    rows = [await pending_wire(personas["client_a"], method, amount) for amount in amounts]
    return method, rows


async def do_import(personas, data: bytes):
    return await statements.import_statement(FINANCE, principal_of(personas["finance"]), "st.csv", data)


async def test_a_line_quoting_the_reference_completes_the_deposit_once(personas) -> None:
    _, (d,) = await setup(personas, "1500.00")
    result = await do_import(
        personas, csv(f"24.11.2026;1.500,00;EUR;Payment {spaced(d['reference'])} thanks;Anna;B-1")
    )
    assert (result.new_lines, result.matched, result.unmatched) == (1, 1, 0)
    row = await deposit(d["id"])
    assert row["status"] == "completed" and row["credited_amount"] == Decimal("1500.00")
    assert await balance("client_wallet", "EUR", client_id=personas["client_a"].id) == Decimal("1500.00")
    line = await db.fetchrow("SELECT * FROM funding_statement_lines")
    assert (
        line is not None
        and line["status"] == "matched"
        and line["deposit_id"] == d["id"]
        and line["matched_by"] == "auto"
    )
    actions = await audit_actions()
    assert "funding.statement.imported" in actions and "funding.statement_line.matched" in actions


async def test_reimporting_the_same_statement_adds_nothing(personas) -> None:
    _, (d,) = await setup(personas, "100.00")
    data = csv(f"24.11.2026;100,00;EUR;{d['reference']};Anna;B-1", "24.11.2026;5,00;EUR;interest;Bank;B-2")
    first = await do_import(personas, data)
    again = await do_import(personas, data)
    assert (first.new_lines, first.matched) == (2, 1)
    assert (again.new_lines, again.duplicates, again.matched) == (0, 2, 0)
    assert (await db.fetchrow("SELECT count(*) AS n FROM funding_statement_lines"))["n"] == 2
    assert await balance("client_wallet", "EUR", client_id=personas["client_a"].id) == Decimal("100.00")


async def test_reimporting_a_file_without_transaction_ids_adds_nothing_either(personas) -> None:
    await setup(personas)
    data = b"date,amount,currency,reference\n2026-11-24,10.00,EUR,x\n2026-11-24,10.00,EUR,x\n"
    assert (await do_import(personas, data)).new_lines == 2
    assert (await do_import(personas, data)).new_lines == 0


async def test_an_amount_mismatch_is_left_for_finance_and_a_manual_match_credits_what_arrived(
    personas,
) -> None:
    _, (d,) = await setup(personas, "1500.00")
    result = await do_import(personas, csv(f"24.11.2026;1.480,00;EUR;{d['reference']};Anna;B-1"))
    assert (result.matched, result.unmatched) == (0, 1)
    line = await db.fetchrow("SELECT * FROM funding_statement_lines")
    assert line is not None and line["status"] == "unmatched" and "Amount differs" in line["note"]
    assert (await deposit(d["id"]))["status"] == "pending"
    await statements.match_line(
        FINANCE, principal_of(personas["finance"]), line["id"], d["id"], "bank fee deducted"
    )
    row = await deposit(d["id"])
    assert row["status"] == "completed" and row["amount"] == Decimal("1480.00")
    assert row["requested_amount"] == Decimal("1500.00")
    assert await balance("client_wallet", "EUR", client_id=personas["client_a"].id) == Decimal("1480.00")
    matched = await db.fetchrow("SELECT * FROM funding_statement_lines WHERE id = $1", line["id"])
    assert matched is not None and matched["matched_by"] == "finance@staff.test"


async def test_no_reference_or_two_deposits_fitting_are_left_unmatched_with_a_note(personas) -> None:
    _, (d1, d2) = await setup(personas, "100.00", "100.00")
    result = await do_import(
        personas,
        csv(
            "24.11.2026;100,00;EUR;no reference at all;Anna;B-1",
            f"24.11.2026;100,00;EUR;{d1['reference']} {d2['reference']};Anna;B-2",
        ),
    )
    assert result.matched == 0
    notes = {
        r["bank_id"]: r["note"] for r in await db.fetch("SELECT bank_id, note FROM funding_statement_lines")
    }
    assert "No deposit reference" in notes["B-1"] and "Several open deposits" in notes["B-2"]


async def test_a_second_payment_for_a_completed_deposit_is_not_credited_twice(personas) -> None:
    _, (d,) = await setup(personas, "100.00")
    result = await do_import(
        personas,
        csv(
            f"24.11.2026;100,00;EUR;{d['reference']};Anna;B-1",
            f"25.11.2026;100,00;EUR;{d['reference']};Anna;B-2",
        ),
    )
    assert (result.matched, result.unmatched) == (1, 1)
    line = await db.fetchrow("SELECT * FROM funding_statement_lines WHERE bank_id = 'B-2'")
    assert line is not None and "no longer open" in line["note"]
    with pytest.raises(Exception, match="already completed"):
        await statements.match_line(FINANCE, principal_of(personas["finance"]), line["id"], d["id"])
    assert await balance("client_wallet", "EUR", client_id=personas["client_a"].id) == Decimal("100.00")


async def test_a_bad_file_imports_nothing(personas) -> None:
    _, (d,) = await setup(personas, "100.00")
    with pytest.raises(StatementError) as exc:
        await do_import(
            personas, csv(f"24.11.2026;100,00;EUR;{d['reference']};Anna;B-1", "bad;1;EUR;x;y;B-2")
        )
    assert exc.value.errors[0].startswith("Line 3:")
    assert (await db.fetchrow("SELECT count(*) AS n FROM funding_statement_lines"))["n"] == 0
    assert (await deposit(d["id"]))["status"] == "pending"


async def test_ignoring_a_line_needs_a_reason_and_is_audited(personas) -> None:
    await setup(personas)
    await do_import(personas, csv("24.11.2026;5,00;EUR;interest;Bank;B-9"))
    line = await db.fetchrow("SELECT * FROM funding_statement_lines")
    assert line is not None
    with pytest.raises(Exception, match="Say why"):
        await statements.ignore_line(FINANCE, principal_of(personas["finance"]), line["id"], " ")
    await statements.ignore_line(FINANCE, principal_of(personas["finance"]), line["id"], "bank interest")
    row = await db.fetchrow("SELECT status, note FROM funding_statement_lines WHERE id = $1", line["id"])
    assert row == {"status": "ignored", "note": "bank interest"}
    assert "funding.statement_line.ignored" in await audit_actions()


async def test_only_finance_imports(personas) -> None:
    with pytest.raises(PermissionError):
        await statements.import_statement(FINANCE, principal_of(personas["sales"]), "x.csv", csv())


# --- the pages --------------------------------------------------------------------------------------


async def _upload(client, data: bytes, htmx: bool):
    token = await csrf_token(client, "/staff/funding/statements")
    return await client.post(
        "/staff/funding/statements/import",
        data={"_csrf_token": token},
        files={"file": ("statement.csv", data, "text/csv")},
        headers={"HX-Request": "true"} if htmx else {},
    )


@pytest.mark.parametrize("htmx", [False, True])
async def test_the_import_page_shows_what_was_matched_and_what_is_left(client, personas, htmx) -> None:
    _, (d,) = await setup(personas, "100.00")
    await sign_in(client, personas["finance"])
    page = await client.get("/staff/funding/statements", headers={"HX-Request": "true"} if htmx else {})
    assert page.status_code == 200 and ("<html" in page.text) != htmx
    r = await _upload(
        client, csv(f"24.11.2026;100,00;EUR;{d['reference']};Anna;B-1", "24.11.2026;7,00;EUR;??;X;B-2"), htmx
    )
    assert r.status_code == 200 and ("<html" in r.text) != htmx
    assert 'data-count="matched">1<' in r.text and 'data-count="unmatched">1<' in r.text
    bad = await _upload(client, csv("nope;1;EUR;x;y;B-3"), htmx)
    assert bad.status_code == 422 and "Nothing was imported" in bad.text and "Line 2:" in bad.text


@pytest.mark.parametrize("htmx", [False, True])
async def test_finance_matches_a_line_by_hand_on_its_page(client, personas, htmx) -> None:
    _, (d,) = await setup(personas, "100.00")
    await do_import(personas, csv(f"24.11.2026;99,00;EUR;{d['reference']};Anna;B-1"))
    line = await db.fetchrow("SELECT id FROM funding_statement_lines")
    assert line is not None
    await sign_in(client, personas["finance"])
    url = f"/staff/funding/statements/lines/{line['id']}"
    page = await client.get(url, headers={"HX-Request": "true"} if htmx else {})
    assert page.status_code == 200 and d["reference"] in page.text and ("<html" in page.text) != htmx
    missing = await post_form(client, url + "/match", {"deposit_id": ""}, page=url, htmx=htmx)
    assert missing.status_code == 422 and "Choose a deposit" in missing.text
    r = await post_form(client, url + "/match", {"deposit_id": d["id"], "note": "fee"}, page=url, htmx=htmx)
    assert r.status_code == (200 if htmx else 303)
    assert (await deposit(d["id"]))["status"] == "completed"


@pytest.mark.parametrize("htmx", [False, True])
async def test_finance_ignores_a_line_on_its_page(client, personas, htmx) -> None:
    await setup(personas)
    await do_import(personas, csv("24.11.2026;5,00;EUR;interest;Bank;B-1"))
    line = await db.fetchrow("SELECT id FROM funding_statement_lines")
    assert line is not None
    await sign_in(client, personas["finance"])
    url = f"/staff/funding/statements/lines/{line['id']}"
    empty = await post_form(client, url + "/ignore", {"reason": ""}, page=url, htmx=htmx)
    assert empty.status_code == 422 and "Say why" in empty.text
    r = await post_form(client, url + "/ignore", {"reason": "interest"}, page=url, htmx=htmx)
    assert r.status_code == (200 if htmx else 303)


async def test_statements_are_finance_only(client, personas) -> None:
    for who in ("sales", "client_a", "compliance"):
        await sign_in(client, personas[who])
        r = await client.get("/staff/funding/statements")
        assert r.status_code in (302, 303, 403, 404), who


async def test_the_wire_provider_lists_matched_lines_under_the_deposits_payment_id(personas) -> None:
    from datetime import UTC, datetime, timedelta

    from app.funding import providers

    _, (d,) = await setup(personas, "100.00")
    await do_import(personas, csv(f"24.11.2026;100,00;EUR;{d['reference']};Anna;B-1"))
    (payment,) = await providers.get("wire").list_payments(datetime.now(UTC) - timedelta(days=1))
    row = await deposit(d["id"])
    assert payment.provider_payment_id == row["provider_payment_id"] == d["reference"]
    assert (payment.status, payment.amount, payment.currency) == ("succeeded", Decimal("100.00"), "EUR")
