"""Lead routing: rules choose the desk, agents take turns within their capacity, the first-contact
clock shows on the client page, and idle leads go back to the pool. Everything is audited."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from app.clients.tables import Client
from app.core.audit import Actor
from app.core.db import fetch, transaction
from app.core.tables import AuditEvent
from app.leads.services import LeadData, capture_lead
from app.routing import desks, services
from app.routing.tables import Assignment, Desk, DeskMember, RoutingRule
from app.settings import SettingsError, load_settings, use_settings
from tests.conftest import post_form
from tests.conftest import test_settings as settings_for
from tests.personas import make_staff, sign_in

SYSTEM = Actor.system("pytest")
_seq = iter(range(1, 1_000_000))


async def desk(name: str, *agents: tuple[int, int]) -> int:
    """A desk with (staff id, capacity) members, made through the console's services."""
    desk_id = await desks.create_desk(name, SYSTEM)
    for staff_id, capacity in agents:
        await desks.add_member(
            {"desk": str(desk_id), "staff": str(staff_id), "capacity": str(capacity)}, SYSTEM
        )
    return desk_id


async def rule(desk_id: int, priority: int, country: str = "", language: str = "") -> None:
    await desks.add_rule(
        {"desk": str(desk_id), "priority": str(priority), "country": country, "language": language}, SYSTEM
    )


async def lead(country: str = "DE", language: str = "de") -> int:
    n = next(_seq)
    client_id, created = await capture_lead(
        LeadData(
            first_name="Lead",
            last_name=f"N{n}",
            email=f"lead{n}@example.com",
            country=country,
            language=language,
        ),
        channel="api",
        api_key_id=None,
        actor=SYSTEM,
    )
    assert created
    return client_id


async def assignment(client_id: int) -> dict:
    row = await Assignment.select().where(Assignment.client == client_id).first()
    assert row is not None
    return row


async def agents(*names: str) -> list[int]:
    return [(await make_staff(name, ["sales"])).id for name in names]


async def join_after_routing(desk_id: int, staff_id: int) -> None:
    """Desk scoping: the sales persona sees the desk's leads once on it (joined late: routing is unchanged)."""
    await DeskMember(desk=desk_id, staff=staff_id).save()


# --- rules ---------------------------------------------------------------------------------------


async def test_it_routes_by_the_first_matching_rule_in_priority_order(database):
    a, b, c = await agents("anna", "bert", "cora")
    german = await desk("DACH German", (a, 10))
    germany = await desk("Germany any language", (b, 10))
    fallback = await desk("Everyone else", (c, 10))
    await rule(fallback, 900)
    await rule(germany, 20, country="DE")
    await rule(german, 10, country="DE", language="de")
    await rule(german, 30, language="de")

    assert (await assignment(await lead("DE", "de")))["desk"] == german
    assert (await assignment(await lead("DE", "en")))["desk"] == germany
    assert (await assignment(await lead("AT", "de")))["desk"] == german  # language-only rule
    assert (await assignment(await lead("FR", "fr")))["desk"] == fallback


async def test_without_a_matching_rule_the_default_desk_takes_the_lead_or_it_stays_unrouted(database):
    (a,) = await agents("anna")
    await desk("Default", (a, 10))
    unrouted = await assignment(await lead("FR", "fr"))
    assert unrouted["desk"] is None and unrouted["owner"] is None  # no DEFAULT_DESK set

    use_settings(settings_for(database, DEFAULT_DESK="Default"))
    routed = await assignment(await lead("FR", "fr"))
    assert routed["owner"] == a
    assert routed["desk"] == (await Desk.select(Desk.id).where(Desk.name == "Default").first())["id"]


async def test_an_inactive_desk_s_rules_are_skipped(database):
    a, b = await agents("anna", "bert")
    closed = await desk("Closed", (a, 10))
    open_ = await desk("Open", (b, 10))
    await rule(closed, 1, country="DE")
    await rule(open_, 2)
    await Desk.update({Desk.active: False}).where(Desk.id == closed)
    assert (await assignment(await lead("DE")))["desk"] == open_


# --- round robin and capacity ---------------------------------------------------------------------


async def test_agents_take_turns_and_a_full_agent_is_skipped(database):
    a, b, c = await agents("anna", "bert", "cora")
    d = await desk("Sales", (a, 10), (b, 1), (c, 10))
    await rule(d, 1)
    owners = [(await assignment(await lead()))["owner"] for _ in range(7)]
    # bert (capacity 1) takes one lead, then only anna and cora alternate
    assert owners == [a, b, c, a, c, a, c]


async def test_when_everyone_is_full_the_lead_waits_in_the_desk_pool(database):
    a, b = await agents("anna", "bert")
    d = await desk("Sales", (a, 1), (b, 1))
    await rule(d, 1)
    first = [(await assignment(await lead()))["owner"] for _ in range(2)]
    assert sorted(first) == sorted([a, b])
    pooled = await assignment(await lead())
    assert pooled["desk"] == d and pooled["owner"] is None


async def test_a_converted_lead_frees_capacity_and_an_inactive_member_gets_none(database):
    a, b = await agents("anna", "bert")
    d = await desk("Sales", (a, 1), (b, 5))
    await rule(d, 1)
    await DeskMember.update({DeskMember.active: False}).where(DeskMember.staff == b)
    first = await lead()
    assert (await assignment(first))["owner"] == a
    assert (await assignment(await lead()))["owner"] is None  # anna full, bert inactive
    await Client.update({Client.stage: "registered"}).where(Client.id == first)
    assert (await assignment(await lead()))["owner"] == a


async def test_concurrent_leads_never_exceed_any_agent_s_capacity(database):
    a, b, c = await agents("anna", "bert", "cora")
    d = await desk("Sales", (a, 2), (b, 3), (c, 1))
    await rule(d, 1)
    ids = await asyncio.gather(*(lead() for _ in range(10)))
    rows = await Assignment.select().where(Assignment.client.is_in(list(ids)))
    owned = [r["owner"] for r in rows]
    assert len(rows) == 10
    assert owned.count(a) == 2 and owned.count(b) == 3 and owned.count(c) == 1
    assert owned.count(None) == 4 and all(r["desk"] == d for r in rows)


async def test_concurrent_route_lead_calls_in_their_own_transactions_respect_capacity(database):
    a, b = await agents("anna", "bert")
    d = await desk("Sales", (a, 3), (b, 3))
    await rule(d, 1)
    now = datetime.now(UTC)
    clients = []
    for n in range(10):
        row = Client(
            email=f"raw{n}@example.com",
            first_name="Raw",
            last_name=str(n),
            country="DE",
            stage="lead",
            stage_changed_at=now,
            created_at=now,
        )
        await row.save()
        clients.append(row.id)

    async def route(cid: int) -> None:
        async with transaction():
            await services.route_lead(cid, SYSTEM)

    await asyncio.gather(*(route(cid) for cid in clients))
    owners = [r["owner"] for r in await Assignment.select(Assignment.owner)]
    assert owners.count(a) == 3 and owners.count(b) == 3 and owners.count(None) == 4


async def test_routing_a_lead_twice_keeps_its_first_assignment(database):
    (a,) = await agents("anna")
    await rule(await desk("Sales", (a, 5)), 1)
    cid = await lead()
    before = await assignment(cid)
    async with transaction():
        await services.route_lead(cid, SYSTEM)
    assert await Assignment.count() == 1 and (await assignment(cid))["id"] == before["id"]


async def test_a_merged_duplicate_lead_is_not_routed_again(database):
    a, b = await agents("anna", "bert")
    await rule(await desk("Sales", (a, 5), (b, 5)), 1)
    data = LeadData(first_name="Dup", last_name="Lead", email="dup@example.com", country="DE")
    first, created = await capture_lead(data, channel="api", api_key_id=None, actor=SYSTEM)
    again, created_again = await capture_lead(data, channel="form", api_key_id=None, actor=SYSTEM)
    assert created and not created_again and first == again
    assert await Assignment.count() == 1


async def test_every_assignment_is_audited_with_desk_and_owner(database):
    (a,) = await agents("anna")
    d = await desk("Sales", (a, 5))
    await rule(d, 1)
    cid = await lead()
    row = await AuditEvent.select().where(AuditEvent.action == "lead.assigned").first()
    assert row["subject_type"] == "client" and row["subject_id"] == str(cid)
    after = row["after"] if isinstance(row["after"], dict) else __import__("json").loads(row["after"])
    assert after["desk"] == d and after["desk_name"] == "Sales"
    assert after["owner"] == a and after["owner_name"] == "Anna"
    assert after["first_contact_due_at"]


# --- SLA -----------------------------------------------------------------------------------------


async def test_the_first_contact_is_due_after_the_configured_sla(database):
    use_settings(settings_for(database, FIRST_CONTACT_SLA_MINUTES="45"))
    (a,) = await agents("anna")
    await rule(await desk("Sales", (a, 5)), 1)
    row = await assignment(await lead())
    assert row["first_contact_due_at"] - row["assigned_at"] == timedelta(minutes=45)
    assert row["first_contact_at"] is None


def test_the_routing_settings_are_parsed_strictly():
    base = {"SECRET_KEY": "x" * 40, "FXCRM_VAR_DIR": "/tmp/fxcrm-test-settings"}
    s = load_settings(base)
    assert (s.first_contact_sla_minutes, s.lead_idle_days, s.default_desk) == (60, 3, "")
    s = load_settings(
        {**base, "FIRST_CONTACT_SLA_MINUTES": "15", "LEAD_IDLE_DAYS": "7", "DEFAULT_DESK": " Pool "}
    )
    assert (s.first_contact_sla_minutes, s.lead_idle_days, s.default_desk) == (15, 7, "Pool")
    for name, value in [
        ("FIRST_CONTACT_SLA_MINUTES", "soon"),
        ("FIRST_CONTACT_SLA_MINUTES", "0"),
        ("LEAD_IDLE_DAYS", "-1"),
        ("LEAD_IDLE_DAYS", "3.5"),
        ("DEFAULT_DESK", "x" * 101),
    ]:
        with pytest.raises(SettingsError, match=name):
            load_settings({**base, name: value})


async def test_the_panel_shows_the_sla_clock_and_an_overdue_badge(client, personas):
    (a,) = await agents("anna")
    await rule(sales := await desk("Sales", (a, 5)), 1)
    cid = await lead()
    await join_after_routing(sales, personas["sales"].id)
    await sign_in(client, personas["sales"])
    page = await client.get(f"/staff/clients/{cid}/assignment")
    assert page.status_code == 200
    assert "Sales" in page.text and "Anna" in page.text
    assert "due in 60 min" in page.text and "overdue" not in page.text
    assert "<html" in page.text.lower()

    await Assignment.update(
        {Assignment.first_contact_due_at: datetime.now(UTC) - timedelta(minutes=5)}
    ).where(Assignment.client == cid)
    fragment = await client.get(f"/staff/clients/{cid}/assignment", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert 'badge badge-red">overdue' in fragment.text and "overdue by 5 min" in fragment.text
    assert "<html" not in fragment.text.lower()

    detail = await client.get(f"/staff/clients/{cid}")
    assert f'hx-get="/staff/clients/{cid}/assignment"' in detail.text


async def test_the_sla_label_counts_minutes_hours_and_days():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    row = {"first_contact_at": None, "first_contact_due_at": now + timedelta(minutes=42)}
    assert services.sla_state(row, now) == {"state": "due", "label": "due in 42 min"}
    row["first_contact_due_at"] = now + timedelta(hours=3, minutes=10)
    assert services.sla_state(row, now)["label"] == "due in 3 h 10 min"
    row["first_contact_due_at"] = now - timedelta(days=3)
    assert services.sla_state(row, now) == {"state": "overdue", "label": "overdue by 3 days"}
    row["first_contact_at"] = now
    assert services.sla_state(row, now)["state"] == "contacted"


# --- mark contacted -------------------------------------------------------------------------------


async def test_marking_contacted_stops_the_clock_and_is_audited(client, personas):
    (a,) = await agents("anna")
    await rule(sales := await desk("Sales", (a, 5)), 1)
    cid = await lead()
    await join_after_routing(sales, personas["sales"].id)
    await sign_in(client, personas["sales"])
    r = await post_form(
        client, f"/staff/clients/{cid}/contacted", {}, page=f"/staff/clients/{cid}/assignment", htmx=True
    )
    assert r.status_code == 200, r.text
    assert (
        "Marked as contacted." in r.text and "badge badge-green" in r.text and "<html" not in r.text.lower()
    )
    row = await assignment(cid)
    assert row["first_contact_at"] is not None and row["last_touched_at"] >= row["first_contact_at"]
    audit = await AuditEvent.select().where(AuditEvent.action == "lead.contacted").first()
    assert audit["subject_id"] == str(cid) and audit["actor_id"] == str(personas["sales"].id)

    first = row["first_contact_at"]
    r = await post_form(
        client, f"/staff/clients/{cid}/contacted", {}, page=f"/staff/clients/{cid}/assignment"
    )
    assert r.status_code == 303 and r.headers["location"] == f"/staff/clients/{cid}"
    again = await assignment(cid)
    assert again["first_contact_at"] == first and again["last_touched_at"] > row["last_touched_at"]


async def test_marking_an_unrouted_client_contacted_is_refused_beside_the_panel(client, personas):
    cid = personas["client_b"].id  # client_a sits in the persona desk's pool
    await sign_in(client, personas["admin"])
    audits = await AuditEvent.count()
    r = await post_form(
        client, f"/staff/clients/{cid}/contacted", {}, page=f"/staff/clients/{cid}/assignment", htmx=True
    )
    assert r.status_code == 422 and "not assigned to a desk" in r.text
    assert await AuditEvent.count() == audits


async def test_only_admins_and_sales_may_mark_contacted(client, personas):
    (a,) = await agents("anna")
    await rule(await desk("Sales", (a, 5)), 1)
    cid = await lead()
    for name in ("compliance", "finance", "dealing"):
        await sign_in(client, personas[name])
        r = await post_form(
            client, f"/staff/clients/{cid}/contacted", {}, page=f"/staff/clients/{cid}/assignment"
        )
        assert r.status_code == 403, name
    assert (await assignment(cid))["first_contact_at"] is None


# --- idle leads -----------------------------------------------------------------------------------


async def test_the_idle_job_returns_untouched_leads_to_the_pool_once(database):
    a, b = await agents("anna", "bert")
    d = await desk("Sales", (a, 5), (b, 5))
    await rule(d, 1)
    idle, fresh, converted = await lead(), await lead(), await lead()
    long_ago = datetime.now(UTC) - timedelta(days=4)
    await Assignment.update({Assignment.last_touched_at: long_ago}).where(
        Assignment.client.is_in([idle, converted])
    )
    await Client.update({Client.stage: "registered"}).where(Client.id == converted)
    owner_before = (await assignment(idle))["owner"]

    assert await services.return_idle_leads() == 1  # default LEAD_IDLE_DAYS = 3
    back = await assignment(idle)
    assert back["owner"] is None and back["desk"] == d
    assert (await assignment(fresh))["owner"] is not None
    assert (await assignment(converted))["owner"] is not None
    audit = await AuditEvent.select().where(AuditEvent.action == "lead.returned_to_pool")
    assert len(audit) == 1 and audit[0]["subject_id"] == str(idle) and audit[0]["actor_kind"] == "system"

    assert await services.return_idle_leads() == 0  # idempotent
    assert await AuditEvent.count().where(AuditEvent.action == "lead.returned_to_pool") == 1
    assert owner_before is not None


async def test_the_idle_window_follows_the_setting(database):
    use_settings(settings_for(database, LEAD_IDLE_DAYS="10"))
    (a,) = await agents("anna")
    await rule(await desk("Sales", (a, 5)), 1)
    cid = await lead()
    await Assignment.update({Assignment.last_touched_at: datetime.now(UTC) - timedelta(days=4)}).where(
        Assignment.client == cid
    )
    assert await services.return_idle_leads() == 0
    assert await services.return_idle_leads(now=datetime.now(UTC) + timedelta(days=7)) == 1


async def test_the_idle_job_is_a_registered_cron_job(database):
    from app.core import jobs

    jobs.load_job_modules()
    assert "app.routing.jobs" in jobs.JOB_MODULES
    from app.routing.jobs import return_idle_leads_to_pool

    assert await return_idle_leads_to_pool({}) == 0


# --- reassign -------------------------------------------------------------------------------------


async def test_an_admin_reassigns_a_lead_and_it_is_audited(client, personas):
    a, b = await agents("anna", "bert")
    d = await desk("Sales", (a, 5), (b, 5))
    await rule(d, 1)
    cid = await lead()
    target = b if (await assignment(cid))["owner"] == a else a
    await sign_in(client, personas["admin"])
    r = await post_form(
        client,
        f"/staff/clients/{cid}/owner",
        {"owner": str(target)},
        page=f"/staff/clients/{cid}/assignment",
        htmx=True,
    )
    assert r.status_code == 200 and "Owner changed." in r.text
    assert (await assignment(cid))["owner"] == target
    assert await AuditEvent.count().where(AuditEvent.action == "lead.reassigned") == 1

    r = await post_form(
        client,
        f"/staff/clients/{cid}/owner",
        {"owner": str(personas["finance"].id)},
        page=f"/staff/clients/{cid}/assignment",
        htmx=True,
    )
    assert r.status_code == 422 and "active member of an active desk" in r.text
    assert (await assignment(cid))["owner"] == target

    r = await post_form(
        client, f"/staff/clients/{cid}/owner", {"owner": ""}, page=f"/staff/clients/{cid}/assignment"
    )
    assert r.status_code == 303
    assert (await assignment(cid))["owner"] is None


async def test_a_sales_agent_cannot_reassign(client, personas):
    (a,) = await agents("anna")
    await rule(sales := await desk("Sales", (a, 5)), 1)
    cid = await lead()
    await join_after_routing(sales, personas["sales"].id)
    await sign_in(client, personas["sales"])
    r = await post_form(
        client, f"/staff/clients/{cid}/owner", {"owner": ""}, page=f"/staff/clients/{cid}/assignment"
    )
    assert r.status_code == 403
    assert (await assignment(cid))["owner"] == a


# --- the console ----------------------------------------------------------------------------------


async def test_an_admin_sets_up_a_desk_with_members_and_rules_in_the_console(client, personas):
    await sign_in(client, personas["admin"])
    page = "/staff/settings/desks"
    r = await post_form(client, page, {"name": "Spanish desk"})
    assert r.status_code == 303 and r.headers["location"] == page
    desk_id = (await Desk.select(Desk.id).where(Desk.name == "Spanish desk").first())["id"]

    r = await post_form(client, page, {"name": "Spanish desk"})
    assert r.status_code == 422 and "A desk with this name exists." in r.text

    r = await post_form(
        client,
        f"{page}/members",
        {"desk": str(desk_id), "staff": str(personas["sales"].id), "capacity": "0"},
        page=page,
    )
    assert r.status_code == 422 and 'id="e-capacity"' in r.text
    r = await post_form(
        client,
        f"{page}/members",
        {"desk": str(desk_id), "staff": str(personas["sales"].id), "capacity": "7"},
        page=page,
    )
    assert r.status_code == 303
    r = await post_form(
        client,
        f"{page}/members",
        {"desk": str(desk_id), "staff": str(personas["sales"].id), "capacity": "7"},
        page=page,
    )
    assert r.status_code == 422 and "Already a member" in r.text

    r = await post_form(
        client,
        f"{page}/rules",
        {"desk": str(desk_id), "priority": "5", "country": "XX", "language": "zz"},
        page=page,
    )
    assert r.status_code == 422 and 'id="e-country"' in r.text and 'id="e-language"' in r.text
    r = await post_form(
        client,
        f"{page}/rules",
        {"desk": str(desk_id), "priority": "5", "country": "es", "language": "ES"},
        page=page,
    )
    assert r.status_code == 303
    rule_row = await RoutingRule.select().first()
    assert (rule_row["country"], rule_row["language"], rule_row["desk"]) == ("ES", "es", desk_id)

    listing = await client.get(page)
    assert listing.status_code == 200
    assert "Spanish desk" in listing.text and "Sales" in listing.text and 'value="7"' in listing.text

    assert (await assignment(await lead("ES", "es")))["owner"] == personas["sales"].id

    r = await post_form(client, f"{page}/rules/remove", {"rule": str(rule_row["id"])}, page=page)
    assert r.status_code == 303 and await RoutingRule.count() == 0
    r = await post_form(client, f"{page}/rules/remove", {"rule": str(rule_row["id"])}, page=page)
    assert r.status_code == 422 and "No such rule." in r.text
    actions = {r["action"] for r in await AuditEvent.select(AuditEvent.action)}
    assert {"desk.created", "desk.member_added", "routing_rule.added", "routing_rule.removed"} <= actions


async def test_the_desk_console_is_for_admins_only(client, personas):
    before = await Desk.count()  # the personas' own desk
    for name in ("compliance", "finance", "sales", "dealing"):
        await sign_in(client, personas[name])
        assert (await client.get("/staff/settings/desks")).status_code == 403, name
        r = await post_form(client, "/staff/settings/desks", {"name": "Mole desk"}, page="/staff/login")
        assert r.status_code == 403, name
    await sign_in(client, personas["outsider"])
    r = await client.get("/staff/settings/desks")
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/login")
    assert await Desk.count() == before
    rows = await fetch("SELECT count(*) AS n FROM routing_desks WHERE name = 'Mole desk'")
    assert rows[0]["n"] == 0


async def madrid_with(agent, capacity: int) -> tuple[int, int]:
    desk_id = await desk("Madrid", (agent.id, capacity))
    await rule(desk_id, 1, "ES", "es")
    member = await DeskMember.select(DeskMember.id).where(DeskMember.desk == desk_id).first()
    return desk_id, member["id"]


async def test_an_admin_takes_an_agent_off_a_desk_and_their_uncontacted_leads_return_to_the_pool(
    client, personas
):
    desk_id, member_id = await madrid_with(personas["sales"], capacity=5)
    fresh = await lead("ES", "es")
    touched = await lead("ES", "es")
    await services.mark_contacted(touched, SYSTEM)
    assert (await assignment(fresh))["owner"] == personas["sales"].id
    await sign_in(client, personas["admin"])
    page = "/staff/settings/desks"
    listing = (await client.get(page)).text
    assert f'action="/staff/settings/desks/members/{member_id}"' in listing

    r = await post_form(client, f"{page}/members/{member_id}", {"capacity": "0", "active": "on"}, page=page)
    assert r.status_code == 422 and "Between 1 and" in r.text
    r = await post_form(client, f"{page}/members/{member_id}", {"capacity": "9"}, page=page)  # active off
    assert r.status_code == 303
    member = await DeskMember.select().where(DeskMember.id == member_id).first()
    assert (member["capacity"], member["active"]) == (9, False)
    assert (await assignment(fresh))["owner"] is None  # back in the pool
    assert (await assignment(touched))["owner"] == personas["sales"].id  # contacted: the agent keeps it
    returned = await AuditEvent.select(AuditEvent.subject_id, AuditEvent.after).where(
        AuditEvent.action == "lead.returned_to_pool"
    )
    assert [r["subject_id"] for r in returned] == [str(fresh)]
    assert await AuditEvent.count().where(AuditEvent.action == "desk.member_changed") == 1
    assert "off the desk" in (await client.get(page)).text
    assert (await assignment(await lead("ES", "es")))["owner"] is None  # no agent on the desk now

    r = await post_form(client, f"{page}/members/999999", {"capacity": "3", "active": "on"}, page=page)
    assert r.status_code == 422 and "No such desk member." in r.text


async def test_an_inactive_desk_gets_no_new_leads_until_it_is_reactivated(client, personas):
    desk_id, _ = await madrid_with(personas["sales"], capacity=5)
    await sign_in(client, personas["admin"])
    page = "/staff/settings/desks"
    r = await post_form(client, f"{page}/{desk_id}/active", {}, page=page)
    assert r.status_code == 303
    assert "Reactivate desk" in (await client.get(page)).text
    assert (await assignment(await lead("ES", "es")))["desk"] != desk_id
    r = await post_form(client, f"{page}/{desk_id}/active", {"active": "on"}, page=page)
    assert r.status_code == 303
    assert (await assignment(await lead("ES", "es")))["desk"] == desk_id
    actions = [
        r["action"]
        for r in await AuditEvent.select(AuditEvent.action).where(AuditEvent.subject_type == "desk")
    ]
    assert actions.count("desk.deactivated") == 1 and actions.count("desk.activated") == 1
    r = await post_form(client, f"{page}/424242/active", {}, page=page)
    assert r.status_code == 422 and "No such desk." in r.text
