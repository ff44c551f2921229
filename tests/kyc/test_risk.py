"""Each client's risk: explained factor by factor, recomputed when an input changes, audited when
the level moves, and a high level opens one enhanced-due-diligence task per high-risk episode."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from app.clients.services import Registration
from app.clients.services import register as register_client
from app.core import db, jobs
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.core.tables import AuditEvent
from app.kyc import appropriateness, levels, queue, review, risk, risk_settings
from app.kyc import jobs as kyc_jobs
from app.kyc.queue import QueueFilters
from app.kyc.tables import Document, DocumentType, KycProfile
from app.screening import jobs as screening_jobs
from app.screening import services as screening
from app.workbench.tables import Task, TimelineEvent
from tests.conftest import post_form
from tests.personas import make_staff, principal_of, sign_in
from tests.screening.helpers import FakeQueue, load_sample, new_client

SYSTEM = Actor.system("pytest")
HTMX = {"HX-Request": "true"}


principal = principal_of  # the shared persona-to-Principal helper


def actor(p: Principal) -> Actor:
    return p.actor("127.0.0.1", "pytest")


@pytest.fixture
def queue_(monkeypatch) -> FakeQueue:
    fake = FakeQueue()
    monkeypatch.setattr(jobs, "_queue", fake)
    return fake


async def profile(client_id: int) -> dict:
    await levels.profile_of(client_id)  # as every reader does: created on first use
    row = await KycProfile.select().where(KycProfile.client == client_id).first()
    row["risk_factors"] = (
        json.loads(row["risk_factors"]) if isinstance(row["risk_factors"], str) else row["risk_factors"]
    )
    return row


async def set_country(client_id: int, country: str) -> None:
    await db.fetch("UPDATE clients SET country = {} WHERE id = {}", country, client_id)


async def risk_audits(client_id: int) -> list[dict]:
    rows = (
        await AuditEvent.select()
        .where((AuditEvent.action == "kyc.risk_changed") & (AuditEvent.subject_id == str(client_id)))
        .order_by(AuditEvent.seq)
    )
    return [{"before": json.loads(r["before"]), "after": json.loads(r["after"])} for r in rows]


async def edd_tasks(client_id: int) -> list[dict]:
    return await Task.select().where(Task.client == client_id).order_by(Task.id)


# --- the model ------------------------------------------------------------------------------------


async def test_a_client_with_nothing_risky_is_low_and_every_factor_is_explained(personas):
    a = personas["client_a"].id  # Germany, no PEP, not screened, nothing declared
    outcome = await risk.reassess(a, SYSTEM, "registration")
    assert outcome == {"level": "low", "previous": "", "score": 0, "changed": True}
    row = await profile(a)
    assert (row["risk"], row["risk_score"]) == ("low", 0) and row["risk_assessed_at"] is not None
    assert [(f["key"], f["level"], f["detail"]) for f in row["risk_factors"]] == [
        ("country", "low", "Germany: residence"),
        ("pep", "low", "Not a politically exposed person"),
        ("sanctions", "low", "Not screened yet"),
        ("source_of_funds", "low", "Source of funds not declared"),
        ("deposits", "low", "Deposits: 0 USD"),
    ]
    [assessed] = await risk_audits(a)
    assert assessed["before"]["risk"] is None and assessed["after"]["risk"] == "low"
    assert assessed["after"]["reason"] == "registration"
    events = await TimelineEvent.select().where(TimelineEvent.client == a)
    assert any(e["summary"].startswith("Risk assessed as low (score 0)") for e in events)
    assert await edd_tasks(a) == []
    again = await risk.reassess(a, SYSTEM, "nothing new")
    assert not again["changed"] and len(await risk_audits(a)) == 1  # audited when the level moves only


async def test_a_client_in_a_call_for_action_country_is_high_and_the_least_busy_officer_gets_the_task(
    personas,
):
    a = personas["client_a"].id
    busy = personas["compliance"]
    idle = await make_staff("compliance2", ["compliance"])
    admin = principal(personas["admin"])
    from app.workbench import services as workbench

    await workbench.add_task(admin, personas["client_b"].id, "Call back", "2030-01-01", busy.id, actor(admin))
    await set_country(a, "IR")
    outcome = await risk.reassess(a, SYSTEM, "registration")
    assert outcome["level"] == "high" and outcome["score"] == 60
    row = await profile(a)
    country = row["risk_factors"][0]
    assert country == {
        "key": "country",
        "level": "high",
        "points": 60,
        "detail": "Iran, Islamic Republic of (FATF call for action): residence",
        "decisive": False,
    }
    [task] = await edd_tasks(a)
    assert task["assignee"] == task["created_by"] == idle.id and row["risk_edd_task"] == task["id"]
    assert task["title"].startswith("Enhanced due diligence (high risk): Iran")
    assert task["due_at"].date() == (datetime.now(UTC) + timedelta(days=5)).date()
    added = await AuditEvent.select().where(AuditEvent.action == "client.task_added").order_by(AuditEvent.seq)
    assert (
        added[-1]["actor_kind"] == "system"
        and json.loads(added[-1]["after"])["opened_by"] == "risk assessment"
    )


async def test_an_increased_monitoring_country_is_medium_and_medium_factors_add_up_to_high(personas):
    a = personas["client_a"].id
    await set_country(a, "VN")
    assert (await risk.reassess(a, SYSTEM, "t"))["level"] == "medium"  # 25 points
    await db.fetch(
        "UPDATE kyc_profiles SET nationality = 'KE', source_of_funds = 'business' WHERE client = {}", a
    )
    outcome = await risk.reassess(a, SYSTEM, "declared data")
    assert (outcome["level"], outcome["score"]) == ("high", 75)  # three medium factors
    details = [f["detail"] for f in (await profile(a))["risk_factors"] if f["level"] == "medium"]
    assert details == [
        "Viet Nam (FATF increased monitoring): residence",
        "Kenya (FATF increased monitoring): nationality",
        "Source of funds: Business income or company profits",
    ]
    assert [x["after"]["risk"] for x in await risk_audits(a)] == ["medium", "high"]


async def test_a_pep_is_high_risk_whatever_the_score(personas):
    a = personas["client_a"].id
    await risk.set_inputs(
        principal(personas["compliance"]), a, True, "", "World-Check hit: deputy minister", SYSTEM
    )
    row = await profile(a)
    assert row["pep"] and row["risk"] == "high"
    assert {
        "key": "pep",
        "level": "high",
        "points": 60,
        "detail": "Politically exposed person (compliance)",
        "decisive": True,
    } in row["risk_factors"]
    officer = principal(personas["compliance"])
    await risk_settings.save_settings(officer, {**{k: str(v) for k, v in (await risk_settings.settings_for(officer))["param_values"].items()}, "risk.points_high": "0"}, SYSTEM)  # fmt: skip
    assert (await risk.reassess(a, SYSTEM, "points changed"))["level"] == "high"  # decisive, score 0


async def test_the_deposit_volume_counts_once_funding_feeds_it(personas):
    a = personas["client_a"].id
    assert await risk.deposit_volume(a) == Decimal(0)  # no funding yet
    assert (await risk.reassess(a, SYSTEM, "t", deposits=Decimal("60000")))["level"] == "medium"
    assert (await risk.reassess(a, SYSTEM, "t", deposits=Decimal("250000")))["level"] == "high"
    deposits = next(f for f in (await profile(a))["risk_factors"] if f["key"] == "deposits")
    assert deposits["detail"] == "Deposits: 250,000 USD" and deposits["level"] == "high"


async def test_one_edd_task_per_high_risk_episode(personas):
    a = personas["client_a"].id
    await set_country(a, "KP")
    await risk.reassess(a, SYSTEM, "t")
    await risk.reassess(a, SYSTEM, "again")  # still high: the same episode
    assert len(await edd_tasks(a)) == 1
    await set_country(a, "DE")
    assert (await risk.reassess(a, SYSTEM, "moved"))["level"] == "low"
    assert (await profile(a))["risk_edd_task"] is None
    await set_country(a, "MM")
    await risk.reassess(a, SYSTEM, "moved again")
    tasks = await edd_tasks(a)
    assert len(tasks) == 2 and (await profile(a))["risk_edd_task"] == tasks[1]["id"]


async def test_without_any_compliance_officer_an_admin_gets_the_task(personas):
    await db.fetch("UPDATE staff_users SET is_active = false WHERE 'compliance' = ANY(roles)")
    a = personas["client_a"].id
    await set_country(a, "IR")
    await risk.reassess(a, SYSTEM, "t")
    [task] = await edd_tasks(a)
    assert task["assignee"] == personas["admin"].id


# --- what triggers a reassessment -----------------------------------------------------------------


async def test_registration_screening_assesses_the_new_client(database, queue_):
    await load_sample("ofac-csv/sdn.csv")
    form = Registration("Anna", "Schmidt", "anna@example.test", "SY", "a-long-enough-passphrase-2026", True)
    client_id = await register_client(form, SYSTEM)
    await screening_jobs.screening_screen_client({}, client_id=client_id)
    [call] = queue_.calls("kyc_risk_reassess_clients")  # enqueued after the screening committed
    assert call["client_ids"] == [client_id] and call["reason"] == "sanctions screening"
    await kyc_jobs.kyc_risk_reassess_clients({}, client_ids=call["client_ids"], reason=call["reason"])
    row = await profile(client_id)
    assert row["risk"] == "medium"  # Syria is under increased monitoring
    assert any(f["detail"] == "No open sanctions case" for f in row["risk_factors"])


async def test_a_sanctions_case_makes_the_client_high_and_a_false_positive_lowers_them_again(
    personas, queue_
):
    await load_sample("ofac-csv/sdn.csv")
    client_id = await new_client("Dmitri", "Zorvanov")
    [case_id] = (await screening.screen_client(client_id, SYSTEM)).case_ids
    [call] = queue_.calls("kyc_risk_reassess_clients")
    assert call == {**call, "client_ids": [client_id], "reason": "sanctions case opened"}
    await kyc_jobs.kyc_risk_reassess_clients({}, client_ids=[client_id], reason=call["reason"])
    row = await profile(client_id)
    assert row["risk"] == "high" and len(await edd_tasks(client_id)) == 1
    assert any(
        f["detail"] == "1 open sanctions case awaiting a decision" and f["decisive"]
        for f in row["risk_factors"]
    )
    officer = principal(personas["compliance"])
    await screening.decide(officer, case_id, "false_positive", "Different date of birth.", actor(officer))
    decided = queue_.calls("kyc_risk_reassess_clients")[-1]
    assert decided["reason"] == f"sanctions case #{case_id} decided"
    await kyc_jobs.kyc_risk_reassess_clients({}, client_ids=decided["client_ids"], reason=decided["reason"])
    assert (await profile(client_id))["risk"] == "low"
    assert [(x["before"]["risk"], x["after"]["risk"]) for x in await risk_audits(client_id)] == [
        (None, "high"),
        ("high", "low"),
    ]


async def test_approving_an_identity_document_issued_by_a_risky_country_reassesses(personas):
    a = personas["client_a"].id
    officer = principal(personas["compliance"])
    passport = await DocumentType.select().where(DocumentType.code == "passport").first()
    now = datetime.now(UTC)
    doc = Document(
        client=a,
        doc_type=passport["id"],
        category="identity",
        status="pending",
        created_at=now,
        submitted_at=now,
    )
    await doc.save()
    await review.claim(officer, doc.id, actor(officer))
    await review.approve(
        officer, doc.id, "K1234567", "IR", date.today() + timedelta(days=900), actor(officer)
    )
    row = await profile(a)
    assert row["risk"] == "high" and any(
        f["detail"] == "Iran, Islamic Republic of (FATF call for action): identity document"
        for f in row["risk_factors"]
    )


async def test_the_source_of_funds_in_the_questionnaire_reassesses(personas):
    a = personas["client_a"]
    p = principal(a)
    form = {"source_of_funds": "crypto"}
    for q in await appropriateness.questions():
        form[f"q{q['id']}"] = str(q["options"][0]["id"])
    await appropriateness.submit(p, form, actor(p))
    row = await profile(a.id)
    assert row["risk"] == "high" and {"key": "source_of_funds", "level": "high", "points": 60, "detail": "Source of funds: Cryptocurrency", "decisive": False} in row["risk_factors"]  # fmt: skip


async def test_the_review_queue_filters_by_risk(personas):
    a, b = personas["client_a"].id, personas["client_b"].id
    passport = await DocumentType.select().where(DocumentType.code == "passport").first()
    docs = []
    for client_id in (a, b):
        now = datetime.now(UTC)
        d = Document(client=client_id, doc_type=passport["id"], category="identity", status="pending", created_at=now, submitted_at=now)  # fmt: skip
        await d.save()
        docs.append(d.id)
    await set_country(b, "IR")
    await risk.reassess(a, SYSTEM, "t")
    await risk.reassess(b, SYSTEM, "t")
    officer = principal(personas["compliance"])
    assert await queue.risk_filter_available()
    high = await queue.queue_for(officer, QueueFilters.parse({"risk": "high"}))
    low = await queue.queue_for(officer, QueueFilters.parse({"risk": "low"}))
    assert [r["id"] for r in high["rows"]] == [docs[1]] and [r["id"] for r in low["rows"]] == [docs[0]]


# --- compliance's inputs ---------------------------------------------------------------------------


async def test_changing_pep_or_source_of_funds_needs_a_reason_and_is_audited(personas):
    a = personas["client_a"].id
    officer = principal(personas["compliance"])
    with pytest.raises(FormErrors) as refused:
        await risk.set_inputs(officer, a, True, "", "  ", actor(officer))
    assert "Say why" in refused.value.errors["note"]
    with pytest.raises(FormErrors) as refused:
        await risk.set_inputs(officer, a, False, "stolen_goods", "x", actor(officer))
    assert "from the list" in refused.value.errors["source_of_funds"]
    assert not (await profile(a))["pep"]
    await risk.set_inputs(officer, a, False, "inheritance", "Probate letter seen", actor(officer))
    [changed] = await AuditEvent.select().where(AuditEvent.action == "kyc.risk_inputs_changed")
    assert json.loads(changed["before"]) == {"pep": False, "source_of_funds": ""}
    assert json.loads(changed["after"]) == {
        "pep": False,
        "source_of_funds": "inheritance",
        "note": "Probate letter seen",
    }
    assert (await profile(a))["risk"] == "medium"


async def test_only_reviewers_record_risk_inputs_and_a_sales_agent_sees_only_their_clients(personas):
    sales = principal(personas["sales"])
    with pytest.raises(NotFound):
        await risk.set_inputs(sales, personas["client_a"].id, True, "", "x", actor(sales))
    await risk.panel_for(sales, personas["client_a"].id)
    with pytest.raises(NotFound):
        await risk.panel_for(sales, personas["client_b"].id)


async def test_the_risk_panel_answers_page_and_fragment_and_its_form_both_ways(client, personas):
    a = personas["client_a"].id
    await set_country(a, "IR")
    await risk.reassess(a, SYSTEM, "t")
    url = f"/staff/clients/{a}/kyc/risk"
    await sign_in(client, personas["sales"])
    page = await client.get(url)
    assert page.status_code == 200 and "<html" in page.text and 'data-risk="high"' in page.text
    assert "Iran, Islamic Republic of (FATF call for action): residence" in page.text
    assert (
        "Enhanced due diligence: Compliance" in page.text and "/risk/inputs" not in page.text
    )  # no forms for sales
    fragment = await client.get(url, headers=HTMX)
    assert "<html" not in fragment.text and 'data-risk="high"' in fragment.text
    assert (
        await client.get(f"/staff/clients/{personas['client_b'].id}/kyc/risk", headers=HTMX)
    ).status_code == 404
    await sign_in(client, personas["compliance"])
    inputs = f"/staff/clients/{a}/kyc/risk/inputs"
    for htmx in (False, True):
        r = await post_form(client, inputs, {"pep": "on", "note": ""}, page=url, htmx=htmx)
        assert r.status_code == 422 and ("<html" in r.text) is not htmx and "Say why" in r.text
    r = await post_form(client, inputs, {"pep": "on", "note": "Mayor of a city"}, page=url, htmx=True)
    assert r.status_code == 200 and r.headers["hx-redirect"] == f"/staff/clients/{a}"
    r = await post_form(client, f"/staff/clients/{a}/kyc/risk/reassess", {}, page=url)
    assert r.status_code == 303 and r.headers["location"] == f"/staff/clients/{a}"
    assert (await profile(a))["pep"]


# --- the country list and the model's settings ------------------------------------------------------


async def test_the_country_list_is_seeded_with_the_fatf_lists(database):
    rows = await db.fetch("SELECT country, risk, source FROM kyc_country_risks ORDER BY country")
    high = {r["country"] for r in rows if r["risk"] == "high"}
    medium = {r["country"] for r in rows if r["risk"] == "medium"}
    assert high == {"IR", "KP", "MM"} and {r["source"] for r in rows if r["risk"] == "high"} == {
        "fatf_call_for_action"
    }
    assert len(medium) == 20 and {"VG", "MC", "BG", "BO", "LA"} <= medium and not {"ZA", "NG"} & medium


async def test_editing_the_country_list_reassesses_its_clients_by_a_job(personas, queue_):
    a = personas["client_a"].id  # Germany
    await risk.reassess(a, SYSTEM, "t")
    officer = principal(personas["compliance"])
    assert await risk_settings.save_country(
        officer, "de", "high", "Internal assessment 2026-Q1", actor(officer)
    )
    assert not await risk_settings.save_country(
        officer, "DE", "high", "Internal assessment 2026-Q1", actor(officer)
    )
    [call] = queue_.calls("kyc_risk_reassess_many")
    assert call["country"] == "DE"
    assert await kyc_jobs.kyc_risk_reassess_many({}, country="DE") >= 1
    assert (await profile(a))["risk"] == "high"
    [changed] = await AuditEvent.select().where(AuditEvent.action == "kyc.country_risk_changed")
    assert changed["subject_id"] == "DE" and json.loads(changed["before"]) == {"risk": "low"}
    assert await risk_settings.remove_country(officer, "DE", actor(officer))
    await kyc_jobs.kyc_risk_reassess_many({}, country="DE")
    assert (await profile(a))["risk"] == "low"
    with pytest.raises(FormErrors):
        await risk_settings.save_country(officer, "XX", "high", "", actor(officer))
    with pytest.raises(FormErrors):
        await risk_settings.save_country(officer, "FR", "low", "", actor(officer))


async def test_changing_the_model_is_validated_and_reassesses_everyone(personas, queue_, monkeypatch):
    officer = principal(personas["compliance"])
    values = (await risk_settings.settings_for(officer))["param_values"]
    with pytest.raises(FormErrors) as refused:
        await risk_settings.save_settings(officer, {**values, "risk.medium_from": "80"}, actor(officer))
    assert "above the medium threshold" in refused.value.errors["risk.high_from"]
    with pytest.raises(FormErrors) as refused:
        await risk_settings.save_settings(officer, {**values, "risk.deposits_high": "lots"}, actor(officer))
    assert "amount" in refused.value.errors["risk.deposits_high"]
    assert queue_.calls("kyc_risk_reassess_many") == []
    await set_country(personas["client_a"].id, "VN")
    assert await risk_settings.save_settings(officer, {**values, "risk.medium_from": "30"}, actor(officer))
    assert queue_.calls("kyc_risk_reassess_many") == [
        {**queue_.calls("kyc_risk_reassess_many")[0], "country": ""}
    ]
    monkeypatch.setattr(risk, "BATCH", 2)  # several batches
    assert await kyc_jobs.kyc_risk_reassess_many({}, country="") == 4  # the personas' clients
    assert (await profile(personas["client_a"].id))["risk"] == "low"  # 25 points < 30
    assert await kyc_jobs.kyc_risk_sweep({}) == 0  # everyone is assessed now


async def test_the_sweep_assesses_clients_never_assessed(personas):
    assert await kyc_jobs.kyc_risk_sweep({}) == 4
    assert await db.fetch("SELECT 1 FROM kyc_profiles WHERE risk = ''") == []


async def test_a_job_for_a_client_that_is_gone_does_nothing(database):
    with pytest.raises(NotFound):
        await risk.reassess(999999, SYSTEM, "t")
    assert await kyc_jobs.kyc_risk_reassess_clients({}, client_ids=[999999], reason="t") == 1
    assert await db.fetch("SELECT 1 FROM kyc_profiles") == []


async def test_the_risk_pages_answer_page_and_fragment_and_refuse_bad_input(client, personas):
    await sign_in(client, personas["compliance"])
    for url, landmark in (
        ("/staff/kyc/risk", 'id="funds"'),
        ("/staff/kyc/risk/countries", 'id="country-IR"'),
    ):
        page = await client.get(url)
        assert page.status_code == 200 and "<html" in page.text and landmark in page.text
        fragment = await client.get(url, headers=HTMX)
        assert "<html" not in fragment.text and landmark in fragment.text
    for htmx in (False, True):
        r = await post_form(client, "/staff/kyc/risk/countries", {"country": "ZZ", "risk": "high"}, page="/staff/kyc/risk/countries", htmx=htmx)  # fmt: skip
        assert r.status_code == 422 and ("<html" in r.text) is not htmx and "Choose a country" in r.text
        r = await post_form(client, "/staff/kyc/risk/funds", {"code": "Bad Code!", "label": "", "risk": "x"}, page="/staff/kyc/risk", htmx=htmx)  # fmt: skip
        assert r.status_code == 422 and "lowercase letters" in r.text
        r = await post_form(client, "/staff/kyc/risk/settings", {"risk.points_medium": "-1"}, page="/staff/kyc/risk", htmx=htmx)  # fmt: skip
        assert r.status_code == 422 and "from 0 to 1000" in r.text
    r = await post_form(client, "/staff/kyc/risk/countries", {"country": "PA", "risk": "medium", "note": "Own view"}, page="/staff/kyc/risk/countries")  # fmt: skip
    assert r.status_code == 303
    assert 'id="country-PA"' in (await client.get("/staff/kyc/risk/countries")).text
    r = await post_form(
        client, "/staff/kyc/risk/countries/remove", {"country": "PA"}, page="/staff/kyc/risk/countries"
    )
    assert (
        r.status_code == 303 and 'id="country-PA"' not in (await client.get("/staff/kyc/risk/countries")).text
    )
    r = await post_form(client, "/staff/kyc/risk/funds", {"code": "dividends", "label": "Dividends", "risk": "low", "active": "on"}, page="/staff/kyc/risk")  # fmt: skip
    assert r.status_code == 303 and "dividends" in [s["code"] for s in await risk.funds_sources()]
