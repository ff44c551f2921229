"""Desk scoping (issue 3, item 6): a sales agent sees the clients they own and those of the desks
they are an active member of (the desks' pools included); admin, compliance, finance and dealing
see every client. The list and the client page use one SQL condition, so they cannot disagree,
and an outsider's client answers 404 exactly like an id that does not exist."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from app.clients import services as client_services
from app.clients.filters import ClientFilters
from app.clients.scoping import is_desk_scoped
from app.core.audit import Actor
from app.core.errors import NotFound
from app.routing import desks
from app.routing.tables import Assignment, Desk, DeskMember
from tests.conftest import post_form
from tests.personas import Persona, make_client, make_staff, principal_of, sign_in

ROW_ID = re.compile(r'<tr class="clickable"><td class="num">(\d+)</td>')
SYSTEM = Actor.system("pytest")
MISSING = 987_654


async def assign(client: Persona, desk_id: int | None, owner: int | None) -> None:
    now = datetime.now(UTC)
    await Assignment(
        client=client.id,
        desk=desk_id,
        owner=owner,
        assigned_at=now,
        first_contact_due_at=now + timedelta(hours=1),
        last_touched_at=now,
    ).save()


principal = principal_of  # the shared persona-to-Principal helper


@pytest.fixture
async def book(personas):
    """Who is where. Sales sits on the personas' desk (client_a in its pool), not on "Other desk"."""
    persona_desk = (await Desk.select(Desk.id).where(Desk.name == "Persona desk").first())["id"]
    other_desk = await desks.create_desk("Other desk", SYSTEM)
    colleague = await make_staff("colleague", ["sales"])
    stranger = await make_staff("stranger", ["sales"])
    await desks.add_member({"desk": str(persona_desk), "staff": str(colleague.id), "capacity": "5"}, SYSTEM)
    await desks.add_member({"desk": str(other_desk), "staff": str(stranger.id), "capacity": "5"}, SYSTEM)
    cast = {
        "own": await make_client("own_lead"),  # owned by sales, on a desk sales is not on
        "desk": await make_client("desk_lead"),  # a desk colleague's, on sales' desk
        "pool": personas["client_a"],  # the pool of sales' desk (owner NULL)
        "other_pool": await make_client("other_pool"),  # the pool of another desk
        "other_owned": await make_client("other_owned"),  # another desk, another agent
        "unassigned": personas["client_b"],  # no assignment at all
    }
    await assign(cast["own"], other_desk, personas["sales"].id)
    await assign(cast["desk"], persona_desk, colleague.id)
    await assign(cast["other_pool"], other_desk, None)
    await assign(cast["other_owned"], other_desk, stranger.id)
    return {
        "clients": cast,
        "persona_desk": persona_desk,
        "other_desk": other_desk,
        "visible": {"own", "desk", "pool"},
        "hidden": {"other_pool", "other_owned", "unassigned"},
    }


async def listed(client, query: str = "") -> set[int]:
    r = await client.get(f"/staff/clients?per=200&{query}", headers={"HX-Request": "true"})
    assert r.status_code == 200, r.text
    return {int(i) for i in ROW_ID.findall(r.text)}


def ids(book, names) -> set[int]:
    return {book["clients"][n].id for n in names}


async def test_sales_lists_only_their_own_their_desks_and_their_desks_pool_clients(client, personas, book):
    await sign_in(client, personas["sales"])
    assert await listed(client) == ids(book, book["visible"])
    # The scope's parameters come before the filters' ones: a search still narrows correctly.
    assert await listed(client, "q=desk") == ids(book, {"desk"})
    assert await listed(client, "q=other") == set()
    assert await listed(client, "q=client.b") == set()
    assert await listed(client, f"desk={book['other_desk']}") == ids(book, {"own"})
    assert await listed(client, "owner=none") == ids(book, {"pool"})


async def test_sales_opens_visible_clients_and_gets_the_missing_id_404_for_the_others(client, personas, book):
    await sign_in(client, personas["sales"])
    for name in book["visible"]:
        r = await client.get(f"/staff/clients/{book['clients'][name].id}")
        assert r.status_code == 200, name
        assert book["clients"][name].email in r.text, name
    missing = await client.get(f"/staff/clients/{MISSING}")
    assert missing.status_code == 404
    for name in book["hidden"]:
        r = await client.get(f"/staff/clients/{book['clients'][name].id}")
        assert r.status_code == 404, name
        assert r.text == missing.text, name  # no hint that the id exists
        assert book["clients"][name].email not in r.text


async def test_every_panel_of_a_hidden_client_is_a_404_for_sales(client, personas, book):
    hidden = book["clients"]["other_owned"].id
    visible = book["clients"]["own"].id
    await sign_in(client, personas["sales"])
    for panel in ("", "/stage", "/assignment", "/notes", "/tasks", "/timeline"):
        assert (await client.get(f"/staff/clients/{visible}{panel}")).status_code == 200, panel
        r = await client.get(f"/staff/clients/{hidden}{panel}", headers={"HX-Request": "true"})
        assert r.status_code == 404, panel
    page = f"/staff/clients/{visible}"  # a real CSRF token, spent on the hidden client's forms
    posts = {
        "/notes": {"note": "Sneaky note"},
        "/tasks": {"title": "Sneaky task", "due": "2030-01-01T10:00"},
        "/messages": {"subject": "Sneaky", "body": "Sneaky message"},
        "/stage": {"stage": "churned", "reason": "Sneaky"},
        "/contacted": {},
    }
    for path, data in posts.items():
        r = await post_form(client, f"/staff/clients/{hidden}{path}", data, page=page, htmx=True)
        assert r.status_code == 404, path
    sales = principal(personas["sales"])
    with pytest.raises(NotFound):
        await client_services.get_client_for(sales, hidden)
    assert await client_services.get_client_for(sales, visible)


@pytest.mark.parametrize("role", ["admin", "compliance", "finance", "dealing"])
async def test_admin_compliance_finance_and_dealing_see_every_client(client, personas, book, role):
    await sign_in(client, personas[role])
    everyone = ids(book, book["visible"] | book["hidden"])
    assert everyone <= await listed(client)
    for name, c in book["clients"].items():
        assert (await client.get(f"/staff/clients/{c.id}")).status_code == 200, name


async def test_a_role_beside_sales_lifts_the_scope_and_no_role_at_all_keeps_it(personas, book):
    mixed = principal(await make_staff("mixed", ["sales", "compliance"]))
    bare = principal(await make_staff("bare", []))
    assert not is_desk_scoped(mixed) and is_desk_scoped(bare)
    hidden = book["clients"]["unassigned"].id
    assert (await client_services.get_client_for(mixed, hidden))["id"] == hidden
    with pytest.raises(NotFound):
        await client_services.get_client_for(bare, hidden)
    page = await client_services.list_clients_for(bare, ClientFilters())
    assert page["clients"] == []


async def test_an_agent_added_to_a_desk_sees_its_clients_at_once_and_loses_them_when_off_it(
    client, personas, book
):
    newcomer = await make_staff("newcomer", ["sales"])
    other = book["other_desk"]
    other_ids = ids(book, {"own", "other_pool", "other_owned"})
    await sign_in(client, newcomer)
    assert await listed(client) == set()
    assert (await client.get(f"/staff/clients/{book['clients']['other_pool'].id}")).status_code == 404

    await desks.add_member({"desk": str(other), "staff": str(newcomer.id), "capacity": "5"}, SYSTEM)
    assert await listed(client) == other_ids
    assert (await client.get(f"/staff/clients/{book['clients']['other_pool'].id}")).status_code == 200

    member = (DeskMember.desk == other) & (DeskMember.staff == newcomer.id)
    await DeskMember.update({DeskMember.active: False}).where(member)
    assert await listed(client) == set()
    assert (await client.get(f"/staff/clients/{book['clients']['other_pool'].id}")).status_code == 404

    await DeskMember.update({DeskMember.active: True}).where(member)
    assert await listed(client) == other_ids
    await DeskMember.delete().where(member)
    assert await listed(client) == set()
    assert (await client.get(f"/staff/clients/{book['clients']['other_owned'].id}")).status_code == 404


async def test_a_client_handed_to_an_agent_becomes_visible_to_them_alone_on_another_desk(
    client, personas, book
):
    target = book["clients"]["other_pool"]
    await sign_in(client, personas["sales"])
    assert (await client.get(f"/staff/clients/{target.id}")).status_code == 404
    await Assignment.update({Assignment.owner: personas["sales"].id}).where(Assignment.client == target.id)
    assert (await client.get(f"/staff/clients/{target.id}")).status_code == 200
    assert target.id in await listed(client)


async def test_the_overview_counts_only_the_clients_an_agent_may_see(client, personas):
    await sign_in(client, personas["sales"])
    page = (await client.get("/staff")).text
    assert '<div class="stat-value" id="stat-clients">1</div>' in page  # client_a, on their desk
    assert "Clients and leads on your desks" in page
    await sign_in(client, personas["compliance"])
    page = (await client.get("/staff")).text
    assert '<div class="stat-value" id="stat-clients">4</div>' in page  # both clients and both IBs
    assert "on your desks" not in page


async def test_the_fast_paths_for_owner_tag_and_other_desk_filters_keep_the_same_rows(client, personas, book):
    """Owner or tag plus a term, and a desk the agent is not on, are answered from an index of ids
    (bench/clients_bench.py); the rows must be exactly what the plain conditions give."""
    from app.clients import tags

    sales, admin = principal(personas["sales"]), principal(personas["admin"])
    for name in ("own", "desk", "other_owned"):
        await tags.add_tag(admin, book["clients"][name].id, "vip", SYSTEM)
    await sign_in(client, personas["sales"])
    assert await listed(client, f"desk={book['other_desk']}&q=own") == ids(book, {"own"})
    assert await listed(client, f"desk={book['other_desk']}&q=other") == set()  # not theirs
    assert await listed(client, f"owner={sales.id}&q=lead") == ids(book, {"own"})
    assert await listed(client, "tag=vip&q=lead") == ids(book, {"own", "desk"})  # other_owned is hidden
    assert await listed(client, "tag=vip") == ids(book, {"own", "desk"})
    await sign_in(client, personas["admin"])
    assert await listed(client, "tag=vip&q=lead") == ids(book, {"own", "desk"})
    assert await listed(client, "tag=vip&q=owned") == ids(book, {"other_owned"})
    assert await listed(client, f"desk={book['other_desk']}") == ids(
        book, {"own", "other_pool", "other_owned"}
    )
