"""Client B never sees client A: not in pages, not in fragments, not on the live channel.

What a client may not see answers exactly like what does not exist (404, the same page), so an
id in a URL is no oracle. Staff see every client.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.clients import services
from app.clients.tables import ClientMessage
from app.core import live
from app.core.auth import sessions
from app.core.auth.middleware import principal_from_row
from app.core.auth.principal import Principal
from tests.personas import Persona, make_staff, session_for, sign_in


async def principal_of(p: Persona) -> Principal:
    """The Principal the app itself builds for this persona's session (as for a live socket)."""
    row = await sessions.lookup(await session_for(p), timedelta(minutes=30))
    assert row is not None
    principal = principal_from_row(row)
    assert isinstance(principal, Principal)
    return principal


@pytest.fixture
async def letters(app, personas) -> dict[str, int]:
    """A message from the admin to each client; `app` so the live templates are configured."""
    admin = await principal_of(personas["admin"])
    actor = admin.actor("127.0.0.1", "pytest")
    return {
        "a": await services.send_message(
            admin, personas["client_a"].id, "Margin call for Alice", "Secret body for A.", actor
        ),
        "b": await services.send_message(admin, personas["client_b"].id, "Welcome Bob", "Body for B.", actor),
    }


async def test_client_b_gets_404_for_client_a_message_exactly_as_for_a_missing_one(client, personas, letters):
    await sign_in(client, personas["client_b"])
    theirs = await client.get(f"/portal/messages/{letters['a']}")
    missing = await client.get(f"/portal/messages/{letters['a'] + 1000}")
    assert theirs.status_code == 404
    assert missing.status_code == 404
    assert theirs.text == missing.text
    assert "Margin call" not in theirs.text and "Secret body" not in theirs.text
    assert (
        await ClientMessage.count().where(ClientMessage.read_at.is_not_null()) == 0
    )  # B's look did not mark it read


async def test_client_b_inbox_lists_only_their_own_messages(client, personas, letters):
    await sign_in(client, personas["client_b"])
    for headers in ({}, {"HX-Request": "true"}):
        r = await client.get("/portal/messages", headers=headers)
        assert r.status_code == 200
        assert "Welcome Bob" in r.text
        assert "Margin call" not in r.text
        assert f"/portal/messages/{letters['a']}" not in r.text
    r = await client.get("/portal")
    assert 'id="tile-unread">1<' in r.text


async def test_client_a_reads_their_own_message(client, personas, letters):
    await sign_in(client, personas["client_a"])
    r = await client.get(f"/portal/messages/{letters['a']}")
    assert r.status_code == 200 and "Secret body for A." in r.text


async def test_client_b_cannot_reach_client_a_through_the_staff_console(client, personas, letters):
    await sign_in(client, personas["client_b"])
    for url in (f"/staff/clients/{personas['client_a'].id}", "/staff/clients"):
        r = await client.get(url)
        assert r.status_code == 403
        assert "Margin call" not in r.text and personas["client_a"].email not in r.text


async def test_staff_see_both_clients_and_their_messages(client, personas, letters):
    for desk in ("admin", "sales", "compliance"):
        await sign_in(client, personas[desk])
        a = await client.get(f"/staff/clients/{personas['client_a'].id}")
        b = await client.get(f"/staff/clients/{personas['client_b'].id}")
        if desk == "sales":  # desk scoping: client_b is on none of sales' desks
            assert a.status_code == 200 and b.status_code == 404
            assert "Margin call for Alice" in a.text and "Welcome Bob" not in b.text
            listing = await client.get("/staff/clients")
            assert personas["client_a"].email in listing.text
            assert personas["client_b"].email not in listing.text
            continue
        assert a.status_code == b.status_code == 200, desk
        assert "Margin call for Alice" in a.text and "Welcome Bob" not in a.text
        assert "Welcome Bob" in b.text and "Margin call" not in b.text
        listing = await client.get("/staff/clients")
        assert personas["client_a"].email in listing.text and personas["client_b"].email in listing.text


async def test_services_refuse_client_b_the_data_of_client_a(personas, letters):
    b = await principal_of(personas["client_b"])
    a_id = personas["client_a"].id
    for call in (
        services.get_client_for(b, a_id),
        services.messages_for(b, a_id),
        services.message_for(b, letters["a"]),
        services.mark_read(b, letters["a"]),
        services.list_clients_for(b),
    ):
        with pytest.raises(services.NotFound):
            await call


# --- the live channel ---------------------------------------------------------------------------


def events_for_a(personas, letters) -> list[live.Event]:
    topic = f"client:{personas['client_a'].id}"
    return [
        live.Event(topic, "message.created", {"message_id": letters["a"]}),
        live.Event(topic, "message.read", {"message_id": letters["a"]}),
        live.Event(topic, "client.verified", {"client_id": personas["client_a"].id}),
    ]


async def test_a_live_event_for_client_a_renders_nothing_for_client_b(personas, letters):
    b = await principal_of(personas["client_b"])
    for event in events_for_a(personas, letters):
        assert await live.render_for(b, event) == [], event.type


async def test_a_live_event_for_client_a_renders_for_client_a(personas, letters):
    a = await principal_of(personas["client_a"])
    created, read, verified = events_for_a(personas, letters)
    html = "".join(await live.render_for(a, created))
    assert "Margin call for Alice" in html and 'id="unread-counter"' in html
    assert 'id="tile-unread"' in "".join(await live.render_for(a, read))
    assert 'id="verify-banner"' in "".join(await live.render_for(a, verified))


async def test_a_live_event_for_a_client_renders_no_client_partial_for_staff(personas, letters):
    admin = await principal_of(personas["admin"])
    for event in events_for_a(personas, letters):
        assert await live.render_for(admin, event) == [], event.type


async def test_live_topics_of_a_client_are_their_own(personas):
    a, b = await principal_of(personas["client_a"]), await principal_of(personas["client_b"])
    assert f"client:{personas['client_b'].id}" in b.topics()
    assert f"client:{personas['client_a'].id}" not in b.topics()
    assert not a.topics() & b.topics()
    for p in (a, b):
        assert not [t for t in p.topics() if t.startswith(("ib:", "staff:"))]
        assert p.topics() == {f"session:{p.session_id}", f"client:{p.id}"}


async def test_live_topics_of_partners_are_their_own_partner_channel(personas):
    ib, sub = await principal_of(personas["ib"]), await principal_of(personas["sub_ib"])
    assert f"ib:{personas['ib'].partner_id}" in ib.topics()
    assert f"ib:{personas['sub_ib'].partner_id}" in sub.topics()
    assert f"ib:{personas['ib'].partner_id}" not in sub.topics()  # a sub-IB does not listen to the master IB
    assert f"ib:{personas['sub_ib'].partner_id}" not in ib.topics()


async def test_live_topics_of_staff_carry_only_their_own_roles(personas):
    for desk in ("admin", "compliance", "finance", "sales", "dealing"):
        p = await principal_of(personas[desk])
        roles = {t for t in p.topics() if t.startswith("staff:role:")}
        assert roles == {f"staff:role:{desk}"}
        assert f"staff:user:{p.id}" in p.topics()
        assert not [t for t in p.topics() if t.startswith(("client:", "ib:"))]
    both = await principal_of(await make_staff("deskmix", ["sales", "compliance"]))
    assert {t for t in both.topics() if t.startswith("staff:role:")} == {
        "staff:role:sales",
        "staff:role:compliance",
    }


async def test_the_header_counter_loads_for_pages_that_do_not_compute_it(client, personas):
    from app.clients import services
    from app.core.audit import Actor
    from app.core.auth.principal import Principal

    a = personas["client_a"]
    sales = Principal(
        kind="staff",
        id=personas["sales"].id,
        email="sales@staff.test",
        name="S",
        session_id=0,
        mfa_passed=True,
        totp_enabled=True,
        roles=frozenset({"sales"}),
    )
    await services.send_message(sales, a.id, "Hello", "Body", Actor.system("test"))
    await sign_in(client, a)
    page = await client.get("/portal/settings")
    assert 'hx-get="/portal/unread"' in page.text
    r = await client.get("/portal/unread", headers={"HX-Request": "true"})
    assert r.status_code == 200 and 'id="unread-counter"' in r.text and ">1<" in r.text
    await sign_in(client, personas["client_b"])
    r = await client.get("/portal/unread", headers={"HX-Request": "true"})
    assert ">1<" not in r.text


async def test_the_portal_home_shows_a_new_message_and_its_reading_at_once_despite_the_summary_cache(
    client, personas
):
    from app.core.audit import Actor

    a = personas["client_a"]
    sales = Principal(
        kind="staff",
        id=personas["sales"].id,
        email="sales@staff.test",
        name="S",
        session_id=0,
        mfa_passed=True,
        totp_enabled=True,
        roles=frozenset({"sales"}),
    )
    await sign_in(client, a)
    assert 'id="tile-unread">0<' in (await client.get("/portal")).text  # now remembered
    message_id = await services.send_message(sales, a.id, "Margin call", "Body", Actor.system("test"))
    assert 'id="tile-unread">1<' in (await client.get("/portal")).text
    assert (await client.get(f"/portal/messages/{message_id}")).status_code == 200  # reading marks it read
    assert 'id="tile-unread">0<' in (await client.get("/portal")).text


async def test_a_shared_cache_forgets_when_another_process_says_so(database):
    """The notification other processes send on commit reaches this process's listener."""
    import asyncio

    from app.core import cache, db
    from app.core.live import Hub

    demo: cache.SharedCache[int] = cache.SharedCache("test_demo", ttl=60)
    hub = live.hub
    await hub.start()
    try:
        loads = 0

        async def load() -> int:
            nonlocal loads
            loads += 1
            return loads

        assert await demo.get(7, load) == 1
        assert await demo.get(7, load) == 1  # remembered
        async with db.transaction():
            await live.publish("cache:test_demo", "cache.forget", key=7)  # as another process would
        for _ in range(50):
            await asyncio.sleep(0.05)
            if await demo.get(7, load) == 2:
                break
        assert loads == 2
        assert isinstance(hub, Hub)
    finally:
        await hub.stop()
