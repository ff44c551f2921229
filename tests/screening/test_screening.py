"""Screening against the database: loading releases, cases (never twice), decisions, blocks, the
registration hook, and the re-screening of everyone."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta

import pytest

from app.clients import services as client_services
from app.clients.services import Registration
from app.core import db, jobs, live
from app.core.auth import sessions
from app.core.errors import FormErrors
from app.core.tables import WebSession
from app.leads.services import LeadData, capture_lead
from app.screening import jobs as screening_jobs
from app.screening import lists, loaders, runs, services
from app.screening.tables import ComplianceBlock, SanctionsEntry, SanctionsList, ScreeningCase, ScreeningRun
from app.settings import ROOT
from app.workbench.tables import TimelineEvent
from tests.screening.helpers import (
    SAMPLES,
    SYSTEM,
    FakeQueue,
    as_principal,
    audit_actions,
    load_sample,
    new_client,
)


@pytest.fixture
def queue(monkeypatch) -> FakeQueue:
    fake = FakeQueue()
    monkeypatch.setattr(jobs, "_queue", fake)
    return fake


# --- loading releases --------------------------------------------------------------------------


async def test_a_release_is_stored_with_its_entries_active_and_audited(database, queue):
    result = await load_sample("ofac-csv/sdn.csv")
    assert result.created and result.active and result.entry_count == 5
    row = await SanctionsList.select().where(SanctionsList.id == result.list_id).first()
    assert row["source"] == "ofac" and row["format"] == "ofac-csv" and len(row["sha256"]) == 64
    assert row["version"] == row["sha256"][:12]  # the CSV files state no date
    assert await SanctionsEntry.count().where(SanctionsEntry.sanctions_list == result.list_id) == 5
    assert await audit_actions("sanctions_list", result.list_id) == ["screening.list_loaded"]
    assert queue.calls("screening_rescreen") == [
        {
            "key": f"screening-rescreen:{result.run_id}",
            "run_id": result.run_id,
            "timeout": 3600,
            "heartbeat": 600,
            "retries": 5,
            "retry_delay": 2.0,
            "retry_backoff": True,
        }
    ]


async def test_loading_the_same_release_twice_changes_nothing(database, queue):
    first = await load_sample("sdn.xml")
    again = await load_sample("sdn.xml")
    assert not again.created and again.list_id == first.list_id and "already loaded" in again.message
    assert await SanctionsList.count() == 1 and await ScreeningRun.count() == 1
    assert len(queue.calls("screening_rescreen")) == 1


async def test_a_newer_release_replaces_the_active_one_and_an_older_one_stays_inactive(database, queue):
    csv = await load_sample("ofac-csv/sdn.csv")
    xml = await load_sample("sdn.xml")  # dated: newer than the undated CSV release
    assert xml.active and xml.replaced == csv.list_id
    active = await SanctionsList.select(SanctionsList.id).where(SanctionsList.active.eq(True))
    assert [r["id"] for r in active] == [xml.list_id]
    older = (SAMPLES / "sdn.xml").read_bytes().replace(b"11/20/2026", b"01/05/2026")
    old = await lists.load_release({"sdn.xml": older}, SYSTEM)
    assert old.created and not old.active and old.run_id is None and "kept inactive" in old.message
    assert [
        r["id"] for r in await SanctionsList.select(SanctionsList.id).where(SanctionsList.active.eq(True))
    ] == [xml.list_id]
    other_source = await load_sample("consolidated.xml")  # another source: both stay active
    assert other_source.active and len(await lists.active_lists()) == 2


async def test_the_demo_samples_load_once(database, queue):
    first = await lists.load_samples(SYSTEM)
    assert [(r.source, r.created, r.active) for r in first] == [
        ("ofac", True, True),
        ("un", True, True),
        ("eu", True, True),
    ]
    assert [r.created for r in await lists.load_samples(SYSTEM)] == [False, False, False]


async def test_a_bad_file_stores_nothing(database, queue):
    bad = (SAMPLES / "consolidated.xml").read_bytes().replace(b"</ENTITIES>", b"")
    with pytest.raises(loaders.ListFileError, match="not well-formed"):
        await lists.load_release({"consolidated.xml": bad}, SYSTEM)
    assert await SanctionsList.count() == 0 and await SanctionsEntry.count() == 0
    assert await audit_actions() == [] and queue.sent == []


async def run_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "x" * 40, "APP_ENV": "development"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "screening",
        "load",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_cli_loads_a_file_once_and_refuses_a_bad_one_with_exit_code_1(database, tmp_path):
    code, out, _ = await run_cli(database, str(SAMPLES / "eu-sanctions.xml"))
    assert code == 0 and "loaded (3 entries) and active" in out
    code, out, _ = await run_cli(database, str(SAMPLES / "eu-sanctions.xml"))
    assert code == 0 and "already loaded" in out
    bomb = tmp_path / "bomb.xml"
    bomb.write_bytes(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><export>&a;</export>')
    for bad, message in ((bomb, "DOCTYPE"), (tmp_path / "missing.xml", "no such file")):
        code, _, err = await run_cli(database, str(bad))
        assert code == 1 and message in err
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    code, _, err = await run_cli(database, str(empty), "--format", "eu-csv")
    assert code == 1 and "empty" in err
    assert await SanctionsList.count() == 1


# --- screening a client ------------------------------------------------------------------------


async def test_a_hit_opens_one_case_with_its_explanation_audit_and_timeline(database, queue):
    await load_sample("ofac-csv/sdn.csv")
    client_id = await new_client("Dmitry", "Zorvanoff", country="RU")
    result = await services.screen_client(client_id, SYSTEM)
    [case_id] = result.case_ids
    case = await ScreeningCase.select().where(ScreeningCase.id == case_id).first()
    assert case["status"] == "open" and case["client"] == client_id and case["external_id"] == "90101"
    x = json.loads(case["explanation"])  # Piccolo returns JSONB as text
    assert x["alias"] == "ZORVANOFF, Dmitry" and x["nationality"]["effect"] == 3  # residence RU, listed RU
    assert x["score"] == case["score"] == 100.0
    assert await audit_actions("screening_case", case_id) == ["screening.case_opened"]
    assert await audit_actions("client", client_id) == ["screening.subject_screened"]
    events = await TimelineEvent.select().where(TimelineEvent.client == client_id)
    assert [e["kind"] for e in events] == ["kyc"] and "ZORVANOV, Dmitri Petrovich" in events[0]["summary"]
    assert (await services.status_for(client_id))["state"] == "open"


async def test_a_client_with_no_hit_is_recorded_as_screened_and_clear(database, queue):
    await load_sample("ofac-csv/sdn.csv")
    client_id = await new_client("Anna", "Schmidt")
    assert (await services.status_for(client_id))["state"] == "unscreened"
    result = await services.screen_client(client_id, SYSTEM)
    assert result.hits == [] and result.case_ids == []
    status = await services.status_for(client_id)
    assert status["state"] == "clear" and status["label"] == "Sanctions: clear" and status["url"] is None


async def test_screening_again_never_opens_a_second_case_for_the_same_entry(database, queue):
    await load_sample("ofac-csv/sdn.csv")
    client_id = await new_client("Dmitri", "Zorvanov")
    await services.screen_client(client_id, SYSTEM)
    assert (await services.screen_client(client_id, SYSTEM)).case_ids == []
    await load_sample("sdn.xml")  # a new release of the same list: the same entry, another row
    assert (await services.screen_client(client_id, SYSTEM)).case_ids == []
    assert await ScreeningCase.count() == 1


async def test_a_false_positive_is_not_reopened_until_the_screened_data_changes(database, personas, queue):
    await load_sample("ofac-csv/sdn.csv")
    officer = as_principal(personas["compliance"])
    client_id = await new_client("Dmitri", "Zorvanov")
    [case_id] = (await services.screen_client(client_id, SYSTEM)).case_ids
    await services.decide(
        officer, case_id, "false_positive", "Born 1994 per passport; not the listed man.", SYSTEM
    )
    assert (await services.screen_client(client_id, SYSTEM)).case_ids == []
    assert (await services.status_for(client_id))["state"] == "clear"
    reopened = await services.screen_client(client_id, SYSTEM, dob="1971-03-14")  # new data: a new question
    assert len(reopened.case_ids) == 1 and reopened.case_ids[0] != case_id


async def test_a_true_match_blocks_the_client_ends_their_sessions_and_is_audited(database, personas, queue):
    await load_sample("ofac-csv/sdn.csv")
    officer = as_principal(personas["compliance"])
    client_id = await new_client("Katrin", "Halvorsen-Müller")
    await sessions.create(
        "client",
        client_id,
        idle=timedelta(minutes=30),
        absolute=timedelta(hours=1),
        mfa_passed=True,
        ip="127.0.0.1",
        user_agent="pytest",
    )
    [case_id] = (await services.screen_client(client_id, SYSTEM)).case_ids
    assert not await services.is_blocked(client_id)
    case = await services.decide(officer, case_id, "true_match", "", officer.actor("127.0.0.1", "pytest"))
    assert case["status"] == "true_match" and case["decided_by_name"] == "Compliance"
    assert await services.is_blocked(client_id)
    block = await ComplianceBlock.select().where(ComplianceBlock.client == client_id).first()
    assert (
        block["case"] == case_id and block["active_client"] == client_id and block["created_by"] == officer.id
    )
    assert (
        await WebSession.count().where((WebSession.user_kind == "client") & (WebSession.user_id == client_id))
        == 0
    )
    assert await audit_actions("screening_case", case_id) == [
        "screening.case_opened",
        "screening.case_decided",
    ]
    assert await audit_actions("client", client_id) == [
        "screening.subject_screened",
        "screening.client_blocked",
    ]
    status = await services.status_for(client_id, officer)
    assert status["state"] == "blocked" and status["url"] == f"/staff/kyc/screening?client={client_id}"
    assert (await services.screen_client(client_id, SYSTEM)).case_ids == []  # decided: not asked again


async def test_a_false_positive_needs_a_reason_and_nothing_changes_without_one(database, personas, queue):
    await load_sample("ofac-csv/sdn.csv")
    officer = as_principal(personas["compliance"])
    [case_id] = (await services.screen_client(await new_client("Dmitri", "Zorvanov"), SYSTEM)).case_ids
    for decision, reason, field in (("false_positive", "   ", "reason"), ("maybe", "", "decision")):
        with pytest.raises(FormErrors) as exc:
            await services.decide(officer, case_id, decision, reason, SYSTEM)
        assert field in exc.value.errors
    assert (await ScreeningCase.select(ScreeningCase.status).where(ScreeningCase.id == case_id).first())[
        "status"
    ] == "open"
    assert "screening.case_decided" not in await audit_actions()


async def test_a_decided_case_cannot_be_decided_again(database, personas, queue):
    await load_sample("ofac-csv/sdn.csv")
    officer, admin = as_principal(personas["compliance"]), as_principal(personas["admin"])
    [case_id] = (await services.screen_client(await new_client("Dmitri", "Zorvanov"), SYSTEM)).case_ids
    await services.decide(officer, case_id, "false_positive", "Different person.", SYSTEM)
    with pytest.raises(FormErrors, match="decided meanwhile"):
        await services.decide(admin, case_id, "true_match", "", SYSTEM)


@pytest.mark.parametrize("persona", ["sales", "finance", "dealing"])
async def test_only_compliance_and_administrators_see_and_decide_cases(database, personas, queue, persona):
    await load_sample("ofac-csv/sdn.csv")
    [case_id] = (await services.screen_client(await new_client("Dmitri", "Zorvanov"), SYSTEM)).case_ids
    viewer = as_principal(personas[persona])
    with pytest.raises(PermissionError):
        await services.decide(viewer, case_id, "false_positive", "no", SYSTEM)
    with pytest.raises(PermissionError):
        await services.open_cases_for(viewer)
    assert (await services.status_for(1, viewer))["url"] is None


async def test_a_director_is_screened_and_the_case_points_at_the_corporate_client(database, queue):
    await load_sample("consolidated.xml")
    company = await new_client("Acme", "Holdings")
    result = await services.screen_person(
        "director", 77, "Arkadiy Belozerov", SYSTEM, client_id=company, dob="1961", nationality="Russia"
    )
    [case_id] = result.case_ids
    case = await ScreeningCase.select().where(ScreeningCase.id == case_id).first()
    assert (case["subject_type"], case["subject_id"], case["client"]) == ("director", 77, company)
    assert (await services.status_for(company))["state"] == "open"
    assert await audit_actions("director", 77) == ["screening.subject_screened"]


async def test_with_no_list_loaded_nothing_is_screened(database, queue):
    client_id = await new_client("Dmitri", "Zorvanov")
    assert (await services.screen_client(client_id, SYSTEM)).list_ids == []
    assert (await services.status_for(client_id))["state"] == "unscreened"


# --- the registration hook -----------------------------------------------------------------------


async def test_registration_enqueues_screening_after_commit_and_the_job_opens_the_case(database, queue):
    await load_sample("ofac-csv/sdn.csv")
    queue.sent.clear()
    form = Registration("Dmitri", "Zorvanov", "dz@example.test", "RU", "a-long-enough-passphrase-2026", True)
    client_id = await client_services.register(form, SYSTEM)
    assert queue.calls("screening_screen_client") == [
        {
            "key": f"screening:client:{client_id}",
            "client_id": client_id,
            "retries": 5,
            "retry_delay": 2.0,
            "retry_backoff": True,
        }
    ]
    outcome = await screening_jobs.screening_screen_client({}, client_id=client_id)
    assert outcome["status"] == "screened" and len(outcome["cases"]) == 1
    assert (await screening_jobs.screening_screen_client({}, client_id=client_id))[
        "cases"
    ] == []  # idempotent
    assert (await screening_jobs.screening_screen_client({}, client_id=999999))["status"] == "no such client"


async def test_a_failed_registration_enqueues_nothing(database, queue):
    with pytest.raises(FormErrors):
        await client_services.register(Registration("", "", "not-an-email", "", "x", False), SYSTEM)
    assert queue.calls("screening_screen_client") == []


async def test_a_captured_lead_is_screened_too_but_not_a_merged_one(database, queue):
    data = LeadData(first_name="Yusuf", last_name="Qadiri", email="yq@example.test", country="SY")
    client_id, created = await capture_lead(data, channel="form", api_key_id=None, actor=SYSTEM)
    assert created and [c["client_id"] for c in queue.calls("screening_screen_client")] == [client_id]
    await capture_lead(data, channel="form", api_key_id=None, actor=SYSTEM)
    assert len(queue.calls("screening_screen_client")) == 1


# --- re-screening everyone -----------------------------------------------------------------------


async def test_a_new_release_rescreens_every_client_in_batches_with_progress(
    database, personas, queue, monkeypatch
):
    ids = [await new_client(f"Client{i}", f"Number{i}") for i in range(23)]
    zorvanov = await new_client("Dmitri", "Zorvanov")
    qadiri = await new_client("Yousef", "Al-Qadiri", country="SY")
    published: list[tuple[str, str]] = []
    real_publish = live.publish

    async def spy(topic: str, type: str, **ids: object) -> None:
        published.append((topic, type))
        await real_publish(topic, type, **ids)

    monkeypatch.setattr(live, "publish", spy)
    monkeypatch.setattr(runs, "BATCH", 10)
    result = await load_sample("ofac-csv/sdn.csv")
    figures = await screening_jobs.screening_rescreen({}, run_id=result.run_id)
    total = len(ids) + 2 + 4  # the personas' four clients too
    assert figures["status"] == "finished" and figures["done"] == figures["total"] == total
    assert figures["hits"] == 2 and figures["cases_opened"] == 2 and figures["pairs_scored"] >= 2
    cases = await ScreeningCase.select(ScreeningCase.client).order_by(ScreeningCase.client)
    assert [c["client"] for c in cases] == [zorvanov, qadiri]
    batches = [p for p in published if p == ("staff:role:compliance", "screening.progress")]
    assert len(batches) >= 4  # one per batch of 10, and the finish
    run = await runs.latest()
    assert run is not None and run["status"] == "finished" and run["percent"] == 100
    assert "screening.rescreen_finished" in await audit_actions("screening_run", result.run_id)
    again = await screening_jobs.screening_rescreen({}, run_id=result.run_id)
    assert again == {"status": "not runnable"}  # finished: a duplicate job does nothing
    assert await ScreeningCase.count() == 2


async def test_a_rescreening_resumes_after_its_last_batch_and_stops_when_superseded(
    database, queue, monkeypatch
):
    for i in range(5):
        await new_client(f"Client{i}", f"Number{i}")
    first = await load_sample("ofac-csv/sdn.csv")
    cut = (await db.fetch("SELECT id FROM clients ORDER BY id LIMIT 1 OFFSET 2"))[0]["id"]
    await db.fetch(
        "UPDATE screening_runs SET status = 'running', position = {} WHERE id = {}", cut, first.run_id
    )
    figures = await runs.process(first.run_id)
    assert figures["done"] == 2  # the clients after the position only
    second_release = await load_sample("consolidated.xml")
    third = await load_sample("eu-sanctions.xml")
    assert (
        await ScreeningRun.select(ScreeningRun.status).where(ScreeningRun.id == second_release.run_id).first()
    )["status"] == "superseded"
    assert (await runs.process(second_release.run_id)) == {"status": "not runnable"}
    assert (await runs.process(third.run_id))["status"] == "finished"


# --- console uploads -----------------------------------------------------------------------------


async def test_an_uploaded_list_is_loaded_by_its_job_and_a_bad_one_is_refused(database, personas, queue):
    officer = as_principal(personas["compliance"])
    data = (SAMPLES / "eu-sanctions.csv").read_bytes()
    upload_id = await lists.upload_list(officer, "eu.csv", data, "", SYSTEM)
    [call] = queue.calls("screening_load_upload")
    assert call["upload_id"] == upload_id
    assert await lists.process_upload(upload_id) == "loaded"
    assert await lists.process_upload(upload_id) == "not queued"  # a second delivery does nothing
    listing = await lists.lists_for(officer)
    assert [u["status"] for u in listing["uploads"]] == ["loaded"] and listing["releases"][0][
        "source"
    ] == "eu"
    assert "screening.list_loaded" in await audit_actions()
    truncated = (SAMPLES / "sdn.xml").read_bytes()[:-40]
    bad_id = await lists.upload_list(officer, "sdn.xml", truncated, "", SYSTEM)
    assert await lists.process_upload(bad_id) == "failed"
    refused = (await lists.lists_for(officer))["uploads"][0]
    assert refused["status"] == "failed" and "not well-formed" in refused["message"]
    assert await SanctionsList.count() == 1
    with pytest.raises(FormErrors) as exc:
        await lists.upload_list(officer, "notes.txt", b"hello, world\n", "", SYSTEM)
    assert "not a sanctions list" in exc.value.errors["file"]
