"""Withdraw on behalf: finance creates a client's withdrawal from the console, through the client's
own pre-checks and hold, with a note kept in the audit; the creator may never approve it; only
finance and admin may, and the funding panel offers it only to them."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from app.core import db
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.funding import approvals, staff_actions
from app.funding.withdrawals import WithdrawalRefused
from tests.conftest import csrf_token
from tests.funding.withdraw_support import (
    actor_of,
    card_deposit,
    funded_client,
    install_provider,
    officer,
    wallet_of,
)
from tests.personas import principal_of, sign_in

HX = {"HX-Request": "true"}
CARD = "card:tok_4242"
NOTE = "client phoned, verified by call-back"


def form(**changes: str) -> dict[str, str]:
    return {"source": "wallet:USD", "amount": "100", "destination": CARD, "note": NOTE, **changes}


async def count_withdrawals(client_id: int) -> int:
    row = await db.fetchrow("SELECT count(*) AS n FROM funding_withdrawals WHERE client_id = $1", client_id)
    assert row is not None
    return int(row["n"])


@pytest.fixture
async def provider(database):
    return install_provider()


# --- the service --------------------------------------------------------------------------------


async def test_finance_creates_a_withdrawal_for_the_client_held_and_audited_with_the_note(provider):
    client = await funded_client(Decimal("500"))
    creator = await officer()
    w = await staff_actions.withdraw_on_behalf(creator, client.id, form(), actor_of(creator))
    assert (w["status"], w["amount"], w["client_id"]) == ("requested", Decimal("100"), client.id)
    assert (w["requester_kind"], w["requester_id"]) == ("staff", creator.id)
    assert await wallet_of(client.id) == {"available": Decimal("400"), "held": Decimal("100")}
    row = await db.fetchrow(
        "SELECT actor_label, after::text AS after FROM audit_events WHERE action = 'funding.withdrawal.requested' "
        "AND subject_id = $1",
        str(w["id"]),
    )
    assert row is not None and row["actor_label"] == creator.email
    on_behalf = json.loads(row["after"])["on_behalf"]
    assert on_behalf == {"staff": creator.name, "staff_id": creator.id, "note": NOTE}


async def test_the_staff_member_who_created_it_may_not_approve_it_and_another_officer_may(provider):
    client = await funded_client()
    creator = await officer()
    w = await staff_actions.withdraw_on_behalf(creator, client.id, form(amount="50"), actor_of(creator))
    with pytest.raises(FormErrors, match="You created this withdrawal"):
        await approvals.approve(creator, w["id"], actor_of(creator))
    other = await officer()
    assert (await approvals.approve(other, w["id"], actor_of(other)))["status"] == "approved"


async def test_a_missing_note_or_source_is_refused_field_by_field_and_nothing_is_created(provider):
    client = await funded_client()
    creator = await officer()
    with pytest.raises(FormErrors) as refused:
        await staff_actions.withdraw_on_behalf(
            creator, client.id, form(note="  ", source="wallet:EUR"), actor_of(creator)
        )
    assert "call-back" in refused.value.errors["note"]
    assert "Choose the wallet" in refused.value.errors["source"]
    assert await count_withdrawals(client.id) == 0


async def test_the_clients_own_prechecks_refuse_it(provider):
    client = await funded_client(Decimal("50"))
    creator = await officer()
    with pytest.raises(WithdrawalRefused, match="more than that"):
        await staff_actions.withdraw_on_behalf(creator, client.id, form(amount="60"), actor_of(creator))
    assert await count_withdrawals(client.id) == 0


async def test_other_desks_may_not_withdraw_on_behalf_and_an_unknown_client_is_not_found(provider):
    client = await funded_client()
    for role in ("sales", "dealing", "compliance"):
        someone = Principal("staff", 99, f"{role}@staff.test", role.title(), 0, True, True, frozenset([role]))
        with pytest.raises(PermissionError):
            await staff_actions.withdraw_on_behalf(someone, client.id, form(), actor_of(someone))
        with pytest.raises(PermissionError):
            await staff_actions.withdraw_form(someone, client.id, {})
    assert await count_withdrawals(client.id) == 0
    with pytest.raises(NotFound):
        await staff_actions.withdraw_form(await officer(), 987654, {})


# --- the pages ----------------------------------------------------------------------------------


@pytest.fixture
async def cast(personas, provider):
    a = personas["client_a"]
    await db.fetchrow(
        "INSERT INTO kyc_profiles (client, entity_type, level, nationality, address, source_of_funds, updated_at) "
        "VALUES ($1, 'individual', 2, '', '', '', now())",
        a.id,
    )
    await card_deposit(a.id, Decimal("900"))
    return personas


async def test_finance_opens_the_form_with_its_prechecks_with_and_without_htmx(client, cast):
    a = cast["client_a"]
    await sign_in(client, cast["finance"])
    url = f"/staff/clients/{a.id}/funding/withdraw"
    page = await client.get(url)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert 'value="wallet:USD"' in page.text and 'value="card:tok_4242"' in page.text
    fragment = await client.get(url, headers=HX)
    assert fragment.text.lstrip().startswith('<div class="card" id="withdraw-form"')
    checks = await client.get(f"{url}/checks?source=wallet:USD&amount=5000&destination={CARD}", headers=HX)
    assert checks.text.lstrip().startswith('<div id="withdraw-live"')
    assert 'data-check="balance"' in checks.text and "more than that" in checks.text
    assert 'id="withdraw-submit" disabled' in checks.text
    without = await client.get(f"{url}/checks?source=wallet:USD&amount=10&destination={CARD}")
    assert "<html" in without.text.lower() and 'id="withdraw-submit" disabled' not in without.text


async def test_submitting_creates_it_and_leads_to_the_approval_screen_where_its_creator_is_refused(
    client, cast
):
    a = cast["client_a"]
    await sign_in(client, cast["finance"])
    url = f"/staff/clients/{a.id}/funding/withdraw"
    token = await csrf_token(client, url)
    plain = await client.post(url, data={**form(amount="40"), "_csrf_token": token})
    assert plain.status_code == 303 and plain.headers["location"].startswith("/staff/funding/withdrawals/")
    r = await client.post(url, data={**form(), "_csrf_token": token}, headers=HX)
    target = r.headers.get("HX-Redirect", "")
    assert r.status_code == 200 and target.startswith("/staff/funding/withdrawals/")
    screen = await client.get(target)
    assert "You created this withdrawal" in screen.text and "(staff)" in screen.text
    assert "Withdrawal created for the client" in screen.text
    wid = int(target.split("/")[-1].split("?")[0])
    refused = await client.post(f"/staff/funding/withdrawals/{wid}/approve", data={"_csrf_token": token})
    assert refused.status_code == 422 and "You created this withdrawal" in refused.text
    admin = principal_of(cast["admin"])
    assert (await approvals.approve(admin, wid, actor_of(admin)))["status"] == "approved"
    assert await count_withdrawals(a.id) == 2


async def test_bad_input_re_renders_the_form_with_the_message_and_the_input_kept(client, cast):
    a = cast["client_a"]
    await sign_in(client, cast["finance"])
    url = f"/staff/clients/{a.id}/funding/withdraw"
    token = await csrf_token(client, url)
    for htmx in (True, False):
        r = await client.post(
            url, data={**form(amount="12.5", note=""), "_csrf_token": token}, headers=HX if htmx else {}
        )
        assert r.status_code == 422
        assert ("<html" in r.text.lower()) is not htmx
        assert "how the client&#39;s request was verified" in r.text and 'value="12.5"' in r.text
    too_much = await client.post(url, data={**form(amount="1000000"), "_csrf_token": token}, headers=HX)
    assert too_much.status_code == 422 and "more than that" in too_much.text and NOTE in too_much.text
    assert await count_withdrawals(a.id) == 0


async def test_other_desks_and_clients_are_refused_the_form(client, cast):
    a = cast["client_a"]
    url = f"/staff/clients/{a.id}/funding/withdraw"
    for persona in ("sales", "dealing", "compliance", "client_a"):
        await sign_in(client, cast[persona])
        assert (await client.get(url)).status_code == 403, persona
        token = await csrf_token(client, "/portal/login")
        assert (await client.post(url, data={**form(), "_csrf_token": token})).status_code == 403, persona
    assert await count_withdrawals(a.id) == 0


async def test_the_funding_panel_offers_the_action_to_finance_only(client, cast):
    a = cast["client_a"]
    panel = await client_page_panel(client, cast["finance"], a.id)
    assert f'hx-get="/staff/clients/{a.id}/funding/actions"' in panel
    url = f"/staff/clients/{a.id}/funding/actions"
    fragment = await client.get(url, headers=HX)
    assert (
        fragment.text.lstrip().startswith('<div id="funding-actions"')
        and "Withdraw on behalf" in fragment.text
    )
    page = await client.get(url)
    assert "<html" in page.text.lower() and f"/staff/clients/{a.id}/funding/withdraw" in page.text
    await sign_in(client, cast["dealing"])
    nothing = await client.get(url, headers=HX)
    assert nothing.status_code == 200 and "Withdraw on behalf" not in nothing.text
    await sign_in(client, cast["sales"])
    assert (await client.get(url, headers=HX)).status_code == 403


async def client_page_panel(client, persona, client_id: int) -> str:
    await sign_in(client, persona)
    r = await client.get(f"/staff/clients/{client_id}/funding", headers=HX)
    assert r.status_code == 200
    return r.text
