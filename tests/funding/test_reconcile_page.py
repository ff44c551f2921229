"""Funding › Reconciliation for finance: runs, one run's differences with the accounts named, and
"run now" (inline for a small book, the worker for a large one), audited with who pressed it."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from app.core import db, jobs
from app.funding import jobs as funding_jobs
from app.funding import reconcile, reconcile_runs
from tests.conftest import post_form
from tests.funding.support import funded_wallet
from tests.personas import principal_of, sign_in

PAGE = "/staff/funding/reconciliation"


@pytest.fixture(autouse=True)
def only_ledger_checks(monkeypatch):
    """External checks (MT5, providers) need their servers; these tests are about the page."""
    monkeypatch.setattr(reconcile, "_external", {})


async def _runs() -> list[dict]:
    return await db.fetch("SELECT * FROM funding_reconciliation_runs ORDER BY id")


async def test_finance_runs_a_reconciliation_and_sees_the_result_in_place(client, personas):
    await funded_wallet(Decimal(100))
    await sign_in(client, personas["finance"])
    empty = await client.get(PAGE)
    assert empty.status_code == 200 and 'id="no-runs"' in empty.text and 'id="run-now"' in empty.text
    r = await post_form(client, f"{PAGE}/run", {}, page=PAGE, htmx=True)
    assert r.status_code == 200 and "<html" not in r.text.lower()
    (run,) = await _runs()
    assert run["status"] == "ok" and run["triggered_by"] == personas["finance"].email
    assert f"Run #{run['id']} finished: no differences" in r.text and f'id="run-{run["id"]}"' in r.text
    assert "hx-trigger" not in r.text.split('id="reconcile-runs"')[1].split(">")[0]  # finished: no polling
    audit = await db.fetchrow(
        "SELECT actor_kind, actor_id, action FROM audit_events WHERE action = 'funding.reconciliation.run'"
    )
    assert audit is not None and (audit["actor_kind"], audit["actor_id"]) == (
        "staff",
        str(personas["finance"].id),
    )


async def test_without_htmx_run_now_redirects_to_the_finished_run(client, personas):
    await sign_in(client, personas["admin"])
    r = await post_form(client, f"{PAGE}/run", {}, page=PAGE)
    (run,) = await _runs()
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}/{run['id']}"
    page = await client.get(r.headers["location"])
    assert page.status_code == 200 and "<html" in page.text.lower() and 'id="no-differences"' in page.text


async def test_a_run_lists_every_difference_with_its_account_and_both_figures(client, personas):
    wallet = await funded_wallet(Decimal(100), client_id=personas["client_a"].id)
    await db.fetch("UPDATE funding_ledger_accounts SET balance = 130 WHERE id = {}", wallet)
    run_id = await reconcile.run_reconciliation(principal_of(personas["finance"]).actor())
    await db.fetch(
        "UPDATE funding_reconciliation_runs SET differences = differences || {}::jsonb WHERE id = {}",
        json.dumps([{"check": "mt5", "account_id": 77, "login": 500123, "currency": "USD", "expected": "10",
                     "found": "12.5", "detail": "MT5 balance differs"}]),
        run_id,
    )  # fmt: skip
    await sign_in(client, personas["finance"])
    page = await client.get(f"{PAGE}/{run_id}")
    assert page.status_code == 200
    rows = page.text.split('<tr class="difference"')[1:]
    assert len(rows) == 2
    assert (
        f"#{wallet} client wallet of Client Client_A" in rows[0]
        and f'href="/staff/clients/{personas["client_a"].id}"' in rows[0]
    )
    assert "data-expected>100.00<" in rows[0] and "data-found>130.00<" in rows[0]
    assert "#77" in rows[1] and "login: 500123" in rows[1] and "data-found>12.50<" in rows[1]
    only = await client.get(f"{PAGE}/{run_id}?check=mt5", headers={"HX-Request": "true"})
    assert (
        only.status_code == 200
        and "<html" not in only.text.lower()
        and only.text.count('<tr class="difference"') == 1
    )
    listing = await client.get(PAGE, headers={"HX-Request": "true"})
    assert (
        "<html" not in listing.text.lower()
        and "Differences" in listing.text
        and "data-differences>2<" in listing.text
    )


async def test_a_second_press_while_a_run_is_going_starts_nothing(client, personas):
    await db.fetch(
        "INSERT INTO funding_reconciliation_runs (started_at, status, triggered_by) VALUES (now(), 'running', 'x')"
    )
    await sign_in(client, personas["finance"])
    r = await post_form(client, f"{PAGE}/run", {}, page=PAGE, htmx=True)
    assert r.status_code == 200 and "already in progress" in r.text
    assert 'hx-trigger="every 2s"' in r.text  # the list follows the running one
    assert len(await _runs()) == 1


async def test_a_run_that_died_long_ago_does_not_block_the_button(client, personas):
    await db.fetch(
        "INSERT INTO funding_reconciliation_runs (started_at, status, triggered_by) "
        "VALUES (now() - interval '1 day', 'running', 'x')"
    )
    await sign_in(client, personas["finance"])
    r = await post_form(client, f"{PAGE}/run", {}, page=PAGE, htmx=True)
    assert "finished" in r.text and "Interrupted" in r.text
    assert len(await _runs()) == 2


class _Queue:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    async def enqueue(self, function: str, **kwargs) -> None:
        self.sent.append((function, kwargs))

    async def disconnect(self) -> None:
        pass


async def test_a_large_book_goes_to_the_worker_and_the_list_waits_for_it(client, personas, monkeypatch):
    queue = _Queue()
    monkeypatch.setattr(jobs, "_queue", queue)
    monkeypatch.setattr(reconcile_runs, "INLINE_POSTINGS", 0)
    await funded_wallet(Decimal(5))
    await sign_in(client, personas["finance"])
    r = await post_form(client, f"{PAGE}/run", {}, page=PAGE, htmx=True)
    assert r.status_code == 200 and "Queued" in r.text
    assert (
        f'hx-get="{PAGE}?page=1&amp;after=0" hx-trigger="every 2s"' in r.text
    )  # follows the list until it runs
    assert await _runs() == []
    ((function, kwargs),) = queue.sent
    assert function == "funding_reconcile_now" and kwargs["key"] == "funding_reconcile_now"
    assert kwargs["timeout"] >= 600  # a large book takes minutes; the queue's default would kill it at 10 s
    audit = await db.fetchrow(
        "SELECT actor_id FROM audit_events WHERE action = 'funding.reconciliation.requested'"
    )
    assert audit is not None and audit["actor_id"] == str(personas["finance"].id)
    # The worker runs the job: the run records who asked.
    run_id = await funding_jobs.funding_reconcile_now(
        {}, requested_by=kwargs["requested_by"], requested_by_id=kwargs["requested_by_id"]
    )
    (run,) = await _runs()
    assert run["id"] == run_id and run["triggered_by"] == personas["finance"].email


async def test_the_list_keeps_waiting_for_a_queued_run_until_one_appears(client, personas):
    await sign_in(client, personas["finance"])
    plain = await client.get(PAGE, headers={"HX-Request": "true"})
    assert "hx-trigger" not in plain.text  # nothing is awaited
    waiting = await client.get(f"{PAGE}?after=0", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 2s"' in waiting.text  # queued before any run existed
    run_id = await reconcile.run_reconciliation(principal_of(personas["finance"]).actor())
    still = await client.get(f"{PAGE}?after={run_id}", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 2s"' in still.text and "waiting for the worker" in still.text
    done = await client.get(f"{PAGE}?after={run_id - 1}", headers={"HX-Request": "true"})
    assert "hx-trigger" not in done.text


@pytest.mark.parametrize("who", ["compliance", "dealing", "sales", "client_a"])
async def test_only_finance_may_see_or_run_reconciliation(client, personas, who):
    run_id = await reconcile.run_reconciliation(principal_of(personas["finance"]).actor())
    await sign_in(client, personas[who])
    for url in (PAGE, f"{PAGE}/{run_id}"):
        r = await client.get(url)
        assert r.status_code in (302, 303, 403), url
    token_page = "/portal/settings" if who == "client_a" else "/staff"
    r = await post_form(client, f"{PAGE}/run", {}, page=token_page)
    assert r.status_code in (302, 303, 403)
    assert len(await _runs()) == 1
    with pytest.raises(PermissionError):
        await reconcile_runs.run_now(principal_of(personas[who]), principal_of(personas[who]).actor())


async def test_an_unknown_run_is_not_found(client, personas):
    await sign_in(client, personas["finance"])
    assert (await client.get(f"{PAGE}/424242")).status_code == 404


async def test_a_run_queued_after_earlier_runs_waits_for_a_newer_one(client, personas, monkeypatch):
    queue = _Queue()
    monkeypatch.setattr(jobs, "_queue", queue)
    earlier = await reconcile.run_reconciliation(principal_of(personas["finance"]).actor())
    monkeypatch.setattr(reconcile_runs, "INLINE_POSTINGS", -1)
    await sign_in(client, personas["finance"])
    r = await post_form(client, f"{PAGE}/run", {}, page=PAGE, htmx=True)
    assert r.status_code == 200 and "Queued" in r.text and len(queue.sent) == 1
    assert f'hx-get="{PAGE}?page=1&amp;after={earlier}" hx-trigger="every 2s"' in r.text
    assert f'id="run-{earlier}"' in r.text and "data-differences>0<" in r.text


async def test_money_still_settling_is_marked_in_flight_on_the_run_page(client, personas):
    run_id = await reconcile.run_reconciliation(principal_of(personas["finance"]).actor())
    await db.fetch(
        "UPDATE funding_reconciliation_runs SET differences = {}::jsonb WHERE id = {}",
        json.dumps([{"check": "mt5", "account_id": 5, "login": 500200, "currency": "USD", "expected": "0",
                     "found": "10", "in_flight": True, "detail": "operation in flight"}]),
        run_id,
    )  # fmt: skip
    await sign_in(client, personas["finance"])
    page = await client.get(f"{PAGE}/{run_id}", headers={"HX-Request": "true"})
    (row,) = page.text.split('<tr class="difference"')[1:]
    assert "data-in-flight" in row and "in flight</span>" in row and "in_flight" not in row
    listing = await client.get(PAGE)
    assert "data-differences>1<" in listing.text and "No differences" in listing.text
