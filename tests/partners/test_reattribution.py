"""Staff re-attribution of a client's IB: admin and compliance only, always with a reason, the old
attribution kept with its evidence, audited, on the timeline, and never closing a referral loop."""

from __future__ import annotations

import json

import pytest

from app.clients import services as client_services
from app.clients.filters import ClientFilters
from app.core import db
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.partners import reattribution
from app.partners.tables import Attribution, AttributionChange, ReferralClick
from tests.conftest import post_form
from tests.personas import make_client, make_partner, principal_of, sign_in

as_principal = principal_of  # the shared persona-to-Principal helper


@pytest.fixture
def cast(personas):
    return {name: as_principal(p) for name, p in personas.items() if p.kind != "anonymous"}


def actor(p: Principal):
    return p.actor("127.0.0.1", "pytest")


async def reattribute(p: Principal, client_id: int, code: str, reason: str) -> str:
    return await reattribution.reattribute(p, client_id, code, reason, actor(p))


async def attribution_code(client_id: int) -> str | None:
    row = await db.fetchrow(
        "SELECT p.code FROM partner_attributions a JOIN partners p ON p.id = a.partner WHERE a.client = $1",
        client_id,
    )
    return row["code"] if row else None


async def audits(client_id: int) -> list[dict]:
    rows = await db.fetch(
        "SELECT * FROM audit_events WHERE action = 'client.ib_reattributed' AND subject_id = {} ORDER BY seq",
        str(client_id),
    )
    for r in rows:
        for k in ("before", "after"):
            if isinstance(r[k], str):
                r[k] = json.loads(r[k])
    return rows


async def snapshot() -> tuple:
    return (
        await Attribution.select().order_by(Attribution.id),
        await AttributionChange.count(),
        await db.fetch("SELECT count(*) AS n FROM audit_events WHERE action = 'client.ib_reattributed'"),
        await db.fetch("SELECT count(*) AS n FROM client_timeline WHERE kind = 'ib'"),
    )


async def test_an_admin_sets_an_ib_and_the_list_filter_timeline_and_audit_follow(client, personas, cast):
    a = personas["client_a"].id
    await sign_in(client, personas["admin"])
    r = await post_form(
        client,
        f"/staff/clients/{a}/attribution",
        {"ib_code": "ibtest", "ib_reason": "Signed up at the Madrid expo stand"},
        htmx=True,
    )
    assert r.status_code == 200 and "IB set." in r.text and "<html" not in r.text.lower()
    assert "Referred by IB <strong>IBTEST</strong>" in r.text
    row = await Attribution.select().where(Attribution.client == a).first()
    assert row["partner"] == personas["ib"].partner_id and row["source"] == "staff" and row["click"] is None
    [change] = await AttributionChange.select().where(AttributionChange.client == a)
    assert change["old_partner"] is None and change["new_partner"] == personas["ib"].partner_id
    assert (
        change["changed_by"] == personas["admin"].id
        and change["reason"] == "Signed up at the Madrid expo stand"
    )
    [audit] = await audits(a)
    assert audit["before"] is None
    assert audit["after"] == {
        "partner_id": personas["ib"].partner_id,
        "partner_code": "IBTEST",
        "source": "staff",
        "reason": "Signed up at the Madrid expo stand",
    }
    [event] = await db.fetch("SELECT * FROM client_timeline WHERE client = {} AND kind = 'ib'", a)
    assert "IB set to IBTEST" in event["summary"] and "Madrid expo" in event["summary"]
    page = await client_services.list_clients_for(cast["admin"], ClientFilters(ib="IBTEST"))
    assert a in [c["id"] for c in page["clients"]]


async def test_compliance_changes_a_link_attribution_and_the_old_evidence_is_kept(personas, cast):
    a = personas["client_a"].id
    click = ReferralClick(
        partner=personas["ib"].partner_id, token="tok-1", landing_page="https://broker.example/promo"
    )
    await click.save()
    await db.fetch(
        "INSERT INTO partner_attributions (client, partner, source, click, clicked_at, landing_page, attributed_at) "
        "VALUES ({}, {}, 'link', {}, now() - interval '3 days', 'https://broker.example/promo', now())",
        a,
        personas["ib"].partner_id,
        click.id,
    )
    outcome = await reattribute(cast["compliance"], a, "IBSUBTEST", "The sub-IB met the client first")
    assert outcome == "changed" and await attribution_code(a) == "IBSUBTEST"
    [change] = await AttributionChange.select().where(AttributionChange.client == a)
    assert change["old_partner"] == personas["ib"].partner_id and change["old_source"] == "link"
    assert change["old_click"] == click.id and change["old_landing_page"] == "https://broker.example/promo"
    assert change["old_clicked_at"] is not None and change["old_attributed_at"] is not None
    [audit] = await audits(a)
    assert audit["before"]["partner_code"] == "IBTEST" and audit["before"]["source"] == "link"
    assert audit["before"]["click_id"] == click.id
    assert audit["after"]["partner_code"] == "IBSUBTEST" and audit["after"]["reason"]
    assert not (await client_services.list_clients_for(cast["admin"], ClientFilters(ib="IBTEST")))["clients"]


async def test_an_empty_code_removes_the_attribution_and_keeps_it_in_the_history(client, personas, cast):
    a = personas["client_a"].id
    await reattribute(cast["admin"], a, "IBTEST", "expo")
    await sign_in(client, personas["compliance"])
    r = await post_form(  # without htmx: a plain form post, then back to the client page
        client,
        f"/staff/clients/{a}/attribution",
        {"ib_code": "", "ib_reason": "Client says nobody referred them"},
        page=f"/staff/clients/{a}/attribution",
    )
    assert r.status_code == 303 and r.headers["location"] == f"/staff/clients/{a}"
    assert await attribution_code(a) is None
    changes = (
        await AttributionChange.select().where(AttributionChange.client == a).order_by(AttributionChange.id)
    )
    assert [c["new_partner"] for c in changes] == [personas["ib"].partner_id, None]
    assert changes[1]["old_partner"] == personas["ib"].partner_id and changes[1]["old_source"] == "staff"
    assert (await audits(a))[-1]["after"]["partner_id"] is None
    page = await client.get(f"/staff/clients/{a}/attribution", headers={"HX-Request": "true"})
    assert page.status_code == 200 and "Not referred by an IB." in page.text
    assert "IB changes (2)" in page.text and "Client says nobody referred them" in page.text
    assert "<html" not in page.text.lower()
    full = await client.get(f"/staff/clients/{a}/attribution")
    assert full.status_code == 200 and "<html" in full.text.lower() and 'id="attribution-panel"' in full.text


@pytest.mark.parametrize(
    ("code", "reason", "field", "message"),
    [
        ("IBTEST", "", "ib_reason", "Give a reason"),
        ("IBTEST", "x" * 1001, "ib_reason", "under 1000"),
        ("NOSUCH", "a reason", "ib_code", "No IB has the code NOSUCH."),
        ("", "a reason", "ib_code", "Enter the code of the IB"),
        ("X" * 25, "a reason", "ib_code", "at most 24"),
    ],
)
async def test_bad_input_is_refused_beside_its_field_and_nothing_is_written(
    client, personas, code, reason, field, message
):
    a = personas["client_a"].id
    before = await snapshot()
    await sign_in(client, personas["admin"])
    for htmx in (True, False):
        r = await post_form(
            client, f"/staff/clients/{a}/attribution", {"ib_code": code, "ib_reason": reason}, htmx=htmx
        )
        assert r.status_code == 422, r.text[:300]
        assert f'id="e-{field}"' in r.text and message in r.text
        assert ("<html" in r.text.lower()) is not htmx
        if code and len(code) <= 24:
            assert f'value="{code}"' in r.text  # the input is kept
    assert await snapshot() == before


async def test_a_suspended_ib_and_the_current_ib_are_refused(personas, cast):
    a = personas["client_a"].id
    await reattribute(cast["admin"], a, "IBTEST", "expo")
    with pytest.raises(FormErrors) as same:
        await reattribute(cast["admin"], a, "ibtest", "again")
    assert "already attributed to IBTEST" in same.value.errors["ib_code"]
    await db.fetch("UPDATE partners SET status = 'suspended' WHERE code = 'IBSUBTEST'")
    with pytest.raises(FormErrors) as suspended:
        await reattribute(cast["admin"], a, "IBSUBTEST", "moved")
    assert "suspended" in suspended.value.errors["ib_code"]


async def test_a_client_cannot_be_referred_by_their_own_code(personas, cast):
    ib_client = personas["ib"].id
    with pytest.raises(FormErrors) as refused:
        await reattribute(cast["admin"], ib_client, "IBTEST", "self")
    assert refused.value.errors["ib_code"] == "A client cannot be referred by their own IB code."


async def test_a_master_ib_cannot_be_attributed_to_their_own_sub_ib(personas, cast):
    """IBSUBTEST sits below IBTEST: IBTEST's client referred by IBSUBTEST would be a loop."""
    with pytest.raises(FormErrors) as refused:
        await reattribute(cast["admin"], personas["ib"].id, "IBSUBTEST", "loop")
    assert "referral loop" in refused.value.errors["ib_code"]
    # Deeper down the tree too.
    deep = await make_partner(
        await make_client("deep_ib", stage="active"), "IBDEEP", parent=personas["sub_ib"]
    )
    assert deep.partner_id
    with pytest.raises(FormErrors):
        await reattribute(cast["admin"], personas["ib"].id, "IBDEEP", "loop")
    # The other way round is ordinary: the sub-IB's own client record referred by its master IB.
    assert (
        await reattribute(cast["admin"], personas["sub_ib"].id, "IBTEST", "recruited by the master") == "set"
    )


async def test_an_ib_brought_in_by_the_client_cannot_become_the_clients_ib(personas, cast):
    """A referred B (an IB) by attribution; B referring A back would close the loop."""
    a = await make_partner(await make_client("ib_a", stage="active"), "IBA")
    b = await make_partner(await make_client("ib_b", stage="active"), "IBB")
    await reattribute(cast["admin"], b.id, "IBA", "A recruited B")
    with pytest.raises(FormErrors) as refused:
        await reattribute(cast["admin"], a.id, "IBB", "B recruited A")
    assert "referral loop" in refused.value.errors["ib_code"]
    assert await attribution_code(a.id) is None


async def test_only_admin_and_compliance_may_change_an_ib(client, personas, cast):
    a = personas["client_a"].id
    before = await snapshot()
    for name in ("sales", "finance", "dealing"):
        with pytest.raises(PermissionError):
            await reattribute(cast[name], a, "IBTEST", "I know best")
        await sign_in(client, personas[name])
        for htmx in (True, False):
            r = await post_form(
                client,
                f"/staff/clients/{a}/attribution",
                {"ib_code": "IBTEST", "ib_reason": "x"},
                page=f"/staff/clients/{a}",
                htmx=htmx,
            )
            assert r.status_code == 403, (name, r.status_code)
        panel = await client.get(f"/staff/clients/{a}/attribution", headers={"HX-Request": "true"})
        assert panel.status_code == 200 and "Save IB" not in panel.text
    assert await snapshot() == before


async def test_a_desk_scoped_agent_gets_404_for_a_client_off_their_desk(client, personas, cast):
    b = personas["client_b"].id
    await sign_in(client, personas["sales"])
    for htmx in ({"HX-Request": "true"}, {}):
        assert (await client.get(f"/staff/clients/{b}/attribution", headers=htmx)).status_code == 404
    with pytest.raises(NotFound):
        await reattribution.attribution_panel_for(cast["sales"], b)
    with pytest.raises(NotFound):
        await reattribution.attribution_panel_for(cast["client_b"], b)


async def test_the_client_page_shows_the_attribution_and_loads_the_ib_block(client, personas, cast):
    a = personas["client_a"].id
    await reattribute(cast["admin"], a, "IBTEST", "expo")
    await sign_in(client, personas["compliance"])
    page = await client.get(f"/staff/clients/{a}")
    assert page.status_code == 200
    assert f'hx-get="/staff/clients/{a}/attribution"' in page.text
    assert "Referred by IB <strong>IBTEST</strong>" in page.text
