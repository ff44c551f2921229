"""Funding › Payment methods: finance configures how clients deposit; clients are offered the
methods their country and KYC level allow, with the broker's and the provider's fees apart."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from app.core import db
from app.core.tables import AuditEvent
from app.funding import payment_methods
from app.funding.payment_methods import fees_for, methods_for_client, parse
from app.funding.tables import PaymentMethod
from tests.conftest import post_form
from tests.personas import principal_of, sign_in


def method_form(**overrides: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "name": "Visa / Mastercard",
        "kind": "card",
        "provider": "simcard",
        "currencies": "usd, eur",
        "min_amount": "10",
        "max_amount": "5000.00",
        "broker_fee_percent": "1.5",
        "broker_fee_fixed": "0",
        "provider_fee_percent": "2.9",
        "provider_fee_fixed": "0.30",
        "withdrawals_allowed": "on",
        "countries": "de, fr",
        "kyc_level": "1",
        "active": "on",
        "sort_order": "10",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def test_a_good_form_parses_to_exact_decimals():
    values, errors = parse(method_form())
    assert errors == {}
    assert values["currencies"] == "USD,EUR" and values["countries"] == "DE,FR"
    assert values["max_amount"] == Decimal("5000.00") and isinstance(values["provider_fee_fixed"], Decimal)
    assert (values["kyc_level"], values["withdrawals_allowed"], values["active"]) == (1, True, True)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"currencies": "USD,XYZ"}, "currencies", "Unknown currency XYZ"),
        ({"currencies": ""}, "currencies", "List at least one currency"),
        ({"currencies": "USD,usd"}, "currencies", "Each currency once"),
        (
            {"min_amount": "600", "max_amount": "500"},
            "max_amount",
            "The maximum (500) is below the minimum (600).",
        ),
        ({"broker_fee_fixed": "-1"}, "broker_fee_fixed", "The broker's fixed fee must not be negative."),
        (
            {"provider_fee_percent": "-0.5"},
            "provider_fee_percent",
            "The provider's percent must not be negative.",
        ),
        ({"min_amount": "10.005"}, "min_amount", "The minimum is in USD, which has at most 2 decimals"),
        ({"currencies": "JPY", "provider_fee_fixed": "0.3"}, "provider_fee_fixed", "which has whole units"),
        ({"countries": "DE,XX"}, "countries", "Unknown country code XX"),
        ({"countries": "DEU"}, "countries", "Unknown country code DEU"),
        ({"broker_fee_percent": "100"}, "broker_fee_percent", "The broker's percent must be below 100."),
        ({"provider_fee_percent": "120"}, "provider_fee_percent", "must be below 100"),
        ({"broker_fee_percent": "1.23456"}, "broker_fee_percent", "At most 4 decimals in a percent"),
        ({"min_amount": "1e3"}, "min_amount", "Write the minimum as a number"),
        ({"max_amount": "5,000"}, "max_amount", "Write the maximum as a number"),
        ({"min_amount": "0"}, "min_amount", "must be above zero"),
        ({"min_amount": "0.30"}, "min_amount", "eaten by the fixed fees"),
        ({"kind": "cash"}, "kind", "Choose the kind"),
        ({"provider": "Sim Card"}, "provider", "The provider key"),
        ({"kyc_level": "-1"}, "kyc_level", "Choose the KYC level"),
        ({"sort_order": "first"}, "sort_order", "a whole number"),
        ({"name": ""}, "name", "Give the method a name"),
    ],
)
def test_each_mistake_is_refused_beside_its_field(overrides, field, message):
    _, errors = parse(method_form(**overrides))
    assert message in errors.get(field, ""), errors


def card(**overrides) -> dict:
    method = {
        "currencies": "USD,EUR",
        "broker_fee_percent": Decimal("1.5"),
        "broker_fee_fixed": Decimal("0"),
        "provider_fee_percent": Decimal("2.9"),
        "provider_fee_fixed": Decimal("0.30"),
    }
    return {**method, **overrides}


def test_fees_are_computed_apart_and_rounded_half_up_to_the_currency():
    fees = fees_for(card(), Decimal("100.00"))
    assert fees == {
        "broker_fee": Decimal("1.50"),
        "provider_fee": Decimal("3.20"),
        "total_fee": Decimal("4.70"),
        "net_credit": Decimal("95.30"),
    }
    # 33.33 × 1.5 % = 0.49995 → 0.50; 33.33 × 2.9 % + 0.30 = 1.26657 → 1.27
    fees = fees_for(card(), Decimal("33.33"))
    assert (fees["broker_fee"], fees["provider_fee"], fees["net_credit"]) == (
        Decimal("0.50"),
        Decimal("1.27"),
        Decimal("31.56"),
    )
    assert str(fees["total_fee"]) == "1.77"


def test_fees_follow_the_methods_currency_and_refuse_floats():
    yen = card(currencies="JPY", broker_fee_percent=Decimal("1.5"), provider_fee_fixed=Decimal("30"))
    assert fees_for(yen, Decimal(1001)) == {
        "broker_fee": Decimal(15),
        "provider_fee": Decimal(59),
        "total_fee": Decimal(74),
        "net_credit": Decimal(927),
    }
    btc = card(currencies="BTC", broker_fee_percent=Decimal("0.1"), provider_fee_fixed=Decimal(0))
    assert str(fees_for(btc, Decimal("0.12345678"))["broker_fee"]) == "0.00012346"
    with pytest.raises(TypeError):
        fees_for(card(), 100.0)  # type: ignore[arg-type]


async def test_finance_adds_a_method_and_it_is_audited(client, personas):
    await sign_in(client, personas["finance"])
    r = await post_form(
        client, "/staff/funding/methods/new", method_form(), page="/staff/funding/methods/new"
    )
    assert r.status_code == 303 and r.headers["location"].endswith("?saved=1")
    row = await PaymentMethod.select().first()
    assert (row["currencies"], row["min_amount"], row["provider_fee_fixed"], row["countries"]) == (
        "USD,EUR",
        Decimal("10"),
        Decimal("0.30"),
        "DE,FR",
    )
    page = await client.get(r.headers["location"])
    assert "Saved." in page.text and 'value="0.30"' in page.text
    listing = await client.get("/staff/funding")
    assert listing.status_code == 200 and "Visa / Mastercard" in listing.text
    assert "1.5% + 0 USD" in listing.text and "2.9% + 0.30 USD" in listing.text  # broker's, provider's
    assert "1 · Identity verified" in listing.text
    [created] = await AuditEvent.select().where(AuditEvent.action == "funding.payment_method_created")
    after = json.loads(created["after"])
    assert after["provider_fee_fixed"] == "0.30" and after["countries"] == "DE,FR"
    assert created["subject_id"] == str(row["id"])


async def test_an_edit_is_audited_with_only_what_changed(client, personas):
    await sign_in(client, personas["finance"])
    r = await post_form(
        client, "/staff/funding/methods/new", method_form(), page="/staff/funding/methods/new"
    )
    url = r.headers["location"].split("?")[0]
    r = await post_form(client, url, method_form(max_amount="2500", active=None))
    assert r.status_code == 303
    row = await PaymentMethod.select().first()
    assert (row["max_amount"], row["active"]) == (Decimal("2500"), False)
    [updated] = await AuditEvent.select().where(AuditEvent.action == "funding.payment_method_updated")
    assert json.loads(updated["before"]) == {"max_amount": "5000.00", "active": True}
    assert json.loads(updated["after"]) == {"max_amount": "2500", "active": False}
    r = await post_form(client, url, method_form(max_amount="2500", active=None))
    assert await AuditEvent.count().where(AuditEvent.action == "funding.payment_method_updated") == 1


async def test_a_refused_form_keeps_the_input_and_saves_nothing(client, personas):
    await sign_in(client, personas["finance"])
    r = await post_form(
        client,
        "/staff/funding/methods/new",
        method_form(currencies="USD,XYZ", countries="ZZ"),
        page="/staff/funding/methods/new",
    )
    assert r.status_code == 422
    assert "Unknown currency XYZ" in r.text and "Unknown country code ZZ" in r.text
    assert 'value="USD,XYZ"' in r.text and "<html" in r.text
    assert await PaymentMethod.count() == 0
    assert await AuditEvent.count().where(AuditEvent.action.like("funding.payment_method%")) == 0


async def test_a_kyc_level_the_ladder_does_not_have_is_refused(client, personas):
    await sign_in(client, personas["finance"])
    r = await post_form(
        client, "/staff/funding/methods/new", method_form(kyc_level="7"), page="/staff/funding/methods/new"
    )
    assert r.status_code == 422 and "There is no KYC level 7." in r.text


async def test_with_htmx_a_refused_form_comes_back_alone_and_success_redirects(client, personas):
    await sign_in(client, personas["finance"])
    r = await post_form(
        client,
        "/staff/funding/methods/new",
        method_form(min_amount="10.005"),
        page="/staff/funding/methods/new",
        htmx=True,
    )
    assert r.status_code == 422 and "at most 2 decimals" in r.text
    assert "<html" not in r.text and 'id="method-form"' in r.text
    r = await post_form(
        client, "/staff/funding/methods/new", method_form(), page="/staff/funding/methods/new", htmx=True
    )
    assert r.status_code == 200 and r.headers["HX-Redirect"].startswith("/staff/funding/methods/")


async def test_the_list_is_a_page_or_with_htmx_only_its_table(client, personas):
    await sign_in(client, personas["admin"])
    page = await client.get("/staff/funding")
    assert page.status_code == 200 and "<html" in page.text and 'id="payment-methods"' in page.text
    assert "Add payment method" in page.text and "not in this release" not in page.text
    fragment = await client.get("/staff/funding", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'id="payment-methods"' in fragment.text and "No payment method yet" in fragment.text


@pytest.mark.parametrize("persona", ["sales", "compliance", "dealing"])
async def test_other_staff_can_neither_see_nor_change_methods(client, personas, persona):
    await sign_in(client, personas[persona])
    assert (await client.get("/staff/funding")).status_code == 403
    assert (await client.get("/staff/funding/methods/new")).status_code == 403
    token_page = await client.get("/staff/clients")
    token = token_page.text.split('name="_csrf_token" value="')[1].split('"')[0]
    r = await client.post("/staff/funding/methods/new", data={**method_form(), "_csrf_token": token})
    assert r.status_code == 403
    assert await PaymentMethod.count() == 0


async def test_clients_cannot_reach_the_console(client, personas):
    await sign_in(client, personas["client_a"])
    assert (await client.get("/staff/funding")).status_code == 403
    assert (await client.get("/staff/funding/methods/new")).status_code == 403


async def test_an_unknown_method_is_not_found(client, personas):
    await sign_in(client, personas["finance"])
    assert (await client.get("/staff/funding/methods/999999")).status_code == 404


async def test_the_service_refuses_other_roles(personas):
    with pytest.raises(PermissionError):
        await payment_methods.create(principal_of(personas["sales"]), method_form(), None)  # type: ignore[arg-type]


async def add(p, **overrides: str | None) -> int:
    return await payment_methods.create(p, method_form(**overrides), p.actor("127.0.0.1", "pytest"))


async def test_clients_are_offered_what_their_country_level_and_currency_allow(personas):
    finance = principal_of(personas["finance"])
    everywhere = await add(finance, name="Wire", kind="wire", provider="wire", countries="", kyc_level="0")
    german = await add(finance, name="Card DE", countries="DE", kyc_level="0", sort_order="1")
    french = await add(finance, name="Card FR", countries="FR", kyc_level="0")
    verified = await add(finance, name="Card verified", countries="", kyc_level="1")
    euros = await add(
        finance, name="SEPA", kind="wire", provider="wire", currencies="EUR", countries="", kyc_level="0"
    )
    await add(finance, name="Withdrawn", countries="", kyc_level="0", active=None)
    client_id = personas["client_a"].id  # lives in DE, KYC level 0

    def ids(methods):
        return {m["id"] for m in methods}

    assert ids(await methods_for_client(client_id)) == {everywhere, german, euros}
    assert ids(await methods_for_client(client_id, "usd")) == {everywhere, german}
    assert ids(await methods_for_client(client_id, "EUR")) == {everywhere, german, euros}
    assert await methods_for_client(client_id, "GBP") == []

    await db.fetch("UPDATE kyc_profiles SET level = 1 WHERE client = {}", client_id)
    assert ids(await methods_for_client(client_id, "USD")) == {everywhere, german, verified}
    await db.fetch("UPDATE clients SET country = 'FR' WHERE id = {}", client_id)
    offered = await methods_for_client(client_id, "USD")
    assert ids(offered) == {everywhere, french, verified}
    wire = next(m for m in offered if m["id"] == everywhere)
    assert wire["fees_at_min"] == {
        "broker_fee": Decimal("0.15"),
        "provider_fee": Decimal("0.59"),
        "total_fee": Decimal("0.74"),
        "net_credit": Decimal("9.26"),
    }
