"""The client lifecycle: what may follow what, who may move a client by hand, and what each move leaves."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from app.clients import lifecycle
from app.clients.jobs import recompute_dormancy
from app.clients.lifecycle import MANUAL, TRANSITIONS, change_stage
from app.clients.services import Registration, register
from app.clients.tables import STAGES, Client, StageChange
from app.core import jobs
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors
from app.core.tables import AuditEvent
from app.settings import SettingsError, load_settings
from tests.conftest import post_form
from tests.personas import Persona, make_client, put_on_desk, sign_in

SYSTEM = Actor.system("pytest")


def principal_for(p: Persona) -> Principal:
    return Principal(
        kind="staff",
        id=p.id,
        email=p.email,
        name=p.name,
        session_id=0,
        mfa_passed=True,
        totp_enabled=True,
        roles=frozenset(p.roles),
    )


async def stage_of(client_id: int) -> str:
    row = await Client.select(Client.stage).where(Client.id == client_id).first()
    assert row is not None
    return row["stage"]


async def history_of(client_id: int) -> list[tuple[str | None, str]]:
    rows = (
        await StageChange.select(StageChange.from_stage, StageChange.to_stage)
        .where(StageChange.client == client_id)
        .order_by(StageChange.id)
    )
    return [(r["from_stage"], r["to_stage"]) for r in rows]


async def stage_audits(client_id: int) -> list[dict]:
    rows = await AuditEvent.select(AuditEvent.before, AuditEvent.after).where(
        (AuditEvent.subject_id == str(client_id)) & (AuditEvent.action == "client.stage_changed")
    )
    return [{k: json.loads(v) if v else v for k, v in r.items()} for r in rows]


async def set_times(client_id: int, **values: datetime | None) -> None:
    await Client.update({getattr(Client, k): v for k, v in values.items()}).where(Client.id == client_id)


# --- the transition table -----------------------------------------------------------------------


async def test_every_allowed_transition_moves_the_client_and_every_other_one_is_refused(database):
    c = await make_client("walker", stage="lead")
    for frm in STAGES:
        for to in STAGES:
            if to == frm:
                continue
            await Client.update({Client.stage: frm}).where(Client.id == c.id)
            if to in TRANSITIONS[frm]:
                await change_stage(c.id, to, SYSTEM)
                assert await stage_of(c.id) == to
            else:
                with pytest.raises(FormErrors) as exc:
                    await change_stage(c.id, to, SYSTEM)
                assert "cannot move" in exc.value.errors["stage"]
                assert await stage_of(c.id) == frm


async def test_staff_may_never_move_a_client_into_kyc_approved_or_funded_by_hand():
    assert all(to not in {"kyc_approved", "funded"} for targets in MANUAL.values() for to in targets)
    assert lifecycle.manual_targets("kyc_pending") == []
    assert lifecycle.manual_targets("dormant") == ["active", "churned"]


async def test_a_move_records_history_audit_and_the_time(database):
    c = await make_client("mover", stage="registered")
    before = datetime.now(UTC)
    await change_stage(c.id, "kyc_pending", SYSTEM, reason="documents uploaded")
    assert await history_of(c.id) == [("registered", "kyc_pending")]
    row = await StageChange.select().where(StageChange.client == c.id).first()
    assert row["actor_kind"] == "system" and row["actor_label"] == "pytest"
    assert row["reason"] == "documents uploaded" and row["changed_at"] >= before
    audits = await stage_audits(c.id)
    assert len(audits) == 1
    assert audits[0]["before"] == {"stage": "registered"}
    assert audits[0]["after"] == {"stage": "kyc_pending", "reason": "documents uploaded"}
    client = await Client.select(Client.stage_changed_at).where(Client.id == c.id).first()
    assert client["stage_changed_at"] >= before


async def test_a_move_to_the_current_stage_does_nothing(database):
    c = await make_client("stayer", stage="active")
    await change_stage(c.id, "active", SYSTEM)
    assert await history_of(c.id) == []
    assert await stage_audits(c.id) == []


async def test_an_unknown_stage_is_refused(database):
    c = await make_client("oddball", stage="active")
    with pytest.raises(FormErrors) as exc:
        await change_stage(c.id, "vip", SYSTEM)
    assert "not a lifecycle stage" in exc.value.errors["stage"]


# --- manual changes -----------------------------------------------------------------------------


async def test_a_manual_change_needs_a_reason(personas):
    c = await make_client("quiet", stage="active")
    sales = principal_for(personas["sales"])
    with pytest.raises(FormErrors) as exc:
        await change_stage(c.id, "churned", sales.actor(), reason="   ", manual_by=sales)
    assert exc.value.errors == {"reason": "Give a reason for the change."}
    assert await stage_of(c.id) == "active"


async def test_a_manual_change_must_be_one_staff_may_make(personas):
    c = await make_client("funded_one", stage="funded")
    compliance = principal_for(personas["compliance"])
    with pytest.raises(FormErrors) as exc:
        await change_stage(c.id, "active", compliance.actor(), reason="looks active", manual_by=compliance)
    assert "by hand" in exc.value.errors["stage"]
    assert await stage_of(c.id) == "funded"


@pytest.mark.parametrize("role", ["finance", "dealing"])
async def test_finance_and_dealing_may_not_change_a_stage_by_hand(personas, role):
    c = await make_client("kept", stage="active")
    who = principal_for(personas[role])
    with pytest.raises(PermissionError):
        await change_stage(c.id, "churned", who.actor(), reason="closing", manual_by=who)
    assert await stage_of(c.id) == "active"
    assert await history_of(c.id) == []


@pytest.mark.parametrize("role", ["admin", "sales", "compliance"])
async def test_admin_sales_and_compliance_may_churn_an_active_client_with_a_reason(personas, role):
    c = await make_client("leaving", stage="active")
    who = principal_for(personas[role])
    await change_stage(c.id, "churned", who.actor(), reason="Closed all accounts.", manual_by=who)
    assert await stage_of(c.id) == "churned"
    row = await StageChange.select().where(StageChange.client == c.id).first()
    assert row["actor_kind"] == "staff" and row["actor_id"] == str(who.id)
    assert (await stage_audits(c.id))[0]["after"]["manual"] is True


# --- one transaction, one client at a time --------------------------------------------------------


async def test_a_refused_change_leaves_no_trace(database):
    c = await make_client("refused", stage="lead")
    audits = await AuditEvent.count()
    with pytest.raises(FormErrors):
        await change_stage(c.id, "funded", SYSTEM)
    assert await stage_of(c.id) == "lead"
    assert await StageChange.count() == 0
    assert await AuditEvent.count() == audits


async def test_history_and_audit_roll_back_with_the_callers_transaction(database):
    c = await make_client("undone", stage="active")
    audits = await AuditEvent.count()
    with pytest.raises(RuntimeError):
        async with transaction():
            await change_stage(c.id, "dormant", SYSTEM)
            assert await StageChange.count() == 1  # written, inside the caller's transaction
            raise RuntimeError("the caller failed after the stage change")
    assert await stage_of(c.id) == "active"
    assert await StageChange.count() == 0
    assert await AuditEvent.count() == audits


async def test_a_change_waits_for_a_concurrent_one_and_then_sees_its_result(database):
    c = await make_client("contested", stage="active")
    other = await asyncpg.connect(database)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT 1 FROM clients WHERE id = $1 FOR UPDATE", c.id)
        waiting = asyncio.create_task(change_stage(c.id, "churned", SYSTEM, reason="second"))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # blocked on the row lock
        await other.execute("UPDATE clients SET stage = 'dormant' WHERE id = $1", c.id)
        await tx.commit()
        await asyncio.wait_for(waiting, 5)
    finally:
        await other.close()
    assert await history_of(c.id) == [("dormant", "churned")]  # it read the stage after the lock


async def test_concurrent_identical_changes_record_one_move(database):
    c = await make_client("raced", stage="active")
    await asyncio.gather(*(change_stage(c.id, "churned", SYSTEM, reason="race") for _ in range(5)))
    assert await history_of(c.id) == [("active", "churned")]
    assert len(await stage_audits(c.id)) == 1


# --- the dormancy job ---------------------------------------------------------------------------


async def test_the_job_moves_quiet_active_clients_to_dormant_and_returning_ones_back(database):
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=200)
    quiet = await make_client("quiet_one", stage="active")
    await set_times(
        quiet.id, created_at=long_ago, stage_changed_at=long_ago, last_login_at=now - timedelta(days=91)
    )
    never = await make_client("never_logged", stage="active")
    await set_times(never.id, created_at=long_ago, stage_changed_at=long_ago, last_login_at=None)
    busy = await make_client("busy_one", stage="active")
    await set_times(
        busy.id, created_at=long_ago, stage_changed_at=long_ago, last_login_at=now - timedelta(days=3)
    )
    fresh = await make_client("fresh_active", stage="active")  # just became active, no login yet
    await set_times(
        fresh.id, created_at=long_ago, stage_changed_at=now - timedelta(days=2), last_login_at=None
    )
    back = await make_client("came_back", stage="dormant")
    await set_times(
        back.id, stage_changed_at=now - timedelta(days=30), last_login_at=now - timedelta(hours=1)
    )
    asleep = await make_client("still_asleep", stage="dormant")
    await set_times(
        asleep.id, stage_changed_at=now - timedelta(days=30), last_login_at=now - timedelta(days=100)
    )
    marked = await make_client("marked_dormant", stage="dormant")  # login before staff marked them
    await set_times(
        marked.id, stage_changed_at=now - timedelta(days=1), last_login_at=now - timedelta(days=5)
    )

    assert await recompute_dormancy(90) == {"dormant": 2, "active": 1}
    assert await stage_of(quiet.id) == "dormant" and await stage_of(never.id) == "dormant"
    assert await stage_of(busy.id) == "active" and await stage_of(fresh.id) == "active"
    assert await stage_of(back.id) == "active"
    assert await stage_of(asleep.id) == "dormant" and await stage_of(marked.id) == "dormant"
    row = await StageChange.select().where(StageChange.client == quiet.id).first()
    assert row["actor_kind"] == "system" and row["reason"] == "No login for 90 days."

    assert await recompute_dormancy(90) == {"dormant": 0, "active": 0}  # idempotent
    assert await StageChange.count() == 3


async def test_the_job_works_through_more_clients_than_one_batch(database, monkeypatch):
    from app.clients import jobs as client_jobs

    monkeypatch.setattr(client_jobs, "BATCH", 2)
    long_ago = datetime.now(UTC) - timedelta(days=200)
    ids = []
    for n in range(5):
        c = await make_client(f"batch_{n}", stage="active")
        await set_times(c.id, created_at=long_ago, stage_changed_at=long_ago)
        ids.append(c.id)
    assert await recompute_dormancy(90) == {"dormant": 5, "active": 0}
    assert [await stage_of(i) for i in ids] == ["dormant"] * 5


async def test_the_job_is_scheduled_and_reads_its_window_from_the_settings(settings):
    jobs.load_job_modules()
    assert "recompute_client_dormancy" in jobs._functions
    assert any(cron.function.__name__ == "recompute_client_dormancy" for cron in jobs._crons)
    assert load_settings({"DORMANT_AFTER_DAYS": "30", "SECRET_KEY": "x" * 40}).dormant_after_days == 30
    assert settings.dormant_after_days == 90
    for bad in ("ninety", "0", "-5"):
        with pytest.raises(SettingsError, match="DORMANT_AFTER_DAYS"):
            load_settings({"DORMANT_AFTER_DAYS": bad, "SECRET_KEY": "x" * 40})


# --- registration -------------------------------------------------------------------------------


def registration(email: str) -> Registration:
    return Registration(
        first_name="Reg",
        last_name="Istrant",
        email=email,
        country="DE",
        password="a-long-enough-password-2026",
        accept_terms=True,
    )


async def test_registration_of_a_new_client_records_their_first_stage(database):
    client_id = await register(registration("new.reg@client.test"), Actor(kind="anonymous", ip="127.0.0.1"))
    assert await history_of(client_id) == [(None, "registered")]
    row = await StageChange.select().where(StageChange.client == client_id).first()
    assert row["actor_kind"] == "client" and row["actor_id"] == str(client_id)
    assert await stage_audits(client_id) == []  # the "client.registered" record is its audit
    assert (
        await AuditEvent.count().where(
            (AuditEvent.subject_id == str(client_id)) & (AuditEvent.action == "client.registered")
        )
        == 1
    )


async def test_registration_of_an_existing_lead_records_lead_to_registered(database):
    now = datetime.now(UTC)
    lead = Client(
        email="lead.reg@client.test",
        first_name="L",
        last_name="R",
        stage="lead",
        stage_changed_at=now,
        created_at=now,
    )
    await lead.save()
    client_id = await register(registration("lead.reg@client.test"), Actor(kind="anonymous"))
    assert client_id == lead.id
    assert await history_of(client_id) == [("lead", "registered")]


async def test_demo_clients_come_with_a_stage_history_once(database):
    from app.demo import load_demo

    await load_demo()
    dormant = await Client.select(Client.id).where(Client.email == "dormant@demo.fxcrm.test").first()
    steps = await history_of(dormant["id"])
    assert steps[0] == (None, "lead") and steps[-1] == ("active", "dormant")
    assert all(to in TRANSITIONS[frm] for frm, to in steps[1:])
    count = await StageChange.count()
    await load_demo()
    assert await StageChange.count() == count


# --- the console panel --------------------------------------------------------------------------


async def test_the_client_page_shows_the_stage_panel_with_history_newest_first(client, personas):
    c = await make_client("paneled", stage="active")
    await put_on_desk(personas["sales"], c)  # desk scoping: sales sees only their desk's clients
    await change_stage(c.id, "dormant", SYSTEM, reason="first move")
    await change_stage(c.id, "active", SYSTEM, reason="second move")
    await sign_in(client, personas["sales"])
    r = await client.get(f"/staff/clients/{c.id}")
    assert r.status_code == 200
    assert 'id="stage-panel"' in r.text and 'id="stage-history"' in r.text
    assert r.text.index("second move") < r.text.index("first move")
    assert f'action="/staff/clients/{c.id}/stage"' in r.text
    assert '<option value="churned">' in r.text and '<option value="dormant">' not in r.text


async def test_the_stage_fragment_is_the_panel_alone_and_the_page_without_htmx(client, personas):
    c = await make_client("fragmented", stage="dormant")
    await change_stage(c.id, "churned", SYSTEM, reason="gone")
    await sign_in(client, personas["compliance"])
    frag = await client.get(f"/staff/clients/{c.id}/stage", headers={"HX-Request": "true"})
    assert frag.status_code == 200
    assert "<html" not in frag.text and 'id="stage-history"' in frag.text and "gone" in frag.text
    page = await client.get(f"/staff/clients/{c.id}/stage")
    assert page.status_code == 200
    assert "<html" in page.text and 'id="stage-panel"' in page.text and "gone" in page.text


async def test_finance_sees_the_stage_history_but_no_form(client, personas):
    c = await make_client("readonly", stage="active")
    await sign_in(client, personas["finance"])
    r = await client.get(f"/staff/clients/{c.id}/stage", headers={"HX-Request": "true"})
    assert r.status_code == 200 and 'id="stage-history"' in r.text
    assert 'name="reason"' not in r.text and "hx-post" not in r.text


async def test_posting_a_stage_change_swaps_the_panel_and_records_it(client, personas):
    c = await make_client("posted", stage="active")
    await put_on_desk(personas["sales"], c)  # desk scoping: sales sees only their desk's clients
    await sign_in(client, personas["sales"])
    page = f"/staff/clients/{c.id}"
    r = await post_form(
        client,
        f"/staff/clients/{c.id}/stage",
        {"stage": "churned", "reason": "Asked to close."},
        page=page,
        htmx=True,
    )
    assert r.status_code == 200 and "<html" not in r.text
    assert "Stage changed." in r.text and "Asked to close." in r.text
    assert await stage_of(c.id) == "churned"
    r = await post_form(
        client, f"/staff/clients/{c.id}/stage", {"stage": "active", "reason": "Came back."}, page=page
    )
    assert r.status_code == 303 and r.headers["location"] == page
    assert await history_of(c.id) == [("active", "churned"), ("churned", "active")]


@pytest.mark.parametrize("htmx", [True, False])
async def test_a_stage_post_with_errors_shows_them_beside_the_fields(client, personas, htmx):
    c = await make_client("erring", stage="active")
    await sign_in(client, personas["admin"])
    r = await post_form(
        client,
        f"/staff/clients/{c.id}/stage",
        {"stage": "dormant", "reason": ""},
        page=f"/staff/clients/{c.id}",
        htmx=htmx,
    )
    assert r.status_code == 422
    assert ("<html" in r.text) is not htmx
    assert 'id="e-stage"' in r.text and "by hand" in r.text
    assert 'id="e-reason"' in r.text and "Give a reason" in r.text
    assert await stage_of(c.id) == "active" and await history_of(c.id) == []


async def test_finance_cannot_post_a_stage_change(client, personas):
    c = await make_client("guarded", stage="active")
    await sign_in(client, personas["finance"])
    r = await post_form(
        client,
        f"/staff/clients/{c.id}/stage",
        {"stage": "churned", "reason": "no"},
        page=f"/staff/clients/{c.id}",
    )
    assert r.status_code == 403
    assert await stage_of(c.id) == "active"
