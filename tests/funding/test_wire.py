"""Portal › Deposit › Bank wire: a pending deposit with our bank details and its reference, the
receipt from the phone (judged by content, encrypted, visible to its client and finance only)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from app.core import db
from app.core.errors import NotFound
from app.core.live import Event
from app.funding import deposits, providers, wire
from app.funding.controllers.wire import wire_changed
from app.funding.providers.base import PayoutRequest
from app.kyc.documents import store
from tests.conftest import csrf_token, post_form
from tests.funding.deposit_support import card_method
from tests.funding.wire_support import (
    CLIENT,
    EXE,
    audit_actions,
    deposit,
    may_deposit,
    pdf_bytes,
    pending_wire,
    png_bytes,
    wire_method,
)
from tests.personas import principal_of, sign_in

pytestmark = pytest.mark.asyncio


async def test_the_page_offers_the_wire_methods_with_and_without_htmx(client, personas) -> None:
    await may_deposit(personas["client_a"])
    await wire_method()
    await sign_in(client, personas["client_a"])
    page = await client.get("/portal/deposit/wire")
    assert page.status_code == 200
    assert "<html" in page.text and "Bank wire" in page.text and 'name="idempotency_key"' in page.text
    fragment = await client.get("/portal/deposit/wire", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and 'id="wire-deposit"' in fragment.text


async def test_a_client_gets_a_pending_deposit_with_the_bank_details_and_reference(client, personas) -> None:
    await may_deposit(personas["client_a"])
    method = await wire_method()
    await sign_in(client, personas["client_a"])
    r = await post_form(
        client,
        "/portal/deposit/wire",
        {"method_id": method["id"], "amount": "1500.00", "currency": "EUR", "idempotency_key": "k1"},
    )
    assert r.status_code == 303
    deposit_id = int(r.headers["location"].rsplit("/", 1)[1])
    row = await deposit(deposit_id)
    assert row["status"] == "pending" and row["kind"] == "wire" and row["amount"] == Decimal("1500.00")
    page = await client.get(f"/portal/deposit/wire/{deposit_id}")
    assert row["reference"] in page.text
    assert "GB33BUKB20201555555555" in page.text and "BUKBGB22" in page.text
    assert "FX CRM Markets Ltd (client money)" in page.text
    assert "funding.deposit.created" in await audit_actions()


async def test_a_double_clicked_form_creates_one_deposit(client, personas) -> None:
    await may_deposit(personas["client_a"])
    method = await wire_method()
    await sign_in(client, personas["client_a"])
    form = {"method_id": method["id"], "amount": "100", "currency": "EUR", "idempotency_key": "same"}
    first = await post_form(client, "/portal/deposit/wire", form, htmx=True)
    again = await post_form(client, "/portal/deposit/wire", form, htmx=True)
    assert first.headers["HX-Redirect"] == again.headers["HX-Redirect"]
    count = await db.fetchrow("SELECT count(*) AS n FROM funding_deposits")
    assert count is not None and count["n"] == 1


async def test_bad_amounts_are_refused_with_a_message_beside_the_field(client, personas) -> None:
    await may_deposit(personas["client_a"])
    method = await wire_method()
    await sign_in(client, personas["client_a"])
    for amount, words in (
        ("-5", "positive"),
        ("0", "zero"),
        ("10.001", "decimals"),
        ("abc", "number"),
        ("5", "minimum"),
    ):
        r = await post_form(
            client,
            "/portal/deposit/wire",
            {"method_id": method["id"], "amount": amount, "currency": "EUR"},
            htmx=True,
        )
        assert r.status_code == 422, amount
        assert words in r.text, (amount, r.text[:300])
        assert "<html" not in r.text
    wrong = await post_form(
        client, "/portal/deposit/wire", {"method_id": method["id"], "amount": "50", "currency": "GBP"}
    )
    assert wrong.status_code == 422 and "GBP" in wrong.text and "<html" in wrong.text


async def test_a_client_without_the_deposit_right_is_told_why(client, personas) -> None:
    method = await wire_method()
    await sign_in(client, personas["client_a"])  # level 0: no deposits
    r = await post_form(
        client, "/portal/deposit/wire", {"method_id": method["id"], "amount": "50", "currency": "EUR"}
    )
    assert r.status_code in (403, 422)
    assert (await db.fetchrow("SELECT count(*) AS n FROM funding_deposits"))["n"] == 0


@pytest.mark.parametrize("htmx", [False, True])
async def test_the_receipt_upload_stores_it_encrypted_and_finance_can_open_it(client, personas, htmx) -> None:
    await may_deposit(personas["client_a"])
    row = await pending_wire(personas["client_a"], await wire_method())
    await sign_in(client, personas["client_a"])
    page = f"/portal/deposit/wire/{row['id']}"
    token = await csrf_token(client, page)
    r = await client.post(
        f"{page}/receipt",
        data={"_csrf_token": token},
        files={"file": ("receipt.png", png_bytes(), "image/png")},
        headers={"HX-Request": "true"} if htmx else {},
    )
    if htmx:
        assert r.status_code == 200 and "<html" not in r.text and "Receipt received" in r.text
    else:
        assert r.status_code == 303 and r.headers["location"].endswith("?uploaded=1")
    stored = (await deposit(row["id"]))["receipt_path"]
    assert re.fullmatch(r"[0-9a-f]{32}", stored)
    raw = (store().root / stored[:2] / stored).read_bytes()
    assert raw.startswith(b"FXD1") and b"PNG" not in raw[:64]  # encrypted at rest
    mine = await client.get(f"{page}/receipt")
    assert mine.status_code == 200 and mine.headers["content-type"] == "image/png"
    assert mine.content.startswith(b"\x89PNG")
    await sign_in(client, personas["finance"])
    seen = await client.get(f"/staff/funding/wire/{row['id']}/receipt")
    assert seen.status_code == 200 and seen.content.startswith(b"\x89PNG")
    assert "funding.deposit.receipt_uploaded" in await audit_actions()
    assert "funding.deposit.receipt_viewed" in await audit_actions()


async def test_a_pdf_receipt_is_accepted(client, personas) -> None:
    await may_deposit(personas["client_a"])
    row = await pending_wire(personas["client_a"], await wire_method())
    await sign_in(client, personas["client_a"])
    page = f"/portal/deposit/wire/{row['id']}"
    r = await client.post(
        f"{page}/receipt",
        data={"_csrf_token": await csrf_token(client, page)},
        files={"file": ("scan.pdf", pdf_bytes(), "application/pdf")},
    )
    assert r.status_code == 303
    got = await client.get(f"{page}/receipt")
    assert got.headers["content-type"] == "application/pdf" and got.content.startswith(b"%PDF-")


async def test_a_renamed_executable_is_refused_and_nothing_is_stored(client, personas) -> None:
    await may_deposit(personas["client_a"])
    row = await pending_wire(personas["client_a"], await wire_method())
    await sign_in(client, personas["client_a"])
    page = f"/portal/deposit/wire/{row['id']}"
    for headers in ({}, {"HX-Request": "true"}):
        r = await client.post(
            f"{page}/receipt",
            data={"_csrf_token": await csrf_token(client, page)},
            files={"file": ("receipt.pdf", EXE, "application/pdf")},
            headers=headers,
        )
        assert r.status_code == 422
        assert "not a JPEG, PNG, WebP image or a PDF" in r.text
        assert ("<html" in r.text) == (not headers)
    assert (await deposit(row["id"]))["receipt_path"] == ""
    assert (await client.get(f"{page}/receipt")).status_code == 404


async def test_another_client_cannot_see_the_deposit_or_its_receipt(client, personas) -> None:
    await may_deposit(personas["client_a"], personas["client_b"])
    row = await pending_wire(personas["client_a"], await wire_method())
    await wire.upload_receipt(CLIENT, principal_of(personas["client_a"]), row["id"], png_bytes())
    await sign_in(client, personas["client_b"])
    assert (await client.get(f"/portal/deposit/wire/{row['id']}")).status_code == 404
    assert (await client.get(f"/portal/deposit/wire/{row['id']}/receipt")).status_code == 404
    token = await csrf_token(client, "/portal/deposit/wire")
    r = await client.post(
        f"/portal/deposit/wire/{row['id']}/receipt",
        data={"_csrf_token": token},
        files={"file": ("x.png", png_bytes(), "image/png")},
    )
    assert r.status_code == 404
    await sign_in(client, personas["sales"])  # staff outside finance
    assert (await client.get(f"/staff/funding/wire/{row['id']}/receipt")).status_code in (403, 404)
    with pytest.raises(NotFound):  # the service refuses them too, whatever route asks
        await wire.receipt_for(principal_of(personas["sales"]), row["id"], CLIENT)
    await sign_in(client, personas["outsider"])
    assert (await client.get(f"/portal/deposit/wire/{row['id']}/receipt")).status_code in (302, 303, 401)


async def test_the_wire_list_holds_only_the_clients_own_wire_deposits(personas) -> None:
    await may_deposit(personas["client_a"], personas["client_b"])
    method = await wire_method()
    mine = await pending_wire(personas["client_a"], method)
    await pending_wire(personas["client_b"], method)
    card = await deposits.create_deposit(
        CLIENT, personas["client_a"].id, (await card_method())["id"], Decimal("50.00"), "USD"
    )
    listed = await wire.wire_deposits_of(personas["client_a"].id)
    assert [d["id"] for d in listed] == [mine["id"]] and listed[0]["method_name"] == "Bank wire"
    assert card["id"] in [d["id"] for d in await deposits.deposits_for_client(personas["client_a"].id)]


async def test_the_wire_provider_gives_instructions_and_leaves_payouts_pending(database) -> None:
    provider = providers.get("wire")
    start = await provider.start_payment(
        reference="DTEST1234", amount=Decimal("10"), currency="EUR", return_url="", customer={}
    )
    assert (
        start.instructions["iban"] == "GB33BUKB20201555555555"
        and start.instructions["reference"] == "DTEST1234"
    )
    result = await provider.payout(PayoutRequest("withdrawal:1", Decimal("5"), "EUR", {"iban": "DE00"}))
    again = await provider.payout(PayoutRequest("withdrawal:1", Decimal("5"), "EUR", {"iban": "DE00"}))
    assert result.status == again.status == "pending" and result.payout_id == again.payout_id


async def test_the_wire_page_follows_the_deposit_live_for_its_client_only(client, personas) -> None:
    await may_deposit(personas["client_a"])
    row = await pending_wire(personas["client_a"], await wire_method())
    event = Event(topic=f"client:{row['client_id']}", type="funding.deposit", ids={"deposit_id": row["id"]})
    html = await wire_changed(principal_of(personas["client_a"]), event)
    assert html is not None and f'id="wire-{row["id"]}"' in html and 'id="wire-state"' in html
    assert html.count("hx-swap-oob") == 2 and "pending" in html
    assert await wire_changed(principal_of(personas["client_b"]), event) is None
    assert await wire_changed(principal_of(personas["finance"]), event) is None


async def test_the_wire_page_is_a_fragment_for_htmx(client, personas) -> None:
    await may_deposit(personas["client_a"])
    row = await pending_wire(personas["client_a"], await wire_method())
    await sign_in(client, personas["client_a"])
    fragment = await client.get(f"/portal/deposit/wire/{row['id']}", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and row["reference"] in fragment.text


@pytest.mark.parametrize("htmx", [False, True])
async def test_finance_sees_the_waiting_wires_with_their_receipts(client, personas, htmx) -> None:
    await may_deposit(personas["client_a"])
    method = await wire_method()
    with_receipt = await pending_wire(personas["client_a"], method, "100.00")
    without = await pending_wire(personas["client_a"], method, "200.00")
    await wire.upload_receipt(CLIENT, principal_of(personas["client_a"]), with_receipt["id"], png_bytes())
    await sign_in(client, personas["finance"])
    r = await client.get("/staff/funding/wire", headers={"HX-Request": "true"} if htmx else {})
    assert r.status_code == 200 and ("<html" in r.text) != htmx
    assert with_receipt["reference"] in r.text and without["reference"] in r.text
    assert f"/staff/funding/wire/{with_receipt['id']}/receipt" in r.text
    assert f"/staff/funding/wire/{without['id']}/receipt" not in r.text
    found = await client.get(f"/staff/funding/wire?q={without['reference']}")
    assert without["reference"] in found.text and with_receipt["reference"] not in found.text
    await sign_in(client, personas["sales"])
    assert (await client.get("/staff/funding/wire")).status_code == 403


async def test_a_reused_form_key_with_other_values_is_refused_visibly(client, personas) -> None:
    await may_deposit(personas["client_a"])
    method = await wire_method()
    await sign_in(client, personas["client_a"])
    form = {"method_id": method["id"], "amount": "100", "currency": "EUR", "idempotency_key": "k-reused"}
    assert (await post_form(client, "/portal/deposit/wire", form)).status_code == 303
    r = await post_form(client, "/portal/deposit/wire", {**form, "amount": "200"}, htmx=True)
    assert r.status_code == 422 and "already submitted" in r.text
