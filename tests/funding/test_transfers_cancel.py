"""A client cancels their own transfer to another client while it awaits approval: the hold goes
back to their wallet once (a double click releases nothing more), a decided transfer stays decided,
nobody else may cancel it, and against finance approving at the same moment exactly one wins."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from app.core import db
from app.core.audit import Actor
from app.core.errors import NotFound
from app.funding import client_transfers
from app.funding.amounts import AlreadySettled
from tests.conftest import csrf_token, post_form
from tests.funding.support import ledger_totals
from tests.funding.transfer_support import client_actor, fund, key, new_client, verified, wallet
from tests.personas import principal_of, sign_in

HX = {"HX-Request": "true"}


async def awaiting(sender, recipient, amount: str = "100") -> dict:
    return await client_transfers.request(
        client_actor(sender.id), sender.id, "USD", Decimal(amount), recipient.email, str(recipient.id), key()
    )


async def pair() -> tuple:
    sender, recipient = await new_client(), await new_client(level=1)
    await fund(sender.id, Decimal(500))
    return sender, recipient


def officer(persona) -> tuple:
    return principal_of(persona), Actor("staff", str(persona.id), persona.email)


async def releases_of(transfer_id: int) -> int:
    row = await db.fetchrow(
        "SELECT count(*) AS n FROM funding_transactions WHERE idempotency_key = $1",
        f"transfer:{transfer_id}:release",
    )
    assert row is not None
    return int(row["n"])


async def test_cancelling_releases_the_hold_and_a_second_cancel_releases_nothing_more(personas):
    sender, recipient = await pair()
    t = await awaiting(sender, recipient)
    assert (await wallet(sender.id)).held == Decimal(100)
    done = await client_transfers.cancel(principal_of(sender), t["id"], client_actor(sender.id))
    assert done["status"] == "cancelled" and done["done_at"] is not None
    w = await wallet(sender.id)
    assert (w.available, w.held) == (Decimal(500), 0)
    again = await client_transfers.cancel(principal_of(sender), t["id"], client_actor(sender.id))
    assert again["status"] == "cancelled" and again["replayed"]
    assert await releases_of(t["id"]) == 1
    assert (await wallet(sender.id)).available == Decimal(500)
    assert (await wallet(recipient.id)).available == 0
    actions = await db.fetch(
        "SELECT action FROM audit_events WHERE subject_type = 'funding_transfer' AND subject_id = {} ORDER BY seq",
        str(t["id"]),
    )
    assert [a["action"] for a in actions] == ["funding.transfer.requested", "funding.transfer.cancelled"]
    finance, actor = officer(personas["finance"])
    with pytest.raises(AlreadySettled, match="already cancelled"):
        await client_transfers.approve(finance, t["id"], actor)
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}


async def test_a_transfer_finance_already_approved_or_rejected_cannot_be_cancelled(personas):
    sender, recipient = await pair()
    approved, rejected = await awaiting(sender, recipient), await awaiting(sender, recipient)
    finance, actor = officer(personas["finance"])
    await client_transfers.approve(finance, approved["id"], actor)
    await client_transfers.reject(finance, rejected["id"], "Unknown recipient", actor)
    for t, word in ((approved, "approved"), (rejected, "rejected")):
        with pytest.raises(AlreadySettled, match=f"already {word}: it can no longer be cancelled"):
            await client_transfers.cancel(principal_of(sender), t["id"], client_actor(sender.id))
    assert await releases_of(approved["id"]) == 0 and await releases_of(rejected["id"]) == 1
    assert (await wallet(sender.id)).available == Decimal(400)
    assert (await wallet(recipient.id)).available == Decimal(100)


async def test_only_the_sender_or_finance_may_cancel_and_everyone_else_is_told_it_does_not_exist(personas):
    sender, recipient = await pair()
    t = await awaiting(sender, recipient)
    outsider = await new_client()
    for who in (recipient, outsider, personas["sales"]):
        with pytest.raises(NotFound):
            await client_transfers.cancel(principal_of(who), t["id"], client_actor(who.id))
    with pytest.raises(NotFound):
        await client_transfers.cancel(principal_of(sender), 10**9, client_actor(sender.id))
    assert (await wallet(sender.id)).held == Decimal(100)
    finance, actor = officer(personas["finance"])
    done = await client_transfers.cancel(finance, t["id"], actor)
    assert (done["status"], done["decided_by"]) == ("cancelled", personas["finance"].email)
    assert "finance team" in done["message"]
    assert (await wallet(sender.id)).available == Decimal(500)


async def test_cancel_racing_an_approval_ends_in_exactly_one_of_them_with_a_balanced_ledger(personas):
    finance, actor = officer(personas["finance"])
    for _ in range(3):
        sender, recipient = await pair()
        t = await awaiting(sender, recipient)
        outcomes = await asyncio.gather(
            client_transfers.cancel(principal_of(sender), t["id"], client_actor(sender.id)),
            client_transfers.approve(finance, t["id"], actor),
            return_exceptions=True,
        )
        won = [o for o in outcomes if isinstance(o, dict)]
        lost = [o for o in outcomes if not isinstance(o, dict)]
        assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], AlreadySettled), outcomes
        status = won[0]["status"]
        assert (await db.fetchrow("SELECT status FROM funding_transfers WHERE id = $1", t["id"]))[
            "status"
        ] == status
        sent = Decimal(0) if status == "cancelled" else Decimal(100)
        w = await wallet(sender.id)
        assert (w.available, w.held) == (Decimal(500) - sent, 0)
        assert (await wallet(recipient.id)).available == sent
        assert await releases_of(t["id"]) == (1 if status == "cancelled" else 0)
    assert await ledger_totals() == {"unbalanced": 0, "stale": 0, "negative": 0}


# --- the portal ------------------------------------------------------------------------------------


@pytest.fixture
async def sent(personas) -> dict:
    a, b = personas["client_a"], personas["client_b"]
    await verified(a, 2)
    await verified(b, 1)
    await fund(a.id, Decimal(500))
    return await awaiting(a, b)


@pytest.mark.parametrize("htmx", [False, True])
async def test_the_sender_cancels_from_the_transfer_page(client, personas, sent, htmx: bool):
    await sign_in(client, personas["client_a"])
    url = f"/portal/transfers/{sent['id']}"
    page = await client.get(url, headers=HX if htmx else {})
    assert f'hx-post="{url}/cancel"' in page.text and "hx-confirm=" in page.text
    r = await post_form(client, url + "/cancel", {}, page=url, htmx=htmx)
    if htmx:
        assert r.status_code == 200 and "<html" not in r.text
        assert "Transfer cancelled" in r.text and 'data-status="cancelled"' in r.text
        assert "/cancel" not in r.text
    else:
        assert (r.status_code, r.headers["location"]) == (303, url)
        shown = await client.get(url)
        assert 'data-status="cancelled"' in shown.text and "/cancel" not in shown.text
    assert (await wallet(personas["client_a"].id)).available == Decimal(500)


@pytest.mark.parametrize("htmx", [False, True])
async def test_cancelling_an_approved_transfer_shows_why_not(client, personas, sent, htmx: bool):
    await sign_in(client, personas["client_a"])
    url = f"/portal/transfers/{sent['id']}"
    token = await csrf_token(client, url)  # the page as it was, with its button
    finance, actor = officer(personas["finance"])
    await client_transfers.approve(finance, sent["id"], actor)
    r = await client.post(url + "/cancel", data={"_csrf_token": token}, headers=HX if htmx else {})
    assert r.status_code == 422 and "already approved: it can no longer be cancelled" in r.text
    assert ("<html" in r.text) is not htmx
    assert (await wallet(personas["client_b"].id)).available == Decimal(100)


async def test_cancel_needs_the_csrf_token_and_is_404_to_another_client(client, personas, sent):
    await sign_in(client, personas["client_a"])
    url = f"/portal/transfers/{sent['id']}/cancel"
    assert (await client.post(url, data={})).status_code == 403
    assert (await client.post(url, data={}, headers=HX)).status_code == 403
    await sign_in(client, personas["client_b"])  # the recipient
    token = await csrf_token(client, "/portal/transfer")
    assert (await client.post(url, data={"_csrf_token": token})).status_code == 404
    assert (await client.post(url, data={"_csrf_token": token}, headers=HX)).status_code == 404
    assert (await wallet(personas["client_a"].id)).held == Decimal(100)
