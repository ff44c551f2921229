"""Client tags: short labels staff put on a client, stored lower-cased so case never duplicates
one, audited and on the timeline; a panel on the client page, a filter and a column on the list.

Whoever may see the client may tag it; everyone else gets the 404 an unknown client gets.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from app.clients import tags
from app.clients.filters import ClientFilters
from app.clients.tables import ClientTag
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.core.live import hub
from app.core.tables import AuditEvent
from app.workbench.tables import TimelineEvent
from tests.conftest import post_form
from tests.personas import principal_of, sign_in

ROW_ID = re.compile(r'<tr class="clickable"><td class="num">(\d+)</td>')


def ids_in(html: str) -> list[int]:
    return [int(i) for i in ROW_ID.findall(html)]


as_principal = principal_of  # the shared persona-to-Principal helper


@pytest.fixture
def cast(personas):
    return {name: as_principal(p) for name, p in personas.items() if p.kind != "anonymous"}


def act(p: Principal):
    return p.actor("127.0.0.1", "pytest")


async def stored_tags(client_id: int) -> list[str]:
    rows = await ClientTag.select(ClientTag.tag).where(ClientTag.client == client_id).order_by(ClientTag.tag)
    return [r["tag"] for r in rows]


async def audit_rows(client_id: int, action: str) -> list[dict]:
    return await AuditEvent.select(AuditEvent.after, AuditEvent.before, AuditEvent.actor_id).where(
        (AuditEvent.subject_type == "client")
        & (AuditEvent.subject_id == str(client_id))
        & (AuditEvent.action == action)
    )


# --- the service --------------------------------------------------------------------------------


async def test_it_stores_a_tag_normalised_and_audits_it_with_a_timeline_event(personas, cast):
    a = personas["client_a"].id
    stored = await tags.add_tag(cast["sales"], a, "  VIP   Gold ", act(cast["sales"]))
    assert stored == "vip gold"
    rows = await tags.tags_for(cast["sales"], a)
    assert [(r["tag"], r["created_by_name"]) for r in rows] == [("vip gold", "Sales")]
    audited = await audit_rows(a, "client.tag_added")
    assert len(audited) == 1 and audited[0]["actor_id"] == str(personas["sales"].id)
    assert '"vip gold"' in str(audited[0]["after"])
    event = (
        await TimelineEvent.select()
        .where((TimelineEvent.client == a) & (TimelineEvent.kind == "tag"))
        .first()
    )
    assert event is not None and "Tag added: vip gold" in event["summary"]


async def test_it_refuses_the_same_tag_in_another_case_and_writes_nothing_more(personas, cast):
    a = personas["client_a"].id
    await tags.add_tag(cast["admin"], a, "vip", act(cast["admin"]))
    with pytest.raises(FormErrors) as refused:
        await tags.add_tag(cast["admin"], a, "VIP", act(cast["admin"]))
    assert refused.value.errors == {"tag": "This client already has the tag “vip”."}
    assert await stored_tags(a) == ["vip"]
    assert len(await audit_rows(a, "client.tag_added")) == 1
    assert await TimelineEvent.count().where(TimelineEvent.kind == "tag") == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("   ", "Enter a tag."),
        ("x" * 41, "A tag has at most 40 characters."),
        ("<b>", "A tag may contain only letters, digits, spaces, hyphens (-) and underscores (_)."),
        ("high;value", "A tag may contain only letters, digits, spaces, hyphens (-) and underscores (_)."),
    ],
)
async def test_it_refuses_a_bad_tag_with_a_clear_message(personas, cast, raw, message):
    a = personas["client_a"].id
    with pytest.raises(FormErrors) as refused:
        await tags.add_tag(cast["admin"], a, raw, act(cast["admin"]))
    assert refused.value.errors == {"tag": message}
    assert await stored_tags(a) == []
    assert await audit_rows(a, "client.tag_added") == []


async def test_it_accepts_letters_of_any_script_digits_hyphens_and_underscores(personas, cast):
    a = personas["client_a"].id
    for raw in ("Zahlungsverzug-2026", "ÉLITE_club", "x" * 40):
        await tags.add_tag(cast["admin"], a, raw, act(cast["admin"]))
    assert await stored_tags(a) == sorted(["zahlungsverzug-2026", "élite_club", "x" * 40])


async def test_it_removes_a_tag_whatever_its_case_audited_and_on_the_timeline(personas, cast):
    a = personas["client_a"].id
    await tags.add_tag(cast["admin"], a, "callback", act(cast["admin"]))
    assert await tags.remove_tag(cast["sales"], a, "CallBack", act(cast["sales"])) == "callback"
    assert await stored_tags(a) == []
    removed = await audit_rows(a, "client.tag_removed")
    assert len(removed) == 1 and '"callback"' in str(removed[0]["before"])
    summaries = [e["summary"] for e in await TimelineEvent.select().where(TimelineEvent.kind == "tag")]
    assert any(s.startswith("Tag removed: callback") for s in summaries)
    with pytest.raises(FormErrors) as refused:
        await tags.remove_tag(cast["sales"], a, "callback", act(cast["sales"]))
    assert "has no tag “callback”" in refused.value.errors["tag"]
    assert len(await audit_rows(a, "client.tag_removed")) == 1


async def test_a_desk_agent_and_a_client_get_404_for_a_client_they_may_not_see(personas, cast):
    a, b = personas["client_a"].id, personas["client_b"].id
    await tags.add_tag(cast["admin"], b, "whale", act(cast["admin"]))
    for who, client_id in (("sales", b), ("client_a", a), ("client_b", b)):
        with pytest.raises(NotFound):
            await tags.tags_for(cast[who], client_id)
        with pytest.raises(NotFound):
            await tags.add_tag(cast[who], client_id, "mine", act(cast[who]))
        with pytest.raises(NotFound):
            await tags.add_tag(cast[who], client_id, "<not even valid>", act(cast[who]))
        with pytest.raises(NotFound):
            await tags.remove_tag(cast[who], client_id, "whale", act(cast[who]))
    assert await stored_tags(b) == ["whale"] and await stored_tags(a) == []
    assert (
        len(await audit_rows(b, "client.tag_added")) == 1 and await audit_rows(b, "client.tag_removed") == []
    )


async def test_a_tag_change_is_published_to_staff_once_it_commits(client, personas, cast):
    a = personas["client_a"].id
    queue = hub.subscribe({"staff:all"})
    try:
        await tags.add_tag(cast["admin"], a, "live", act(cast["admin"]))
        await tags.remove_tag(cast["admin"], a, "live", act(cast["admin"]))
        got = [await asyncio.wait_for(queue.get(), timeout=5) for _ in range(2)]
    finally:
        hub.unsubscribe(queue)
    assert [(e.type, e.ids) for e in got] == [("client.tags_changed", {"client_id": a})] * 2


async def test_suggestions_come_only_from_clients_the_viewer_may_see(personas, cast):
    await tags.add_tag(cast["admin"], personas["client_a"].id, "shared", act(cast["admin"]))
    await tags.add_tag(cast["admin"], personas["client_b"].id, "shared", act(cast["admin"]))
    await tags.add_tag(cast["admin"], personas["client_b"].id, "secret plan", act(cast["admin"]))
    assert await tags.suggestions_for(cast["admin"]) == ["shared", "secret plan"]  # most used first
    assert await tags.suggestions_for(cast["sales"]) == ["shared"]


# --- the panel on the client page ---------------------------------------------------------------


async def test_the_client_page_loads_the_tags_panel_as_a_fragment(client, personas, cast):
    a = personas["client_a"].id
    await tags.add_tag(cast["admin"], a, "vip", act(cast["admin"]))
    await sign_in(client, personas["sales"])
    page = await client.get(f"/staff/clients/{a}")
    assert f'hx-get="/staff/clients/{a}/tags"' in page.text
    fragment = await client.get(f"/staff/clients/{a}/tags", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert fragment.text.lstrip().startswith('<div class="card" id="tags-panel">')
    assert ">vip</span>" in fragment.text and 'aria-label="Remove tag vip"' in fragment.text
    whole = await client.get(f"/staff/clients/{a}/tags")
    assert whole.status_code == 200 and "<html" in whole.text and ">vip</span>" in whole.text
    assert 'id="stage-panel"' in whole.text  # the rest of the client page around it


async def test_adding_and_removing_over_htmx_swaps_the_panel(client, personas):
    a = personas["client_a"].id
    await sign_in(client, personas["sales"])
    page = f"/staff/clients/{a}/tags"
    r = await post_form(client, f"/staff/clients/{a}/tags", {"tag": "Hot Lead"}, page=page, htmx=True)
    assert r.status_code == 200 and "<html" not in r.text
    assert "Tag “hot lead” added." in r.text and ">hot lead</span>" in r.text
    r = await post_form(client, f"/staff/clients/{a}/tags", {"tag": "HOT lead"}, page=page, htmx=True)
    assert r.status_code == 422 and "already has the tag “hot lead”" in r.text
    assert 'value="HOT lead"' in r.text  # the input is kept
    r = await post_form(client, f"/staff/clients/{a}/tags/remove", {"tag": "hot lead"}, page=page, htmx=True)
    assert r.status_code == 200 and "Tag “hot lead” removed." in r.text and ">hot lead</span>" not in r.text


async def test_adding_without_htmx_redirects_or_shows_the_page_with_the_error(client, personas):
    a = personas["client_a"].id
    await sign_in(client, personas["sales"])
    page = f"/staff/clients/{a}/tags"
    r = await post_form(client, f"/staff/clients/{a}/tags", {"tag": "retention"}, page=page)
    assert r.status_code == 303 and r.headers["location"] == f"/staff/clients/{a}"
    r = await post_form(client, f"/staff/clients/{a}/tags", {"tag": "no/slashes"}, page=page)
    assert r.status_code == 422 and "<html" in r.text
    assert "A tag may contain only letters" in r.text and 'value="no/slashes"' in r.text
    r = await post_form(client, f"/staff/clients/{a}/tags/remove", {"tag": "retention"}, page=page)
    assert r.status_code == 303
    assert await stored_tags(a) == []


async def test_a_desk_agent_cannot_reach_the_panel_of_a_client_outside_their_desk(client, personas, cast):
    b = personas["client_b"].id
    await tags.add_tag(cast["admin"], b, "whale", act(cast["admin"]))
    await sign_in(client, personas["sales"])
    for headers in ({}, {"HX-Request": "true"}):
        r = await client.get(f"/staff/clients/{b}/tags", headers=headers)
        assert r.status_code == 404 and "whale" not in r.text
    own = f"/staff/clients/{personas['client_a'].id}/tags"  # a page of theirs, for a CSRF token
    for htmx in (False, True):
        r = await post_form(client, f"/staff/clients/{b}/tags", {"tag": "mine"}, page=own, htmx=htmx)
        assert r.status_code == 404
        r = await post_form(client, f"/staff/clients/{b}/tags/remove", {"tag": "whale"}, page=own, htmx=htmx)
        assert r.status_code == 404
    assert await stored_tags(b) == ["whale"]


# --- the list: filter and column ----------------------------------------------------------------


def test_the_filter_parses_a_tag_strictly_and_keeps_it_in_the_url():
    f = ClientFilters.parse({"tag": ["  Big   Fish "]})
    assert f.tag == "big fish" and f.notes == ()
    assert "tag=big+fish" in f.query()
    bad = ClientFilters.parse({"tag": ["<script>"]})
    assert bad.tag == "" and bad.notes == (
        "Tag “<script>” ignored: A tag may contain only letters, digits, spaces, hyphens (-) and underscores (_).",
    )
    assert "tag" not in bad.query()


async def test_the_list_filters_by_tag_within_the_viewers_scope(client, personas, cast):
    a, b, ib = personas["client_a"].id, personas["client_b"].id, personas["ib"].id
    for client_id in (a, b, ib):
        await tags.add_tag(cast["admin"], client_id, "vip", act(cast["admin"]))
    await tags.add_tag(cast["admin"], personas["sub_ib"].id, "vip-not", act(cast["admin"]))
    await sign_in(client, personas["admin"])
    for headers in ({}, {"HX-Request": "true"}):
        r = await client.get("/staff/clients?tag=VIP&per=1", headers=headers)
        assert len(ids_in(r.text)) == 1
        nxt = re.search(r'rel="next" href="([^"]+)"', r.text)
        assert nxt and "tag=vip" in nxt.group(1)  # the next page keeps the filter
    r = await client.get("/staff/clients?tag=vip")
    assert sorted(ids_in(r.text)) == sorted([a, b, ib])
    assert '<option value="vip">' in r.text  # the tag picker offers tags in use
    everyone = ids_in((await client.get("/staff/clients")).text)
    r = await client.get("/staff/clients?tag=%3Cb%3E")
    assert "ignored" in r.text and ids_in(r.text) == everyone
    await sign_in(client, personas["sales"])
    r = await client.get("/staff/clients?tag=vip")
    assert ids_in(r.text) == [a]


async def test_the_tags_column_shows_each_rows_tags(client, personas, cast):
    a = personas["client_a"].id
    for t in ("zeta", "alpha"):
        await tags.add_tag(cast["admin"], a, t, act(cast["admin"]))
    await sign_in(client, personas["admin"])
    r = await client.get("/staff/clients?cols=tags")
    assert '<th data-col="tags">Tags</th>' in r.text
    assert re.search(
        r'<td class="tags-cell"><span class="badge badge-grey">alpha</span> <span class="badge badge-grey">zeta</span>',
        r.text,
    )
    default = await client.get("/staff/clients")
    assert '<th data-col="tags">' not in default.text and ">alpha<" not in default.text
