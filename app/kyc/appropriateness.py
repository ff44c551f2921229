"""The appropriateness test (MiFID II art. 25(3); issue 4, item 8): a questionnaire in the portal
whose score sets the most leverage the client may get.

Questions, their options with points, and the score → leverage bands are rows compliance edits.
The score is the client's points as a share of the most a client could score with the active
questions (0–100), so bands stay meaningful when a question is added or retired. A result keeps
the questions and answers as the client saw them, and the leverage granted then: a later change
of bands applies to the next questionnaire, never silently to a past one. A client may take it
again once `appropriateness.cooldown_days` have passed.

`max_leverage_for(client_id)` is what the trading domain asks: None until the questionnaire has
been taken, 1 when it found leveraged trading not appropriate (1:1), else the band's maximum.
Taking it counts for level 2 whatever the score (`levels.recompute_level`); the score limits
leverage, not the account.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from app.clients.services import get_client_for
from app.core import audit, db, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.kyc import levels, parameters, risk
from app.kyc.queue import require_reviewer
from app.workbench.timeline import record_event

MAX_TEXT = 500
MAX_LABEL = 200
MAX_POINTS = 100
MAX_LEVERAGE = 1000
MIN_OPTIONS = 2
MAX_OPTIONS = 8


def leverage_label(leverage: int | None) -> str:
    if leverage is None:
        return "not set"
    return "no leverage (1:1)" if leverage <= 1 else f"up to 1:{leverage}"


# --- reading the configuration -------------------------------------------------------------------


async def questions(*, active_only: bool = True) -> list[dict[str, Any]]:
    """The questions in order, each with its options in order."""
    rows = await db.fetch(
        "SELECT id, code, text, help, sort_order, active FROM kyc_appropriateness_questions "
        + ("WHERE active " if active_only else "")
        + "ORDER BY sort_order, id"
    )
    options = await db.fetch(
        "SELECT id, question, label, points, sort_order FROM kyc_appropriateness_options "
        "WHERE question = ANY({}) ORDER BY sort_order, id",
        [r["id"] for r in rows],
    )
    for r in rows:
        r["options"] = [o for o in options if o["question"] == r["id"]]
        r["best"] = max((o["points"] for o in r["options"]), default=0)
    return rows


async def bands() -> list[dict[str, Any]]:
    return await db.fetch(
        "SELECT id, min_score, max_leverage, passed, label FROM kyc_leverage_bands ORDER BY min_score"
    )


def band_for(score: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The highest band the score reaches (the lowest band when none starts at 0 and it falls below)."""
    reached = [b for b in rows if b["min_score"] <= score]
    return reached[-1] if reached else rows[0]


def score_of(points: int, max_points: int) -> int:
    return round(100 * points / max_points) if max_points > 0 else 0


# --- what other domains ask ----------------------------------------------------------------------


async def max_leverage_for(client_id: int) -> int | None:
    """The most leverage the client may get (N for 1:N): None until they took the questionnaire."""
    row = await db.fetchrow(
        "SELECT max_leverage, appropriateness_at FROM kyc_profiles WHERE client = $1", client_id
    )
    if row is None or row["appropriateness_at"] is None or row["max_leverage"] is None:
        return None
    return int(row["max_leverage"])


async def latest_result(client_id: int) -> dict[str, Any] | None:
    return await db.fetchrow(
        "SELECT * FROM kyc_appropriateness_results WHERE client = $1 ORDER BY taken_at DESC, id DESC LIMIT 1",
        client_id,
    )


def _retake_from(latest: dict[str, Any] | None, cooldown_days: int) -> datetime | None:
    """When the client may take the questionnaire again (None: now)."""
    if latest is None:
        return None
    at: datetime = latest["taken_at"] + timedelta(days=cooldown_days)
    return at if at > datetime.now(UTC) else None


# --- the portal ----------------------------------------------------------------------------------


async def page_for(p: Principal, *, retake: bool = False) -> dict[str, Any]:
    """The portal page: the questionnaire, or the last result (and when it may be taken again)."""
    if not p.is_client:
        raise NotFound("questionnaire")
    latest = await latest_result(p.id)
    cooldown = int(await parameters.value("appropriateness.cooldown_days"))
    retake_from = _retake_from(latest, cooldown)
    profile = await levels.profile_of(p.id)
    return {
        "result": latest,
        "leverage_label": leverage_label(latest["max_leverage"]) if latest else "",
        "retake_from": retake_from,
        "show_form": latest is None or (retake and retake_from is None),
        "questions": await questions(),
        "funds_sources": await risk.funds_sources(),
        "values": {"source_of_funds": profile["source_of_funds"]},
        "errors": {},
    }


def _answers(
    qs: list[dict[str, Any]], form: Mapping[str, str]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    answers, errors = [], {}
    for q in qs:
        raw = (form.get(f"q{q['id']}") or "").strip()
        option = next((o for o in q["options"] if raw.isdigit() and o["id"] == int(raw)), None)
        if option is None:
            errors[f"q{q['id']}"] = "Choose one answer." if not raw else "Choose one of the answers shown."
            continue
        answers.append(
            {
                "question_id": q["id"],
                "code": q["code"],
                "question": q["text"],
                "option_id": option["id"],
                "answer": option["label"],
                "points": option["points"],
                "best": q["best"],
            }
        )
    return answers, errors


async def submit(p: Principal, form: Mapping[str, str], actor: Actor) -> dict[str, Any]:
    """Score the answers, store the result on the profile (audited, on the timeline), raise the
    level if this was what it waited for, and reassess risk when the source of funds changed."""
    if not p.is_client:
        raise NotFound("questionnaire")
    qs = await questions()
    if not qs:
        raise FormErrors({"__all__": "The questionnaire is not available right now. Please try again later."})
    answers, errors = _answers(qs, form)
    code = (form.get("source_of_funds") or "").strip()
    sources = {s["code"]: s for s in await risk.funds_sources()}
    if code not in sources:
        errors["source_of_funds"] = "Choose where the money you will trade with comes from."
    if errors:
        raise FormErrors(errors)
    points = sum(a["points"] for a in answers)
    max_points = sum(q["best"] for q in qs)
    score = score_of(points, max_points)
    band_rows = await bands()
    if not band_rows:
        raise FormErrors({"__all__": "The questionnaire is not available right now. Please try again later."})
    band = band_for(score, band_rows)
    now = datetime.now(UTC)
    async with transaction():
        profile = await levels.profile_of(p.id, lock=True)  # one submission at a time
        cooldown = int(await parameters.value("appropriateness.cooldown_days"))
        retake_from = _retake_from(await latest_result(p.id), cooldown)
        if retake_from is not None:
            raise FormErrors(
                {
                    "__all__": "You have already completed the questionnaire; you can take it again "
                    f"from {retake_from:%d %B %Y}."
                }
            )
        row = await db.fetchrow(
            "INSERT INTO kyc_appropriateness_results (client, taken_at, points, max_points, score, max_leverage, "
            "passed, band_label, answers) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) RETURNING id",
            p.id,
            now,
            points,
            max_points,
            score,
            band["max_leverage"],
            band["passed"],
            band["label"],
            json.dumps(answers, ensure_ascii=False),
        )
        assert row is not None
        await db.fetch(
            "UPDATE kyc_profiles SET appropriateness_score = {}, appropriateness_at = {}, max_leverage = {}, "
            "source_of_funds = {}, updated_at = now() WHERE client = {}",
            score,
            now,
            band["max_leverage"],
            code,
            p.id,
        )
        await audit.record(
            actor,
            "kyc.appropriateness_completed",
            "client",
            p.id,
            before={
                "score": profile["appropriateness_score"],
                "max_leverage": profile["max_leverage"],
                "source_of_funds": profile["source_of_funds"],
            },
            after={
                "result_id": row["id"],
                "score": score,
                "points": points,
                "max_points": max_points,
                "max_leverage": band["max_leverage"],
                "passed": band["passed"],
                "source_of_funds": code,
            },
        )
        await record_event(
            p.id,
            "kyc",
            f"Appropriateness questionnaire completed: score {score}/100, {leverage_label(band['max_leverage'])}"
            + ("" if band["passed"] else " (leveraged trading not appropriate)"),
            "appropriateness_result",
            row["id"],
            at=now,
        )
        await levels.recompute_level(p.id, actor, "appropriateness questionnaire completed")
        if code != profile["source_of_funds"]:
            await risk.reassess(p.id, actor, f"source of funds declared: {sources[code]['label']}")
        await live.publish(f"staff:client:{p.id}", "client_page.kyc", client_id=p.id)
    return {
        "result_id": row["id"],
        "score": score,
        "max_leverage": band["max_leverage"],
        "passed": band["passed"],
    }


# --- staff: a client's result --------------------------------------------------------------------


async def client_results_for(viewer: Principal, client_id: int) -> dict[str, Any]:
    """The client page's view of the questionnaire: the latest result with answers, and earlier ones."""
    client = await get_client_for(viewer, client_id)
    rows = await db.fetch(
        "SELECT * FROM kyc_appropriateness_results WHERE client = {} ORDER BY taken_at DESC, id DESC LIMIT 20",
        client_id,
    )
    for r in rows:
        if isinstance(r["answers"], str):
            r["answers"] = json.loads(r["answers"])
        r["leverage_label"] = leverage_label(r["max_leverage"])
    leverage = await max_leverage_for(client_id)
    return {
        "client": client,
        "results": rows,
        "max_leverage": leverage,
        "leverage_label": leverage_label(leverage),
    }


# --- staff: editing the questionnaire -------------------------------------------------------------


async def settings_for(viewer: Principal) -> dict[str, Any]:
    require_reviewer(viewer)
    qs = await questions(active_only=False)
    return {
        "questions": qs,
        "max_points": sum(q["best"] for q in qs if q["active"]),
        "bands": await bands(),
        "cooldown_days": await parameters.value("appropriateness.cooldown_days"),
        "new_errors": {},
        "new_values": {},
        "band_errors": {},
        "band_values": {},
        "max_options": MAX_OPTIONS,
    }


async def question_for(viewer: Principal, question_id: int) -> dict[str, Any]:
    require_reviewer(viewer)
    q = next((q for q in await questions(active_only=False) if q["id"] == question_id), None)
    if q is None:
        raise NotFound("question")
    return q


def _int(raw: str, low: int, high: int) -> int | None:
    text = (raw or "").strip()
    if not text.lstrip("-").isdigit() or len(text) > 6:
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_question(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The question form: text, help, order, active and option rows `option-N-label`/`-points`
    (a row with no label is dropped)."""
    errors: dict[str, str] = {}
    text = " ".join((form.get("text") or "").split())
    help_text = " ".join((form.get("help") or "").split())
    if len(text) < 5 or len(text) > MAX_TEXT:
        errors["text"] = f"Write the question (5–{MAX_TEXT} characters)."
    if len(help_text) > MAX_TEXT:
        errors["help"] = f"Keep the hint under {MAX_TEXT} characters."
    order = _int(form.get("sort_order") or "100", 0, 100000)
    if order is None:
        errors["sort_order"] = "The position is a whole number (lower comes first)."
    options: list[dict[str, Any]] = []
    for i in range(MAX_OPTIONS):
        label = " ".join((form.get(f"option-{i}-label") or "").split())
        raw_points = form.get(f"option-{i}-points") or ""
        if not label:
            if raw_points.strip() and raw_points.strip() != "0":
                errors[f"option-{i}-label"] = "Give this answer a text, or clear its points."
            continue
        points = _int(raw_points or "0", 0, MAX_POINTS)
        if len(label) > MAX_LABEL:
            errors[f"option-{i}-label"] = f"Keep an answer under {MAX_LABEL} characters."
        if points is None:
            errors[f"option-{i}-points"] = f"Points are a whole number from 0 to {MAX_POINTS}."
        options.append({"label": label, "points": points or 0})
    if len(options) < MIN_OPTIONS and not any(k.startswith("option-") for k in errors):
        errors["options"] = f"Give at least {MIN_OPTIONS} answers to choose from."
    elif options and max(o["points"] for o in options) == 0:
        errors["options"] = "At least one answer must earn points, or the question cannot be scored."
    data = {
        "text": text,
        "help": help_text,
        "sort_order": order or 0,
        "active": form.get("active") in ("on", "true", "1"),
        "options": options,
    }
    return data, errors


async def save_question(
    viewer: Principal, question_id: int | None, form: Mapping[str, str], actor: Actor
) -> int:
    """Create a question or replace one's text and options (earlier results keep theirs)."""
    require_reviewer(viewer)
    data, errors = parse_question(form)
    if errors:
        raise FormErrors(errors)
    async with transaction():
        before = None
        if question_id is None:
            row = await db.fetchrow(
                "INSERT INTO kyc_appropriateness_questions (code, text, help, sort_order, active) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                f"custom_{secrets.token_hex(4)}",
                data["text"],
                data["help"],
                data["sort_order"],
                data["active"],
            )
            assert row is not None
            question_id = int(row["id"])
        else:
            current = await db.fetchrow(
                "SELECT id, text, help, sort_order, active FROM kyc_appropriateness_questions WHERE id = $1 FOR UPDATE",
                question_id,
            )
            if current is None:
                raise NotFound("question")
            options = await db.fetch(
                "SELECT label, points FROM kyc_appropriateness_options WHERE question = {} ORDER BY sort_order, id",
                question_id,
            )
            before = {k: current[k] for k in ("text", "help", "sort_order", "active")} | {"options": options}
            await db.fetch(
                "UPDATE kyc_appropriateness_questions SET text = {}, help = {}, sort_order = {}, active = {} "
                "WHERE id = {}",
                data["text"],
                data["help"],
                data["sort_order"],
                data["active"],
                question_id,
            )
            await db.fetch("DELETE FROM kyc_appropriateness_options WHERE question = {}", question_id)
        for position, option in enumerate(data["options"], start=1):
            await db.fetch(
                "INSERT INTO kyc_appropriateness_options (question, label, points, sort_order) VALUES ({}, {}, {}, {})",
                question_id,
                option["label"],
                option["points"],
                position * 10,
            )
        await audit.record(
            actor,
            "kyc.appropriateness_question_saved",
            "appropriateness_question",
            question_id,
            before=before,
            after=data,
        )
    return question_id


def parse_bands(form: Mapping[str, str], rows: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Band rows `band-N-min`/`-leverage`/`-passed`/`-label`; a row with neither score nor
    leverage is dropped. The first band starts at 0 and scores rise strictly."""
    errors: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for i in range(rows):
        raw_min = (form.get(f"band-{i}-min") or "").strip()
        raw_lev = (form.get(f"band-{i}-leverage") or "").strip()
        if not raw_min and not raw_lev:
            continue
        low = _int(raw_min, 0, 100)
        lev = _int(raw_lev, 1, MAX_LEVERAGE)
        label = " ".join((form.get(f"band-{i}-label") or "").split())
        if low is None:
            errors[f"band-{i}-min"] = "A score from 0 to 100."
        if lev is None:
            errors[f"band-{i}-leverage"] = f"Leverage is a whole number from 1 (none) to {MAX_LEVERAGE}."
        if len(label) > 100:
            errors[f"band-{i}-label"] = "Keep the label under 100 characters."
        out.append(
            {
                "min_score": low if low is not None else -1,
                "max_leverage": lev or 1,
                "passed": form.get(f"band-{i}-passed") in ("on", "true", "1"),
                "label": label,
            }
        )
    if not errors:
        if not out:
            errors["bands"] = "Keep at least one band."
        elif out[0]["min_score"] != 0:
            errors["bands"] = "The first band must start at a score of 0, so every score has a leverage."
        elif any(b["min_score"] <= a["min_score"] for a, b in zip(out, out[1:], strict=False)):
            errors["bands"] = "List the bands by rising score, each starting above the one before."
    return out, errors


async def save_bands(viewer: Principal, form: Mapping[str, str], rows: int, actor: Actor) -> bool:
    """Replace the bands and the cooldown (all or nothing, audited)."""
    require_reviewer(viewer)
    new, errors = parse_bands(form, rows)
    try:
        parameters.SPECS["appropriateness.cooldown_days"].parse(form.get("cooldown_days", ""))
    except ValueError as exc:
        errors["cooldown_days"] = str(exc)
    if errors:
        raise FormErrors(errors)
    async with transaction():
        current = await db.fetch(
            "SELECT min_score, max_leverage, passed, label FROM kyc_leverage_bands ORDER BY min_score FOR UPDATE"
        )
        changed = await parameters.save(
            viewer,
            {"appropriateness.cooldown_days": form.get("cooldown_days", "")},
            actor,
            keys=("appropriateness.cooldown_days",),
        )
        if current == new:
            return changed
        await db.fetch("DELETE FROM kyc_leverage_bands")
        for b in new:
            await db.fetch(
                "INSERT INTO kyc_leverage_bands (min_score, max_leverage, passed, label) VALUES ({}, {}, {}, {})",
                b["min_score"],
                b["max_leverage"],
                b["passed"],
                b["label"],
            )
        await audit.record(
            actor, "kyc.leverage_bands_changed", "kyc_parameters", None, before=current, after=new
        )
    return True
