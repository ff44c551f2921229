"""Corporate clients: the client says the account is a company's before sending documents (or
compliance sets it), declares the company, its directors and beneficial owners, and each person
is screened after the change commits, with the state shown to staff (and only "checked" or
"being checked" to the client)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from app.core import db, jobs
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.core.tables import AuditEvent
from app.kyc import corporate, corporate_screening, levels, progress
from app.kyc import jobs as kyc_jobs
from app.kyc.tables import Document, DocumentType, KycProfile, RelatedPerson
from app.screening.tables import ScreeningCase
from app.workbench.tables import TimelineEvent
from tests.conftest import post_form
from tests.personas import principal_of, sign_in
from tests.screening.helpers import FakeQueue, load_sample

PAGE = "/portal/company"
HTMX = {"HX-Request": "true"}
DIRECTOR = {"full_name": "Ada Lovelace", "date_of_birth": "1980-12-10", "nationality": "GB"}


principal = principal_of  # the shared persona-to-Principal helper


def actor(p: Principal) -> Actor:
    return p.actor("127.0.0.1", "pytest")


@pytest.fixture
def queue(monkeypatch) -> FakeQueue:
    fake = FakeQueue()
    monkeypatch.setattr(jobs, "_queue", fake)
    return fake


@pytest.fixture
async def company(personas) -> Principal:
    """client_a, verifying a company: Acme Trading Ltd (GB)."""
    p = principal(personas["client_a"])
    await corporate.choose_entity(p, "corporate", actor(p))
    await corporate.save_company(
        p, {"name": "Acme Trading Ltd", "registration_number": "0123 4567", "country": "gb"}, actor(p)
    )
    return p


async def actions(action: str) -> list[dict]:
    rows = await AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.seq)
    for r in rows:
        r["before"] = json.loads(r["before"]) if r["before"] else None
        r["after"] = json.loads(r["after"]) if r["after"] else None
    return rows


async def add_document(client_id: int, code: str = "passport") -> None:
    doc_type = await DocumentType.select().where(DocumentType.code == code).first()
    now = datetime.now(UTC)
    await Document(
        client=client_id,
        doc_type=doc_type["id"],
        category=doc_type["category"],
        status="draft",
        created_at=now,
    ).save()


# --- the entity type ----------------------------------------------------------------------------


async def test_a_client_chooses_a_company_account_before_sending_documents(personas):
    a = personas["client_a"]
    p = principal(a)
    assert await corporate.choose_entity(p, "corporate", actor(p))
    assert (await levels.profile_of(a.id))["entity_type"] == "corporate"
    assert not await corporate.choose_entity(p, "corporate", actor(p))  # no change, nothing recorded
    [changed] = await actions("kyc.entity_type_changed")
    assert (
        changed["before"] == {"entity_type": "individual"} and changed["after"]["entity_type"] == "corporate"
    )
    events = await TimelineEvent.select().where(TimelineEvent.client == a.id)
    assert any(e["summary"] == "Verification as a company (chosen by the client)" for e in events)
    cards = (await progress.page_for(p))["cards"]
    assert [c.category for c in cards] == ["corporate", "identity", "address"]  # the corporate ladder
    await add_document(a.id, "incorporation_certificate")
    with pytest.raises(FormErrors) as refused:
        await corporate.choose_entity(p, "individual", actor(p))
    assert "already sent documents" in refused.value.errors["entity_type"]
    assert (await levels.profile_of(a.id))["entity_type"] == "corporate"


async def test_compliance_sets_the_entity_type_with_a_reason_even_after_documents(personas):
    a = personas["client_a"].id
    await add_document(a)
    officer = principal(personas["compliance"])
    with pytest.raises(FormErrors) as refused:
        await corporate.set_entity_by_staff(officer, a, "corporate", "", actor(officer))
    assert "Say why" in refused.value.errors["reason"]
    assert await corporate.set_entity_by_staff(
        officer, a, "corporate", "Registered by the director", actor(officer)
    )
    [changed] = await actions("kyc.entity_type_changed")
    assert changed["actor_kind"] == "staff" and changed["after"]["reason"] == "Registered by the director"
    with pytest.raises(NotFound):
        await corporate.set_entity_by_staff(principal(personas["sales"]), a, "individual", "x", SYSTEM)


SYSTEM = Actor.system("pytest")


# --- the company ----------------------------------------------------------------------------------


async def test_the_company_is_validated_and_its_declaration_audited(personas, company):
    row = await corporate.company_of(company.id)
    assert (row["name"], row["registration_number"], row["country"]) == (
        "Acme Trading Ltd",
        "0123 4567",
        "GB",
    )
    [declared] = await actions("kyc.company_declared")
    assert declared["before"] is None and declared["after"]["country"] == "GB"
    with pytest.raises(FormErrors) as refused:
        await corporate.save_company(
            company, {"name": "A", "registration_number": "<script>", "country": "XX"}, actor(company)
        )
    assert set(refused.value.errors) == {"name", "registration_number", "country"}
    individual = principal(personas["client_b"])
    with pytest.raises(FormErrors) as refused:
        await corporate.save_company(
            individual, {"name": "Beta", "registration_number": "1", "country": "DE"}, actor(individual)
        )
    assert refused.value.errors["__all__"] == "Choose a company account first."


async def test_a_company_in_a_high_risk_country_makes_the_client_high_risk(company):
    await corporate.save_company(
        company,
        {"name": "Acme Trading Ltd", "registration_number": "0123 4567", "country": "MM"},
        actor(company),
    )
    profile = await levels.profile_of(company.id)
    assert profile["risk"] == "high"
    assert "Myanmar (FATF call for action): company" in json.dumps(profile["risk_factors"])


# --- directors and owners ---------------------------------------------------------------------------


async def test_directors_and_owners_are_declared_changed_and_removed_with_the_rules_kept(company, queue):
    director = await corporate.add_person(company, "director", DIRECTOR, actor(company))
    first = await corporate.add_person(
        company,
        "ubo",
        {"full_name": "Grace Hopper", "date_of_birth": "1975-01-02", "nationality": "US", "ownership": "60"},
        actor(company),
    )
    with pytest.raises(FormErrors) as refused:
        await corporate.add_person(
            company,
            "ubo",
            {
                "full_name": "Alan Turing",
                "date_of_birth": "1970-06-23",
                "nationality": "GB",
                "ownership": "50,5",
            },
            actor(company),
        )
    assert refused.value.errors["ownership"] == (
        "The owners' shares would add up to 110.5 %; together they can be at most 100 % "
        "(the others already hold 60 %)."
    )
    second = await corporate.add_person(
        company,
        "ubo",
        {"full_name": "Alan Turing", "date_of_birth": "1970-06-23", "nationality": "GB", "ownership": "40 %"},
        actor(company),
    )
    page = await corporate.page_for(company)
    assert [p["id"] for p in page["directors"]] == [director]
    assert [p["id"] for p in page["owners"]] == [first, second] and page["ownership_total"] == 100
    # Grace's share cannot grow while Alan holds 40 %; it may shrink.
    grace = {"full_name": "Grace Hopper", "date_of_birth": "1975-01-02", "nationality": "US"}
    with pytest.raises(FormErrors):
        await corporate.update_person(company, first, {**grace, "ownership": "61"}, actor(company))
    assert await corporate.update_person(company, first, {**grace, "ownership": "55"}, actor(company))
    assert not await corporate.update_person(company, first, {**grace, "ownership": "55.00"}, actor(company))
    [changed] = await actions("kyc.related_person_changed")
    assert changed["before"]["ownership"] == "60.00" and changed["after"]["ownership"] == "55"
    # The only director stays until another is added.
    with pytest.raises(FormErrors) as refused:
        await corporate.remove_person(company, director, actor(company))
    assert "at least one director" in refused.value.errors["__all__"]
    other = await corporate.add_person(
        company, "director", {**DIRECTOR, "full_name": "Charles Babbage"}, actor(company)
    )
    await corporate.remove_person(company, director, actor(company))
    kept = await RelatedPerson.select().where(RelatedPerson.id == director).first()
    assert kept["removed_at"] is not None  # kept for the record, no longer listed
    assert [p["id"] for p in (await corporate.page_for(company))["directors"]] == [other]
    assert [a["action"] for a in await AuditEvent.select(AuditEvent.action).where(AuditEvent.action.like("kyc.related_person%"))] == [
        "kyc.related_person_added",
        "kyc.related_person_added",
        "kyc.related_person_added",
        "kyc.related_person_changed",
        "kyc.related_person_added",
        "kyc.related_person_removed",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("role", "form", "field", "message"),
    [
        ("director", {**DIRECTOR, "full_name": " "}, "full_name", "full name"),
        ("director", {**DIRECTOR, "date_of_birth": "10/12/1980"}, "date_of_birth", "YYYY-MM-DD"),
        ("director", {**DIRECTOR, "date_of_birth": "2099-01-01"}, "date_of_birth", "real date"),
        (
            "director",
            {**DIRECTOR, "date_of_birth": (date.today() - timedelta(days=365 * 15)).isoformat()},
            "date_of_birth",
            "at least 16",
        ),  # fmt: skip
        ("director", {**DIRECTOR, "nationality": "Atlantis"}, "nationality", "from the list"),
        ("ubo", {**DIRECTOR, "ownership": ""}, "ownership", "in per cent"),
        ("ubo", {**DIRECTOR, "ownership": "0"}, "ownership", "more than 0"),
        ("ubo", {**DIRECTOR, "ownership": "100.001"}, "ownership", "at most 100"),
        ("ubo", {**DIRECTOR, "ownership": "12.345"}, "ownership", "two decimals"),
        ("ceo", DIRECTOR, "role", "director or beneficial owner"),
    ],
)
async def test_a_bad_person_is_refused_with_a_clear_message_and_nothing_stored(
    company, role, form, field, message
):
    with pytest.raises(FormErrors) as refused:
        await corporate.add_person(company, role, form, actor(company))
    assert message in refused.value.errors[field]
    assert await RelatedPerson.count() == 0


async def test_a_client_cannot_touch_another_clients_people(personas, company):
    person = await corporate.add_person(company, "director", DIRECTOR, actor(company))
    other = principal(personas["client_b"])
    await corporate.choose_entity(other, "corporate", actor(other))
    with pytest.raises(NotFound):
        await corporate.update_person(other, person, DIRECTOR, actor(other))
    with pytest.raises(NotFound):
        await corporate.remove_person(other, person, actor(other))


async def test_a_beneficial_owners_nationality_counts_for_the_companys_risk(company):
    await corporate.add_person(
        company,
        "ubo",
        {"full_name": "Kim Ri", "date_of_birth": "1960-04-15", "nationality": "KP", "ownership": "30"},
        actor(company),
    )
    profile = await KycProfile.select().where(KycProfile.client == company.id).first()
    assert profile["risk"] == "high"
    assert (
        "Korea, Democratic People's Republic of (FATF call for action): beneficial owner"
        in profile["risk_factors"]
    )


# --- screening -------------------------------------------------------------------------------------


async def test_each_person_is_screened_after_the_change_commits(company, queue):
    await load_sample("ofac-csv/sdn.csv")
    clean = await corporate.add_person(company, "director", DIRECTOR, actor(company))
    listed = await corporate.add_person(
        company,
        "ubo",
        {
            "full_name": "Dmitri Petrovich Zorvanov",
            "date_of_birth": "1971-03-14",
            "nationality": "RU",
            "ownership": "25",
        },
        actor(company),
    )
    calls = queue.calls("kyc_screen_related_person")
    assert [c["person_id"] for c in calls] == [clean, listed]
    assert calls[0]["key"].startswith(f"kyc:person:{clean}:")
    states = {p["id"]: p["screen_state"] for p in (await corporate.page_for(company))["directors"] + (await corporate.page_for(company))["owners"]}  # fmt: skip
    assert states == {clean: "pending", listed: "pending"}
    for c in calls:
        await kyc_jobs.kyc_screen_related_person({}, person_id=c["person_id"])
    [case] = await ScreeningCase.select().where(ScreeningCase.subject_id == listed)
    assert (case["subject_type"], case["client"], case["status"]) == ("ubo", company.id, "open")
    page = await corporate.page_for(company)
    person = {p["id"]: p for p in page["directors"] + page["owners"]}
    assert person[clean]["screen_state"] == "clear" and person[clean]["client_label"] == "Checked"
    assert person[listed]["screen_state"] == "open" and person[listed]["client_label"] == "Being checked"
    # The corporate client's risk follows (a case opened: a job reassesses it).
    [reassess] = [
        c for c in queue.calls("kyc_risk_reassess_clients") if c["reason"] == "sanctions case opened"
    ]
    await kyc_jobs.kyc_risk_reassess_clients({}, **{k: reassess[k] for k in ("client_ids", "reason")})
    assert (await levels.profile_of(company.id))["risk"] == "high"
    # A change screens the person again; a removed person is not screened.
    await corporate.update_person(company, clean, {**DIRECTOR, "full_name": "Ada King"}, actor(company))
    assert [p for p in (await corporate.page_for(company))["directors"] if p["id"] == clean][0][
        "screen_state"
    ] == "pending"
    assert await kyc_jobs.kyc_related_persons_sweep({}) == 1  # the sweep catches what a lost job missed
    assert await corporate_screening.unscreened() == []
    await corporate.add_person(company, "director", {**DIRECTOR, "full_name": "Temp Person"}, actor(company))
    temp = queue.calls("kyc_screen_related_person")[-1]["person_id"]
    await corporate.remove_person(company, temp, actor(company))
    assert await kyc_jobs.kyc_screen_related_person({}, person_id=temp) == "gone"


async def test_without_a_loaded_list_a_person_stays_pending(company, queue):
    person = await corporate.add_person(company, "director", DIRECTOR, actor(company))
    assert await kyc_jobs.kyc_screen_related_person({}, person_id=person) == "no list loaded"
    assert await corporate_screening.unscreened() == [person]


# --- the portal page -----------------------------------------------------------------------------


async def test_the_company_page_answers_page_and_fragment(client, personas):
    a = personas["client_a"]
    await sign_in(client, a)
    page = await client.get(PAGE)
    assert page.status_code == 200 and "<html" in page.text and "Yes, verify a company" in page.text
    fragment = await client.get(PAGE, headers=HTMX)
    assert "<html" not in fragment.text and 'id="company"' in fragment.text
    docs = await client.get("/portal/documents")
    assert 'href="/portal/company">Verify a company instead' in docs.text
    r = await post_form(client, f"{PAGE}/entity", {"entity_type": "corporate"}, page=PAGE, htmx=True)
    assert (
        r.status_code == 200 and "<html" not in r.text and 'id="company-details"' in r.text
    )  # swapped in place
    page = await client.get(PAGE)
    assert 'id="company-details"' in page.text and "Add at least one director." in page.text
    assert 'id="company-link"' in (await client.get("/portal/documents")).text


async def test_the_company_page_forms_redirect_or_come_back_with_their_errors(client, personas, queue):
    a = personas["client_a"]
    p = principal(a)
    await corporate.choose_entity(p, "corporate", actor(p))
    await sign_in(client, a)
    r = await post_form(client, PAGE, {"name": "Acme Ltd", "registration_number": "12345", "country": "GB"})
    assert r.status_code == 303 and r.headers["location"] == PAGE
    bad = {"role": "director", **DIRECTOR, "date_of_birth": "", "full_name": "Keep Me"}
    for htmx in (False, True):
        r = await post_form(client, f"{PAGE}/persons", bad, page=PAGE, htmx=htmx)
        assert r.status_code == 422 and ("<html" in r.text) is not htmx
        assert "Enter the date of birth." in r.text and 'value="Keep Me"' in r.text
        assert '<details class="person-add" open>' in r.text
    r = await post_form(client, f"{PAGE}/persons", {"role": "director", **DIRECTOR}, page=PAGE)
    person_id = (await RelatedPerson.select(RelatedPerson.id).first())["id"]
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}#person-{person_id}"
    page = await client.get(PAGE)
    assert (
        f'id="person-{person_id}"' in page.text
        and "Ada Lovelace" in page.text
        and "Being checked" in page.text
    )
    r = await post_form(client, f"{PAGE}/persons/{person_id}/remove", {}, page=PAGE, htmx=True)
    assert r.status_code == 422 and "at least one director" in r.text and "<html" not in r.text
    r = await post_form(
        client, f"{PAGE}/persons/{person_id}", {**DIRECTOR, "nationality": "FR"}, page=PAGE, htmx=True
    )
    assert r.status_code == 200 and "hx-redirect" not in r.headers and "<html" not in r.text
    assert "France" in r.text and f'id="person-{person_id}"' in r.text
    await sign_in(client, personas["client_b"])
    r = await post_form(client, f"{PAGE}/persons/{person_id}/remove", {}, page=PAGE)
    assert r.status_code == 404


# --- the staff view -------------------------------------------------------------------------------


async def test_staff_see_the_company_and_each_persons_screening_on_the_client_page(client, personas, company):
    await load_sample("ofac-csv/sdn.csv")
    person = await corporate.add_person(
        company,
        "ubo",
        {
            "full_name": "Dmitri Zorvanov",
            "date_of_birth": "1971-03-14",
            "nationality": "RU",
            "ownership": "30",
        },
        actor(company),
    )
    await corporate_screening.screen(person)
    url = f"/staff/clients/{company.id}/kyc/company"
    await sign_in(client, personas["compliance"])
    page = await client.get(url)
    assert page.status_code == 200 and "<html" in page.text
    assert "Acme Trading Ltd" in page.text and "Sanctions: possible match, case open" in page.text
    assert (
        f'href="/staff/kyc/screening?client={company.id}"' in page.text
        and "No director declared." in page.text
    )
    fragment = await client.get(url, headers=HTMX)
    assert (
        "<html" not in fragment.text
        and "Dmitri Zorvanov" in fragment.text
        and "Change the entity type" in fragment.text
    )
    entity = f"/staff/clients/{company.id}/kyc/entity"
    for htmx in (False, True):
        r = await post_form(client, entity, {"entity_type": "individual", "reason": ""}, page=url, htmx=htmx)
        assert r.status_code == 422 and ("<html" in r.text) is not htmx and "Say why" in r.text
    r = await post_form(client, entity, {"entity_type": "individual", "reason": "Sole trader"}, page=url)
    assert r.status_code == 303 and (await levels.profile_of(company.id))["entity_type"] == "individual"
    await sign_in(client, personas["sales"])  # sales sees client_a (the company) but may not change it
    sales_view = await client.get(url, headers=HTMX)
    assert sales_view.status_code == 200 and "Change the entity type" not in sales_view.text
    assert (await client.get(f"/staff/clients/{personas['client_b'].id}/kyc/company")).status_code == 404
    r = await post_form(client, entity, {"entity_type": "corporate", "reason": "x"}, page=url)
    assert r.status_code == 403
    panel = await client.get(f"/staff/clients/{company.id}/kyc", headers=HTMX)
    assert f'hx-get="/staff/clients/{company.id}/kyc/company"' in panel.text
    assert await db.fetchrow(
        "SELECT 1 FROM kyc_profiles WHERE client = $1 AND entity_type = 'individual'", company.id
    )


async def test_the_company_itself_is_screened_as_an_entity_after_it_is_declared(personas, queue):
    await load_sample("consolidated.xml")
    p = principal(personas["client_a"])
    await corporate.choose_entity(p, "corporate", actor(p))
    await corporate.save_company(
        p, {"name": "Crescent Horizon Charity", "registration_number": "77 1234", "country": "gb"}, actor(p)
    )
    [call] = queue.calls("kyc_screen_company")
    assert call["client_id"] == p.id
    assert await kyc_jobs.kyc_screen_company({}, client_id=p.id) == "1 case(s) opened"
    [case] = await ScreeningCase.select().where(ScreeningCase.subject_type == "company")
    assert (case["client"], case["status"]) == (p.id, "open")
    # The same name again screens nothing new; a company that is not listed opens nothing.
    await corporate.save_company(
        p, {"name": "Crescent Horizon Charity", "registration_number": "77 1235", "country": "gb"}, actor(p)
    )
    assert len(queue.calls("kyc_screen_company")) == 1
