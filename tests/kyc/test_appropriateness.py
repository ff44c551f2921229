"""The appropriateness questionnaire: its score sets the most leverage a client may get, it counts
for level 2, it is taken again only after the cooldown, and compliance edits it without rewriting
what earlier clients answered."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.core.tables import AuditEvent
from app.kyc import appropriateness, levels
from app.kyc.tables import AppropriatenessResult, Document, DocumentType, KycProfile
from app.workbench.tables import TimelineEvent
from tests.conftest import post_form
from tests.personas import principal_of, sign_in

PAGE = "/portal/appropriateness"
SETTINGS = "/staff/kyc/appropriateness"
HTMX = {"HX-Request": "true"}


principal = principal_of  # the shared persona-to-Principal helper


def actor(p: Principal) -> Actor:
    return p.actor("127.0.0.1", "pytest")


async def answers(pick: str = "best", source: str = "salary") -> dict[str, str]:
    """A filled-in form: every question's best (or worst) answer."""
    form = {"source_of_funds": source}
    for q in await appropriateness.questions():
        ranked = sorted(q["options"], key=lambda o: o["points"])
        option = ranked[-1] if pick == "best" else ranked[0]
        form[f"q{q['id']}"] = str(option["id"])
    return form


async def answers_worth(points: int) -> dict[str, str]:
    """A form whose answers add up to exactly `points` (a search over the seeded options)."""
    qs = await appropriateness.questions()

    def pick(i: int, left: int) -> list[int] | None:
        if i == len(qs):
            return [] if left == 0 else None
        for o in sorted(qs[i]["options"], key=lambda o: -o["points"]):
            if o["points"] <= left and (rest := pick(i + 1, left - o["points"])) is not None:
                return [o["id"], *rest]
        return None

    chosen = pick(0, points)
    assert chosen is not None, points
    return {"source_of_funds": "salary", **{f"q{q['id']}": str(o) for q, o in zip(qs, chosen, strict=True)}}


async def approve(client_id: int, code: str) -> None:
    doc_type = await DocumentType.select().where(DocumentType.code == code).first()
    now = datetime.now(UTC)
    await Document(
        client=client_id,
        doc_type=doc_type["id"],
        category=doc_type["category"],
        status="approved",
        created_at=now,
        submitted_at=now,
        reviewed_at=now,
        expires_on=(now + timedelta(days=900)).date() if code == "passport" else None,
    ).save()


async def actions(action: str) -> list[dict]:
    rows = await AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.seq)
    for r in rows:
        r["before"] = json.loads(r["before"]) if r["before"] else None
        r["after"] = json.loads(r["after"]) if r["after"] else None
    return rows


# --- the default questionnaire --------------------------------------------------------------------


async def test_the_default_questionnaire_has_eight_questions_worth_100_points_and_three_bands(database):
    qs = await appropriateness.questions()
    assert len(qs) == 8 and sum(q["best"] for q in qs) == 100
    assert {"cfd_experience", "leverage", "margin_call", "cfd_nature", "losses"} <= {q["code"] for q in qs}
    bands = [(b["min_score"], b["max_leverage"], b["passed"]) for b in await appropriateness.bands()]
    assert bands == [(0, 1, False), (40, 10, True), (70, 30, True)]


@pytest.mark.parametrize(
    ("points", "leverage", "passed"),
    [(100, 30, True), (70, 30, True), (69, 10, True), (40, 10, True), (39, 1, False), (0, 1, False)],
)
async def test_the_score_sets_the_maximum_leverage_by_band(personas, points, leverage, passed):
    a = personas["client_a"]
    assert await appropriateness.max_leverage_for(a.id) is None  # not taken yet
    result = await appropriateness.submit(principal(a), await answers_worth(points), actor(principal(a)))
    assert (result["score"], result["max_leverage"], result["passed"]) == (points, leverage, passed)
    assert await appropriateness.max_leverage_for(a.id) == leverage


async def test_a_completed_questionnaire_is_stored_on_the_profile_audited_and_on_the_timeline(personas):
    a = personas["client_a"]
    p = principal(a)
    result = await appropriateness.submit(p, await answers("best", "savings"), actor(p))
    profile = await KycProfile.select().where(KycProfile.client == a.id).first()
    assert profile["appropriateness_score"] == 100 and profile["max_leverage"] == 30
    assert profile["appropriateness_at"] is not None and profile["source_of_funds"] == "savings"
    stored = (
        await AppropriatenessResult.select().where(AppropriatenessResult.id == result["result_id"]).first()
    )
    snapshot = json.loads(stored["answers"])
    assert len(snapshot) == 8 and snapshot[0]["question"].startswith("How often have you traded")
    assert (stored["points"], stored["max_points"], stored["passed"]) == (100, 100, True)
    [done] = await actions("kyc.appropriateness_completed")
    assert done["subject_id"] == str(a.id) and done["actor_kind"] == "client"
    assert done["before"]["score"] is None and done["after"]["max_leverage"] == 30
    events = await TimelineEvent.select().where(TimelineEvent.client == a.id)
    assert any(
        e["summary"] == "Appropriateness questionnaire completed: score 100/100, up to 1:30" for e in events
    )


async def test_a_failed_questionnaire_gives_no_leverage_and_does_not_reach_level_2(personas):
    a = personas["client_a"]
    await approve(a.id, "passport")
    await approve(a.id, "utility_bill")
    assert await levels.recompute_level(a.id, Actor.system("pytest"), "documents") == (0, 1)
    p = principal(a)
    result = await appropriateness.submit(p, await answers("worst"), actor(p))
    assert result["passed"] is False and result["max_leverage"] == 1
    rights = await levels.rights_for(a.id)
    assert rights.level == 1 and not rights.allows("withdrawals")  # level 2 needs it *passed*
    assert await appropriateness.max_leverage_for(a.id) == 1
    assert [r["after"]["level"] for r in await actions("kyc.level_changed")] == [1]


async def test_unanswered_and_foreign_answers_are_refused_and_nothing_is_stored(personas):
    a = personas["client_a"]
    p = principal(a)
    qs = await appropriateness.questions()
    form = await answers()
    del form[f"q{qs[0]['id']}"]
    form[f"q{qs[1]['id']}"] = str(qs[2]["options"][0]["id"])  # an answer of another question
    form[f"q{qs[3]['id']}"] = "'; DROP TABLE x"
    form["source_of_funds"] = "lottery-ticket"
    with pytest.raises(FormErrors) as refused:
        await appropriateness.submit(p, form, actor(p))
    errors = refused.value.errors
    assert errors[f"q{qs[0]['id']}"] == "Choose one answer."
    assert errors[f"q{qs[1]['id']}"] == errors[f"q{qs[3]['id']}"] == "Choose one of the answers shown."
    assert "source_of_funds" in errors and len(errors) == 4
    assert await AppropriatenessResult.count() == 0 and await actions("kyc.appropriateness_completed") == []
    assert await appropriateness.max_leverage_for(a.id) is None


async def test_it_can_be_taken_again_only_after_the_cooldown(personas):
    a = personas["client_a"]
    p = principal(a)
    await appropriateness.submit(p, await answers("worst"), actor(p))
    with pytest.raises(FormErrors) as refused:
        await appropriateness.submit(p, await answers("best"), actor(p))
    assert "you can take it again from" in refused.value.errors["__all__"]
    page = await appropriateness.page_for(p, retake=True)
    assert not page["show_form"] and page["retake_from"] is not None
    # 31 days later (the default cooldown is 30) the better answers count.
    await AppropriatenessResult.update(
        {AppropriatenessResult.taken_at: datetime.now(UTC) - timedelta(days=31)}, force=True
    )
    assert (await appropriateness.page_for(p, retake=True))["show_form"]
    result = await appropriateness.submit(p, await answers("best"), actor(p))
    assert result["max_leverage"] == 30 and await appropriateness.max_leverage_for(a.id) == 30
    assert await AppropriatenessResult.count() == 2


async def test_staff_cannot_take_the_questionnaire(personas):
    officer = principal(personas["compliance"])
    with pytest.raises(NotFound):
        await appropriateness.submit(officer, await answers(), actor(officer))


# --- the portal page ------------------------------------------------------------------------------


async def test_the_portal_page_shows_the_form_as_a_page_and_as_a_fragment(client, personas):
    await sign_in(client, personas["client_a"])
    page = await client.get(PAGE)
    assert page.status_code == 200 and "<html" in page.text
    assert 'id="appropriateness"' in page.text and 'type="radio"' in page.text
    assert "How often have you traded leveraged products" in page.text
    fragment = await client.get(PAGE, headers=HTMX)
    assert (
        fragment.status_code == 200
        and "<html" not in fragment.text
        and 'id="appropriateness"' in fragment.text
    )


async def test_submitting_redirects_to_the_result_and_htmx_gets_hx_redirect(client, personas):
    a = personas["client_a"]
    await sign_in(client, a)
    r = await post_form(client, PAGE, await answers())
    assert r.status_code == 303 and r.headers["location"] == PAGE
    result = await client.get(PAGE)
    assert 'id="appropriateness-result"' in result.text and "100 / 100" in result.text
    assert "up to 1:30" in result.text and "You can take the questionnaire again from" in result.text
    await AppropriatenessResult.update(
        {AppropriatenessResult.taken_at: datetime.now(UTC) - timedelta(days=40)}, force=True
    )
    again = await client.get(PAGE + "?retake=1")
    r = await post_form(client, PAGE, await answers("worst"), page=PAGE + "?retake=1", htmx=True)
    assert 'type="radio"' in again.text
    assert r.status_code == 200 and r.headers["hx-redirect"] == PAGE
    assert "without leverage (1:1)" in (await client.get(PAGE)).text


async def test_an_incomplete_form_comes_back_with_its_errors_and_the_answers_kept(client, personas):
    await sign_in(client, personas["client_a"])
    form = await answers()
    first = next(k for k in form if k.startswith("q"))
    chosen = form.pop(first)
    second = next(k for k in form if k.startswith("q"))
    for htmx in (False, True):
        r = await post_form(client, PAGE, form, htmx=htmx)
        assert r.status_code == 422 and ("<html" in r.text) is not htmx
        assert "Please answer the questions marked below." in r.text and "Choose one answer." in r.text
        assert f'name="{second}" value="{form[second]}" checked' in r.text
        assert f'value="{chosen}" checked' not in r.text
    assert await AppropriatenessResult.count() == 0


async def test_the_documents_banner_points_to_the_questionnaire_when_level_2_waits_for_it(client, personas):
    a = personas["client_a"]
    await approve(a.id, "passport")
    await approve(a.id, "utility_bill")
    await levels.recompute_level(a.id, Actor.system("pytest"), "documents")
    await sign_in(client, a)
    page = await client.get("/portal/documents")
    assert "Next: complete the appropriateness questionnaire to withdraw" in page.text
    assert 'href="/portal/appropriateness">Take the questionnaire' in page.text
    await post_form(client, PAGE, await answers())
    page = await client.get("/portal/documents")
    assert "Your account is fully verified." in page.text and "Take the questionnaire" not in page.text


# --- the client page ------------------------------------------------------------------------------


async def test_the_client_page_shows_the_result_with_the_answers_to_whoever_may_see_the_client(
    client, personas
):
    a, b = personas["client_a"], personas["client_b"]
    await appropriateness.submit(principal(a), await answers_worth(50), actor(principal(a)))
    await sign_in(client, personas["sales"])
    url = f"/staff/clients/{a.id}/kyc/appropriateness"
    page = await client.get(url)
    assert page.status_code == 200 and "<html" in page.text
    assert "Score <strong>50/100</strong>" in page.text and "up to 1:10" in page.text
    fragment = await client.get(url, headers=HTMX)
    assert "<html" not in fragment.text and "How often have you traded" in fragment.text
    assert (await client.get(f"/staff/clients/{b.id}/kyc/appropriateness", headers=HTMX)).status_code == 404
    panel = await client.get(f"/staff/clients/{a.id}/kyc", headers=HTMX)
    assert f'hx-get="/staff/clients/{a.id}/kyc/appropriateness"' in panel.text


# --- compliance edits the questionnaire -----------------------------------------------------------


async def test_compliance_edits_a_question_and_earlier_results_keep_what_the_client_saw(personas):
    a = personas["client_a"]
    officer = principal(personas["compliance"])
    await appropriateness.submit(principal(a), await answers(), actor(principal(a)))
    q = (await appropriateness.questions())[0]
    form = {
        "text": "How many leveraged trades did you make in the last year?",
        "sort_order": "5",
        "active": "on",
        "option-0-label": "None",
        "option-0-points": "0",
        "option-1-label": "Some",
        "option-1-points": "20",
    }
    await appropriateness.save_question(officer, q["id"], form, actor(officer))
    edited = (await appropriateness.questions())[0]
    assert edited["text"] == form["text"] and [o["points"] for o in edited["options"]] == [0, 20]
    old = json.loads((await AppropriatenessResult.select().first())["answers"])
    assert old[0]["question"] == q["text"] and old[0]["points"] == 15
    [saved] = await actions("kyc.appropriateness_question_saved")
    assert saved["before"]["text"] == q["text"] and saved["after"]["text"] == form["text"]
    assert sum(q["best"] for q in await appropriateness.questions()) == 105  # the score stays 0–100


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"text": "Hm"}, "text", "Write the question"),
        (
            {"text": "A fine question?", "option-0-label": "Only one", "option-0-points": "5"},
            "options",
            "at least 2",
        ),
        (
            {"text": "A fine question?", "option-0-label": "A", "option-1-label": "B"},
            "options",
            "must earn points",
        ),
        (
            {
                "text": "A fine question?",
                "option-0-label": "A",
                "option-0-points": "x",
                "option-1-label": "B",
            },
            "option-0-points",
            "whole number",
        ),
        ({"text": "A fine question?", "option-2-points": "7"}, "option-2-label", "Give this answer a text"),
    ],
)
async def test_a_bad_question_is_refused_with_a_clear_message(personas, form, field, message):
    officer = principal(personas["compliance"])
    before = await appropriateness.questions(active_only=False)
    with pytest.raises(FormErrors) as refused:
        await appropriateness.save_question(officer, None, form, actor(officer))
    assert message in refused.value.errors[field]
    assert await appropriateness.questions(active_only=False) == before


async def test_new_bands_and_cooldown_apply_to_the_next_questionnaire_only(personas):
    a, b = personas["client_a"], personas["client_b"]
    officer = principal(personas["compliance"])
    await appropriateness.submit(principal(a), await answers_worth(50), actor(principal(a)))
    form = {
        "band-0-min": "0",
        "band-0-leverage": "1",
        "band-0-label": "No",
        "band-1-min": "60",
        "band-1-leverage": "5",
        "band-1-passed": "on",
        "band-2-min": "90",
        "band-2-leverage": "20",
        "band-2-passed": "on",
        "cooldown_days": "7",
    }
    assert await appropriateness.save_bands(officer, form, 5, actor(officer))
    assert await appropriateness.max_leverage_for(a.id) == 10  # granted before: it stands
    result = await appropriateness.submit(principal(b), await answers_worth(50), actor(principal(b)))
    assert result["max_leverage"] == 1 and not result["passed"]
    assert (await appropriateness.settings_for(officer))["cooldown_days"] == 7
    [changed] = await actions("kyc.leverage_bands_changed")
    assert [x["max_leverage"] for x in changed["before"]] == [1, 10, 30]
    assert [x["max_leverage"] for x in changed["after"]] == [1, 5, 20]
    assert [r["action"] for r in await actions("kyc.parameters_changed")] == ["kyc.parameters_changed"]


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"band-0-min": "10", "band-0-leverage": "5"}, "bands", "must start at a score of 0"),
        (
            {"band-0-min": "0", "band-0-leverage": "1", "band-1-min": "0", "band-1-leverage": "5"},
            "bands",
            "rising score",
        ),
        ({"band-0-min": "0", "band-0-leverage": "0"}, "band-0-leverage", "from 1 (none)"),
        ({"band-0-min": "101", "band-0-leverage": "5"}, "band-0-min", "0 to 100"),
        ({}, "bands", "at least one band"),
        (
            {"band-0-min": "0", "band-0-leverage": "5", "cooldown_days": "-3"},
            "cooldown_days",
            "from 0 to 365",
        ),
    ],
)
async def test_bad_bands_are_refused_and_the_old_ones_stay(personas, form, field, message):
    officer = principal(personas["compliance"])
    form = {"cooldown_days": "30", **form}
    with pytest.raises(FormErrors) as refused:
        await appropriateness.save_bands(officer, form, 4, actor(officer))
    assert message in refused.value.errors[field]
    assert [b["max_leverage"] for b in await appropriateness.bands()] == [1, 10, 30]


async def test_only_reviewers_may_edit_the_questionnaire(personas):
    sales = principal(personas["sales"])
    with pytest.raises(NotFound):
        await appropriateness.settings_for(sales)
    with pytest.raises(NotFound):
        await appropriateness.save_question(sales, None, {"text": "Sneaky?"}, actor(sales))


async def test_the_settings_pages_answer_page_and_fragment_and_refuse_with_422(client, personas):
    await sign_in(client, personas["compliance"])
    page = await client.get(SETTINGS)
    assert page.status_code == 200 and "<html" in page.text and 'id="bands"' in page.text
    fragment = await client.get(SETTINGS, headers=HTMX)
    assert "<html" not in fragment.text and 'id="bands"' in fragment.text
    q = (await appropriateness.questions())[0]
    edit = await client.get(f"{SETTINGS}/questions/{q['id']}")
    assert edit.status_code == 200 and q["text"] in edit.text
    assert "<html" not in (await client.get(f"{SETTINGS}/questions/{q['id']}", headers=HTMX)).text
    assert (await client.get(f"{SETTINGS}/questions/999999")).status_code == 404
    for htmx in (False, True):
        r = await post_form(
            client, f"{SETTINGS}/bands", {"band-0-min": "5", "band-0-leverage": "2"}, page=SETTINGS, htmx=htmx
        )
        assert (
            r.status_code == 422
            and ("<html" in r.text) is not htmx
            and "must start at a score of 0" in r.text
        )
        r = await post_form(client, f"{SETTINGS}/questions", {"text": "?"}, page=SETTINGS, htmx=htmx)
        assert r.status_code == 422 and "Write the question" in r.text
    r = await post_form(
        client,
        f"{SETTINGS}/questions",
        {"text": "Have you read our risk warning?", "active": "on", "option-0-label": "Yes", "option-0-points": "5",
         "option-1-label": "No", "option-1-points": "0"},
        page=SETTINGS,
    )  # fmt: skip
    assert r.status_code == 303 and r.headers["location"].startswith(f"{SETTINGS}#question-")
    assert len(await appropriateness.questions()) == 9
    r = await post_form(
        client,
        f"{SETTINGS}/questions/{q['id']}",
        {"text": "x"},
        page=f"{SETTINGS}/questions/{q['id']}",
        htmx=True,
    )
    assert r.status_code == 422 and "<html" not in r.text and "Write the question" in r.text
