"""The staff client list: search, filters, sorting, keyset pages and columns, all in the URL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from app.clients.tables import Client
from app.core import db
from app.core.tables import AuditEvent
from app.partners.tables import Attribution
from app.routing.tables import Assignment, Desk, DeskMember
from app.views.tables import SavedView
from tests.conftest import post_form
from tests.personas import make_staff, sign_in

ROW_ID = re.compile(r'<tr class="clickable"><td class="num">(\d+)</td>')


def ids_in(html: str) -> list[int]:
    return [int(i) for i in ROW_ID.findall(html)]


async def add_client(
    first: str,
    last: str,
    email: str,
    *,
    phone: str = "",
    country: str = "DE",
    language: str = "en",
    stage: str = "lead",
    created: datetime,
) -> int:
    row = Client(
        email=email,
        first_name=first,
        last_name=last,
        phone=phone,
        country=country,
        language=language,
        stage=stage,
        stage_changed_at=created,
        created_at=created,
    )
    await row.save()
    return int(row.id)


@pytest.fixture
async def book(personas) -> dict[str, int]:
    """Three clients with distinct owners, desks, countries, languages, IBs and creation dates."""
    berlin = Desk(name="Berlin")
    await berlin.save()
    madrid = Desk(name="Madrid")
    await madrid.save()
    zoe = await add_client(
        "Zoë",
        "Müller",
        "zoe.mueller@example.com",
        phone="+491512345678",
        language="de",
        stage="lead",
        created=datetime(2026, 1, 10, 9, tzinfo=UTC),
    )
    carlos = await add_client(
        "Carlos",
        "Ruiz",
        "carlos@ejemplo.es",
        phone="+34612345678",
        country="ES",
        language="es",
        stage="funded",
        created=datetime(2026, 3, 5, 23, 30, tzinfo=UTC),
    )
    anna = await add_client(
        "Anna",
        "Schmidt",
        "anna.s@example.at",
        country="AT",
        language="de",
        stage="kyc_pending",
        created=datetime(2026, 2, 1, tzinfo=UTC),
    )
    now = datetime.now(UTC)
    for client, desk, owner in ((zoe, berlin.id, personas["sales"].id), (carlos, madrid.id, None)):
        await Assignment(
            client=client,
            desk=desk,
            owner=owner,
            assigned_at=now,
            first_contact_due_at=now + timedelta(hours=1),
            last_touched_at=now,
        ).save()
    await Attribution(
        client=carlos, partner=personas["ib"].partner_id, source="code", attributed_at=now
    ).save()
    return {"zoe": zoe, "carlos": carlos, "anna": anna, "berlin": berlin.id, "madrid": madrid.id}


@pytest.fixture
async def as_staff(client, personas):
    # Unscoped (desk scoping would hide the unassigned clients); scoping: tests/clients/test_desk_scoping.py
    await sign_in(client, personas["compliance"])
    return client


async def listed(client, query: str) -> list[int]:
    r = await client.get(f"/staff/clients?{query}", headers={"HX-Request": "true"})
    assert r.status_code == 200, r.text
    return ids_in(r.text)


async def test_search_matches_name_email_and_phone_case_insensitively(as_staff, book):
    assert await listed(as_staff, "q=ZOË+mül") == [book["zoe"]]
    assert await listed(as_staff, "q=EJEMPLO.ES") == [book["carlos"]]
    assert await listed(as_staff, "q=schmidt") == [book["anna"]]


async def test_search_finds_a_phone_typed_in_another_format(as_staff, book):
    for typed in ("+49 151 2345678", "0151 234 56 78", "0049-151-2345678", "(0151) 2345678"):
        assert await listed(as_staff, f"q={typed}") == [book["zoe"]], typed


async def test_search_treats_wildcards_and_quotes_as_plain_text(as_staff, personas, book):
    assert await listed(as_staff, "q=%25") == []
    assert await listed(as_staff, "q=z_e") == []  # "_" would match the "o" of "zoe" as a wildcard
    assert await listed(as_staff, "q=client_a") == [personas["client_a"].id]  # last name "Client_A"
    assert await listed(as_staff, "q=%27%3B+drop+table+clients%3B+--") == []
    assert len(await listed(as_staff, "")) == 7  # four personas' clients and the book's three


async def test_each_filter_narrows_the_list(as_staff, personas, book):
    assert await listed(as_staff, "stage=funded") == [book["carlos"]]
    assert await listed(as_staff, f"owner={personas['sales'].id}") == [book["zoe"]]
    assert book["zoe"] not in await listed(as_staff, "owner=none")
    assert book["carlos"] in await listed(as_staff, "owner=none")
    assert await listed(as_staff, f"desk={book['madrid']}") == [book["carlos"]]
    assert await listed(as_staff, f"desk={book['berlin']}") == [book["zoe"]]
    assert await listed(as_staff, "country=at") == [book["anna"]]
    assert sorted(await listed(as_staff, "language=de")) == sorted([book["zoe"], book["anna"]])
    assert await listed(as_staff, "ib=ibtest") == [book["carlos"]]
    assert await listed(as_staff, "ib=IBSUBTEST") == []
    between = await listed(as_staff, "created_from=2026-02-01&created_to=2026-03-05")
    assert sorted(between) == sorted([book["anna"], book["carlos"]])  # both ends inclusive
    assert await listed(as_staff, "created_to=2026-01-31") == [book["zoe"]]
    assert await listed(as_staff, "language=de&country=DE&q=zo") == [book["zoe"]]


async def test_filters_are_kept_in_the_url_and_the_form(as_staff, personas, book):
    r = await as_staff.get(f"/staff/clients?stage=funded&desk={book['madrid']}&ib=IBTEST&sort=name&dir=asc")
    assert r.status_code == 200
    assert 'hx-push-url="true"' in r.text and 'method="get" action="/staff/clients"' in r.text
    assert '<option value="funded" selected>' in r.text
    assert f'<option value="{book["madrid"]}" selected>Madrid</option>' in r.text
    assert 'name="ib" size="8" maxlength="24" placeholder="IB code" value="IBTEST"' in r.text
    assert '<option value="name" selected>' in r.text


async def test_it_sorts_by_name_stage_and_created_in_both_directions(as_staff, book):
    by_name = await listed(as_staff, "sort=name&dir=asc")
    rows = await db.fetch("SELECT id FROM clients ORDER BY lower(first_name || ' ' || last_name), id")
    assert by_name == [r["id"] for r in rows]
    assert await listed(as_staff, "sort=name&dir=desc") == list(reversed(by_name))
    by_stage = await listed(as_staff, "sort=stage&dir=asc")
    assert by_stage.index(book["zoe"]) < by_stage.index(book["anna"]) < by_stage.index(book["carlos"])
    oldest_first = await listed(as_staff, "sort=created&dir=asc")
    assert oldest_first[:3] == [book["zoe"], book["anna"], book["carlos"]]
    assert (await listed(as_staff, ""))[-3:] == [book["carlos"], book["anna"], book["zoe"]]


async def test_keyset_pages_cover_every_row_exactly_once_in_every_sort(as_staff, book):
    same_day = datetime(2026, 4, 1, tzinfo=UTC)
    for i in range(6):  # equal sort keys across a page boundary: the id breaks the tie
        await add_client("Twin", "Same", f"twin{i}@example.com", created=same_day)
    everyone = {r["id"] for r in await db.fetch("SELECT id FROM clients")}
    for sort in ("created", "name", "stage"):
        for direction in ("asc", "desc"):
            seen: list[int] = []
            url = f"/staff/clients?sort={sort}&dir={direction}&per=2"
            pages = 0
            while url:
                r = await as_staff.get(url, headers={"HX-Request": "true"})
                assert r.status_code == 200 and "flash" not in r.text, r.text
                page = ids_in(r.text)
                assert 0 < len(page) <= 2
                seen += page
                nxt = re.search(r'id="next-page" class="btn btn-sm" rel="next" href="([^"]+)"', r.text)
                url = nxt.group(1).replace("&amp;", "&") if nxt else ""
                if url:
                    query = parse_qs(urlsplit(url).query)
                    assert {"after", "after_id"} <= query.keys() and "offset" not in query
                pages += 1
            assert len(seen) == len(set(seen)) == len(everyone), (sort, direction)
            assert set(seen) == everyone
            assert pages == (len(everyone) + 1) // 2
            assert seen == await listed(as_staff, f"sort={sort}&dir={direction}&per=200")


async def test_the_next_link_keeps_the_filters(as_staff, book):
    r = await as_staff.get("/staff/clients?language=de&per=1&sort=name&dir=asc")
    assert ids_in(r.text) == [book["anna"]]
    nxt = re.search(r'rel="next" href="([^"]+)"', r.text)
    assert nxt
    r = await as_staff.get(nxt.group(1).replace("&amp;", "&"))
    assert ids_in(r.text) == [book["zoe"]]
    assert 'rel="next"' not in r.text


async def test_columns_are_chosen_in_the_url(as_staff, book):
    default = await as_staff.get("/staff/clients?q=zoe")
    assert '<th data-col="email">E-mail</th>' in default.text
    assert '<th data-col="phone">' not in default.text and "+491512345678" not in default.text
    assert "Sales" in default.text  # the owner column
    chosen = await as_staff.get("/staff/clients?q=ruiz&cols=&cols=phone&cols=ib&cols=desk")
    assert "+34612345678" in chosen.text and ">IBTEST<" in chosen.text and ">Madrid<" in chosen.text
    assert '<th data-col="email">' not in chosen.text and "carlos@ejemplo.es" not in chosen.text
    assert 'value="phone" checked' in chosen.text and 'value="email">' in chosen.text
    assert ">IBTEST<" in (await as_staff.get("/staff/clients?q=ruiz&cols=ib,phone")).text
    none = await as_staff.get("/staff/clients?q=ruiz&cols=")
    assert "<th data-col=" not in none.text and book["carlos"] in ids_in(none.text)


async def test_invalid_parameters_are_ignored_with_a_visible_note(as_staff, book):
    everyone = await listed(as_staff, "")
    bad = (
        "stage=bogus&owner=abc&desk=-1&country=Germany&language=%3Cb%3E&ib=no%20such!&created_from=2026-13-01"
        "&created_to=yesterday&sort=password_hash&dir=sideways&per=0&after=garbage&after_id=x&cols=secret"
    )
    for headers in ({}, {"HX-Request": "true"}):
        r = await as_staff.get(f"/staff/clients?{bad}", headers=headers)
        assert r.status_code == 200
        assert ids_in(r.text) == everyone
        for phrase in (
            "Unknown stage",
            "Unknown owner",
            "Unknown desk",
            "two-letter code",
            "language code",
            "IB code",
            "not a date",
            "Cannot sort by",
            "Sort direction",
            "Page size",
            "page link was not valid",
            "Unknown column",
        ):
            assert phrase in r.text, phrase
        assert "<b>" not in r.text
    r = await as_staff.get(
        "/staff/clients?created_from=2026-03-01&created_to=2026-01-01&sort=created&after=2026-01-01T00:00:00&after_id=99999999999"
    )
    assert r.status_code == 200 and "range was ignored" in r.text and "page link was not valid" in r.text


async def test_an_htmx_request_gets_the_rows_and_a_browser_the_page(as_staff, book):
    page = await as_staff.get("/staff/clients?q=ruiz")
    part = await as_staff.get("/staff/clients?q=ruiz", headers={"HX-Request": "true"})
    assert page.status_code == part.status_code == 200
    assert "<html" in page.text and 'id="client-filters"' in page.text and 'id="client-rows"' in page.text
    assert "<html" not in part.text and 'id="client-filters"' not in part.text
    assert ids_in(page.text) == ids_in(part.text) == [book["carlos"]]


async def test_clients_and_outsiders_are_refused(client, personas, book):
    await sign_in(client, personas["client_a"])
    for headers in ({}, {"HX-Request": "true"}):
        r = await client.get("/staff/clients?q=ruiz", headers=headers)
        assert r.status_code == 403 and "carlos@ejemplo.es" not in r.text
    await sign_in(client, personas["outsider"])
    r = await client.get("/staff/clients?q=ruiz")
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/login")


async def test_every_staff_page_has_a_quick_search_into_the_client_list(as_staff, personas, book):
    r = await as_staff.get("/staff")
    assert r.status_code == 200
    box = re.search(
        r'<form class="quick-search" method="get" action="/staff/clients"[^>]*>\s*<input id="quick-search" name="q"',
        r.text,
    )
    assert box, "quick search missing from the top bar"
    assert (await as_staff.get("/staff/clients")).text.count('id="quick-search"') == 1
    found = await as_staff.get("/staff/clients", params={"q": "+49 151 2345678"})
    assert ids_in(found.text) == [book["zoe"]]


async def test_every_desk_may_use_the_list(client, personas, book):
    mixed = await make_staff("auditor", ["finance"])
    await sign_in(client, mixed)
    assert book["zoe"] in ids_in((await client.get("/staff/clients")).text)


async def test_the_search_and_sort_indexes_exist_and_serve_the_search(database, book):
    names = {
        r["indexname"] for r in await db.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'clients'")
    }
    assert {"clients_created_keyset", "clients_name_keyset", "clients_stage_keyset"} <= names
    assert await db.fetch("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    assert {"clients_name_trgm", "clients_email_trgm", "clients_phone_digits_trgm"} <= names
    async with db.transaction():
        await db.fetch("SET LOCAL enable_seqscan = off")
        plan = await db.fetch(
            "EXPLAIN SELECT id FROM clients WHERE lower(email) LIKE {} "
            "OR regexp_replace(phone, '[^0-9]', '', 'g') LIKE {}",
            "%ejemplo%",
            "%1512345%",
        )
    text = "\n".join(r["QUERY PLAN"] for r in plan)
    assert "clients_email_trgm" in text and "clients_phone_digits_trgm" in text


# --- saved views --------------------------------------------------------------------------------


async def save(client, name: str, query: str, *, share: str = "private"):
    data = {"name": name, "query": query, "share": share}
    return await post_form(client, "/staff/clients/views", data, page="/staff/clients")


async def test_a_saved_view_is_listed_above_the_table_and_reopens_its_query(client, personas, book):
    await sign_in(client, personas["compliance"])
    r = await save(client, "German speakers", "language=de&sort=name&dir=asc&after=zzz&after_id=1")
    assert r.status_code == 303
    page = await client.get("/staff/clients")
    m = re.search(r'<a href="/staff/clients\?([^"]+)"[^>]*>German speakers</a>', page.text)
    assert m, page.text
    query = m.group(1).replace("&amp;", "&")
    assert "after" not in query  # stored without the page cursor
    assert await listed(client, query) == [book["anna"], book["zoe"]]
    assert await AuditEvent.count().where(AuditEvent.action == "clients.view_saved") == 1


async def test_a_desk_view_is_seen_by_the_desk_and_by_nobody_else(client, personas, book):
    desk = await Desk.select(Desk.id).where(Desk.name == "Persona desk").first()
    teammate = await make_staff("teammate", ["sales"])
    await DeskMember(desk=desk["id"], staff=teammate.id).save()
    stranger = await make_staff("stranger", ["sales"])
    await DeskMember(desk=book["berlin"], staff=stranger.id).save()
    await sign_in(client, personas["sales"])
    page = (await client.get("/staff/clients")).text
    assert '<option value="private" selected>Only me</option>' in page
    assert f'<option value="desk:{desk["id"]}">Desk Persona desk</option>' in page
    assert 'value="all"' not in page  # a desk-scoped agent cannot share beyond their desks
    await save(client, "Private pipeline", "stage=lead")
    assert (await save(client, "Team funded", "stage=funded", share=f"desk:{desk['id']}")).status_code == 303
    view = await SavedView.select().where(SavedView.name == "Team funded").first()
    assert (view["scope"], view["desk"]) == ("desk", desk["id"])

    await sign_in(client, teammate)
    page = (await client.get("/staff/clients")).text
    assert "Team funded" in page and "Private pipeline" not in page
    r = await post_form(client, f"/staff/clients/views/{view['id']}/delete", {}, page="/staff/clients")
    assert r.status_code == 404 and await SavedView.count() == 2  # only its owner deletes it
    for other in (stranger, personas["compliance"]):
        await sign_in(client, other)
        assert "Team funded" not in (await client.get("/staff/clients")).text

    await DeskMember.update({DeskMember.active: False}).where(DeskMember.staff == teammate.id)
    await sign_in(client, teammate)
    assert "Team funded" not in (await client.get("/staff/clients")).text  # left the desk, lost the view

    await sign_in(client, personas["sales"])
    r = await post_form(client, f"/staff/clients/views/{view['id']}/delete", {}, page="/staff/clients")
    assert r.status_code == 303 and await SavedView.count() == 1


async def test_an_agent_cannot_share_with_everyone_or_a_desk_they_do_not_sit_on(client, personas, book):
    await sign_in(client, personas["sales"])
    for share in ("all", f"desk:{book['berlin']}", "desk:x", "everyone"):
        r = await save(client, "Mine", "stage=lead", share=share)
        assert r.status_code == 422, share
        assert "only with yourself or a desk you sit on" in r.text
        assert 'value="Mine"' in r.text  # the name typed is kept
    assert await SavedView.count() == 0


async def test_staff_across_desks_share_with_every_colleague(client, personas, book):
    await sign_in(client, personas["compliance"])
    assert (await save(client, "All funded", "stage=funded", share="all")).status_code == 303
    for viewer in ("sales", "finance", "admin"):
        await sign_in(client, personas[viewer])
        page = (await client.get("/staff/clients")).text
        assert "All funded" in page and "everyone · Compliance" in page, viewer


async def test_a_view_without_a_name_is_refused_with_the_reason(client, personas, book):
    await sign_in(client, personas["compliance"])
    r = await save(client, "   ", "stage=funded")
    assert r.status_code == 422 and "Give the view a name." in r.text
    assert ids_in(r.text) == [book["carlos"]] and await SavedView.count() == 0


async def test_the_client_page_shows_the_sanctions_status(client, personas):
    await sign_in(client, personas["compliance"])
    page = (await client.get(f"/staff/clients/{personas['client_a'].id}")).text
    assert '<span id="sanctions-badge">' in page and "Sanctions: not screened yet" in page
