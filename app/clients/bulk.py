"""Bulk actions on the staff client list: assign an owner, add or remove a tag, change the stage.

The selection is either the ticked rows or "every client matching this filter". Either way the
server re-evaluates it, batch by batch, with the acting staff member's scope (`filter_sql` starts
with `visible_client_sql`), so nobody acts on a client they may not see, whatever ids arrive.

Each client changes in its own transaction, together with its audit record and the run's
position (the last client id handled, claimed with a conditional UPDATE). A run that stops half-way
(a crash, a deploy, a retried job) resumes after that position and never applies an action twice;
a refusal for one client (a stage move the lifecycle forbids) is counted and reported, never
fatal to the run. Small selections run in the request; larger ones in a background job that
publishes `bulk.progress` to its owner after each batch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from app.clients import lifecycle, tags
from app.clients import services as client_services
from app.clients.filters import ClientFilters
from app.clients.scoping import is_desk_scoped, visible_client_sql
from app.clients.tables import STAGES
from app.core import audit, db, jobs, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.routing import services as routing

log = logging.getLogger(__name__)

ACTIONS = {
    "assign_owner": "Assign owner",
    "add_tag": "Add tag",
    "remove_tag": "Remove tag",
    "change_stage": "Change stage",
}
INLINE_MAX = 50  # up to this many clients run in the request; more go to a background job
BATCH = 25  # clients per progress report (and per selection query)
MAX_IDS = 1000  # ticked rows; a larger selection is "all matching this filter"
MAX_FAILURES = 200  # refusals kept with their reasons (all are counted)
STALLED_AFTER = timedelta(minutes=5)
JOB_TIMEOUT = 3600  # seconds; SAQ's default (10 s) would cut a large run into many retries
POOL = "none"  # the owner value that returns clients to their desk's pool
NOT_FOUND = "Not found."

_AGENTS = (
    "SELECT DISTINCT s.id, s.name FROM routing_desk_members m JOIN staff_users s ON s.id = m.staff "
    "JOIN routing_desks d ON d.id = m.desk AND d.active WHERE m.active AND s.is_active"
)
_MY_DESKS = "SELECT md.desk FROM routing_desk_members md WHERE md.staff = {} AND md.active"


@dataclass(frozen=True)
class BulkForm:
    """What the list's bulk form posted (strings as they came; `start_run` validates)."""

    action: str = ""
    ids: tuple[str, ...] = ()
    all_matching: bool = False
    query: str = ""
    owner: str = ""
    tag: str = ""
    stage: str = ""
    reason: str = ""

    def values(self) -> dict[str, str]:
        return {
            "action": self.action,
            "owner": self.owner,
            "tag": self.tag,
            "stage": self.stage,
            "reason": self.reason,
            "all": "on" if self.all_matching else "",
        }


# --- what the form offers this viewer (decided here, not in the template) ------------------------


def allowed(viewer: Principal, action: str) -> bool:
    if not viewer.is_staff or action not in ACTIONS:
        return False
    if action == "assign_owner":
        return routing.may_reassign(viewer)
    if action == "change_stage":
        return lifecycle.may_change_manually(viewer)
    return True


def actions_for(viewer: Principal) -> list[tuple[str, str]]:
    return [(key, label) for key, label in ACTIONS.items() if allowed(viewer, key)]


def stage_targets() -> list[str]:
    """Stages staff may move a client to by hand from some stage (the lifecycle decides per client)."""
    return [s for s in STAGES if any(s in targets for targets in lifecycle.MANUAL.values())]


async def owner_choices(viewer: Principal) -> list[dict[str, Any]]:
    """Whom the viewer may hand clients to: as on the assignment panel, active members of active
    desks; a desk-scoped agent only colleagues on their own desks."""
    if not allowed(viewer, "assign_owner"):
        return []
    if is_desk_scoped(viewer):
        return await db.fetch(_AGENTS + f" AND m.desk IN ({_MY_DESKS}) ORDER BY s.name, s.id", viewer.id)
    return await db.fetch(_AGENTS + " ORDER BY s.name, s.id")


async def form_context(viewer: Principal) -> dict[str, Any]:
    """The bulk form's pickers for this viewer."""
    actions = actions_for(viewer)
    return {
        "bulk_actions": actions,
        "bulk_owners": await owner_choices(viewer) if any(a == "assign_owner" for a, _ in actions) else [],
        "bulk_stages": stage_targets() if any(a == "change_stage" for a, _ in actions) else [],
    }


# --- the selection ------------------------------------------------------------------------------


def _filters(query: str) -> ClientFilters:
    return ClientFilters.parse(parse_qs(query, keep_blank_values=True))


async def count_matching(viewer: Principal, filters: ClientFilters) -> int:
    """How many clients "select all matching this filter" would take, in the viewer's scope."""
    return (await _measure(viewer, filters))[0]


async def _measure(viewer: Principal, filters: ClientFilters) -> tuple[int, int]:
    if not viewer.is_staff:
        raise NotFound("client")
    where, args = client_services.filter_sql(viewer, filters)
    row = (
        await db.fetch(
            "SELECT count(*) AS n, coalesce(max(c.id), 0) AS top "
            + client_services.LIST_FROM
            + ("WHERE " + " AND ".join(where) if where else ""),
            *args,
        )
    )[0]
    return int(row["n"]), int(row["top"])


async def _batch(viewer: Principal, selection: dict[str, Any], after_id: int) -> list[int]:
    """The next clients of the selection after `after_id`, in id order, re-checked against the scope."""
    if "ids" in selection:
        scope, args = visible_client_sql(viewer)
        rows = await db.fetch(
            f"SELECT c.id FROM clients c WHERE c.id = ANY({{}}) AND c.id > {{}} AND {scope} "
            "ORDER BY c.id LIMIT {}",
            selection["ids"],
            after_id,
            *args,
            BATCH,
        )
    else:
        where, args = client_services.filter_sql(viewer, _filters(selection["query"]))
        where += ["c.id > {}", "c.id <= {}"]
        rows = await db.fetch(
            "SELECT c.id "
            + client_services.LIST_FROM
            + "WHERE "
            + " AND ".join(where)
            + " ORDER BY c.id LIMIT {}",
            *args,
            after_id,
            selection["max_id"],
            BATCH,
        )
    return [int(r["id"]) for r in rows]


# --- starting a run -----------------------------------------------------------------------------


async def _action_params(viewer: Principal, form: BulkForm) -> dict[str, Any]:
    errors: dict[str, str] = {}
    params: dict[str, Any] = {}
    if form.action in ("add_tag", "remove_tag"):
        tag, problem = tags.clean_tag(form.tag)
        if not tag:
            errors["tag"] = "Enter the tag."
        elif problem:
            errors["tag"] = problem
        params["tag"] = tag
    elif form.action == "assign_owner":
        raw = form.owner.strip()
        choices = {str(o["id"]): o["name"] for o in await owner_choices(viewer)}
        if raw == POOL:
            params.update(owner=None, owner_name="the desk's pool")
        elif raw in choices:
            params.update(owner=int(raw), owner_name=choices[raw])
        else:
            errors["owner"] = "Choose an active member of an active desk, or the desk's pool."
    elif form.action == "change_stage":
        reason = form.reason.strip()
        if form.stage not in stage_targets():
            errors["stage"] = "Choose the stage to move the clients to."
        if not reason:
            errors["reason"] = "Give a reason for the change."
        elif len(reason) > lifecycle.MAX_REASON:
            errors["reason"] = f"Keep the reason under {lifecycle.MAX_REASON} characters."
        params.update(stage=form.stage, reason=reason)
    if errors:
        raise FormErrors(errors)
    return params


def _ids(raw: Sequence[str]) -> list[int]:
    ids: set[int] = set()
    for value in raw:
        value = value.strip()
        if not (value.isdigit() and 0 < int(value) < 2**31):
            raise FormErrors({"__all__": "The selection was not valid; tick the clients again."})
        ids.add(int(value))
    if not ids:
        raise FormErrors({"__all__": "Tick at least one client, or choose all clients matching this filter."})
    if len(ids) > MAX_IDS:
        raise FormErrors(
            {"__all__": f"Tick at most {MAX_IDS:,} clients, or choose all clients matching this filter."}
        )
    return sorted(ids)


async def start_run(viewer: Principal, form: BulkForm, actor: Actor) -> int:
    """Record the run (audited) and carry it out: here for a small selection, else in a job.

    A ticked id the viewer may not see (or that does not exist) is reported as "Not found.",
    exactly as for a missing client, and nothing is done to it."""
    if form.action not in ACTIONS:
        raise FormErrors({"action": "Choose what to do with the selected clients."})
    if not allowed(viewer, form.action):
        raise PermissionError("Your role does not allow this bulk action.")
    params = await _action_params(viewer, form)
    failures: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    async with transaction():
        if form.all_matching:
            filters = _filters(form.query)
            total, top = await _measure(viewer, filters)
            if total == 0:
                raise FormErrors({"__all__": "No clients match this filter."})
            selection: dict[str, Any] = {"query": filters.query(), "max_id": top}
        else:
            ids = _ids(form.ids)
            scope, args = visible_client_sql(viewer)
            visible = {
                r["id"]
                for r in await db.fetch(
                    f"SELECT c.id FROM clients c WHERE c.id = ANY({{}}) AND {scope}", ids, *args
                )
            }
            failures = [{"client_id": i, "reason": NOT_FOUND} for i in ids if i not in visible]
            total = len(ids)
            selection = {"ids": sorted(visible)}
        stored = {**params, "selection": selection, "by": {"ip": actor.ip, "user_agent": actor.user_agent}}
        row = await db.fetchrow(
            "INSERT INTO client_bulk_runs (staff, action, params, total, done, failed, position, status, "
            "failures, created_at, updated_at) VALUES ($1, $2, $3::jsonb, $4, 0, $5, 0, 'queued', $6::jsonb, $7, $7) "
            "RETURNING id",
            viewer.id,
            form.action,
            json.dumps(stored),
            total,
            len(failures),
            json.dumps(failures[:MAX_FAILURES]),
            now,
        )
        assert row is not None
        run_id = int(row["id"])
        await audit.record(
            actor,
            "clients.bulk_run",
            "client_bulk_run",
            run_id,
            after={"action": form.action, **params, "selection": selection, "total": total},
        )
        if total > INLINE_MAX:
            jobs.enqueue_after_commit(
                "run_client_bulk", key=f"client-bulk-{run_id}", timeout=JOB_TIMEOUT, run_id=run_id
            )
    if total <= INLINE_MAX:
        await process(run_id)
    return run_id


# --- carrying it out ----------------------------------------------------------------------------


async def _acting_staff(staff_id: int) -> Principal | None:
    """The run's owner as they are now: roles and scope are re-read, a deactivated account acts no more."""
    row = await db.fetchrow(
        "SELECT id, email, name, roles, is_active, totp_enabled FROM staff_users WHERE id = $1", staff_id
    )
    if row is None or not row["is_active"]:
        return None
    return Principal(
        kind="staff",
        id=row["id"],
        email=row["email"],
        name=row["name"],
        session_id=0,
        mfa_passed=True,
        totp_enabled=row["totp_enabled"],
        roles=frozenset(row["roles"] or ()),
    )


async def _claim(run_id: int, client_id: int) -> bool:
    """Move the run's position to this client; False if the run is already past it (done before)."""
    row = await db.fetchrow(
        "UPDATE client_bulk_runs SET position = $2, updated_at = $3 "
        "WHERE id = $1 AND position < $2 AND status = 'running' RETURNING id",
        run_id,
        client_id,
        datetime.now(UTC),
    )
    return row is not None


async def _apply(
    action: str, params: dict[str, Any], viewer: Principal, actor: Actor, client_id: int
) -> None:
    await client_services.get_client_for(viewer, client_id)  # the scope, once more, in this transaction
    if action == "add_tag":
        await tags.put_tag(client_id, params["tag"], actor, by=viewer)
    elif action == "remove_tag":
        await tags.drop_tag(client_id, params["tag"], actor, by=viewer)
    elif action == "change_stage":
        await lifecycle.change_stage(
            client_id, params["stage"], actor, reason=params["reason"], manual_by=viewer
        )
    elif action == "assign_owner":
        await routing.reassign(client_id, params["owner"], actor, viewer)
    else:  # pragma: no cover (start_run accepts only ACTIONS)
        raise AssertionError(action)


def _reason(exc: Exception) -> str:
    if isinstance(exc, FormErrors):
        return " ".join(exc.errors.values())
    if isinstance(exc, NotFound):
        return NOT_FOUND
    return str(exc) or "Refused."


async def _one(
    run: dict[str, Any], params: dict[str, Any], viewer: Principal, actor: Actor, client_id: int
) -> None:
    """One client, in one transaction with its audit record and the run's position and count."""
    run_id = run["id"]
    try:
        async with transaction():
            if not await _claim(run_id, client_id):
                return
            await _apply(run["action"], params, viewer, actor, client_id)
            await db.fetchrow("UPDATE client_bulk_runs SET done = done + 1 WHERE id = $1", run_id)
        return
    except (FormErrors, PermissionError, NotFound) as exc:
        reason = _reason(exc)
    except Exception:  # one client's unexpected failure must not stop the others; it is logged
        log.exception("bulk run %s: client %s failed", run_id, client_id)
        reason = "Could not be changed (an internal error; it was logged)."
    async with transaction():
        if await _claim(run_id, client_id):
            await _refused(run_id, client_id, reason)


async def _refused(run_id: int, client_id: int | None, reason: str) -> None:
    await db.fetchrow(
        "UPDATE client_bulk_runs SET failed = failed + $4, failures = CASE WHEN jsonb_array_length(failures) < $2 "
        "THEN failures || $3::jsonb ELSE failures END WHERE id = $1",
        run_id,
        MAX_FAILURES,
        json.dumps([{"client_id": client_id, "reason": reason}]),
        0 if client_id is None else 1,
    )


async def _progress(staff_id: int, run_id: int) -> None:
    await live.publish(f"staff:user:{staff_id}", "bulk.progress", run_id=run_id)


async def process(run_id: int) -> dict[str, int]:
    """Carry out (or resume) the run; idempotent, and a finished run is left alone."""
    run = await db.fetchrow(
        "UPDATE client_bulk_runs SET status = 'running', updated_at = $2 "
        "WHERE id = $1 AND status <> 'finished' RETURNING *",
        run_id,
        datetime.now(UTC),
    )
    if run is None:
        return {"processed": 0}
    params = json.loads(run["params"])
    viewer = await _acting_staff(run["staff"])
    processed = 0
    if viewer is None or not allowed(viewer, run["action"]):
        async with transaction():
            await _refused(run_id, None, "The run stopped: its owner may no longer take this action.")
    else:
        by = params.get("by") or {}
        actor = viewer.actor(by.get("ip"), by.get("user_agent"))
        position = run["position"]
        while True:
            batch = await _batch(viewer, params["selection"], position)
            if not batch:
                break
            for client_id in batch:
                await _one(run, params, viewer, actor, client_id)
            processed += len(batch)
            position = batch[-1]
            await _progress(run["staff"], run_id)
    finished = await db.fetchrow(
        "UPDATE client_bulk_runs SET status = 'finished', finished_at = $2, updated_at = $2 "
        "WHERE id = $1 AND status = 'running' RETURNING id",
        run_id,
        datetime.now(UTC),
    )
    if finished is not None:
        await _progress(run["staff"], run_id)
    return {"processed": processed}


async def resume_stalled(now: datetime | None = None) -> int:
    """Carry on with runs whose job was lost or died (nothing moved for a while); returns how many."""
    cutoff = (now or datetime.now(UTC)) - STALLED_AFTER
    rows = await db.fetch(
        "SELECT id FROM client_bulk_runs WHERE status <> 'finished' AND updated_at < {} ORDER BY id LIMIT 20",
        cutoff,
    )
    for r in rows:
        await process(r["id"])
    return len(rows)
