"""Desk scoping: which clients a staff member may see, as one SQL condition.

The rule (issue 3, "Desk scoping"):

- admin, compliance, finance and dealing see every client. Dealing works across the whole book
  (exposure, trade disputes) and is not a member of sales desks, so scoping it would empty its view.
- A staff member whose roles are only `sales` (or who has no role at all) sees a client when
  they own the client's assignment, or when the assignment's desk is one they are an *active*
  member of (which includes the desk's pool: owner NULL). A client with no assignment, or with
  an assignment to another desk, is invisible to them. Any role outside `sales` lifts the scope.

`get_client_for` (404, exactly as for a missing id) and `list_clients_for` (a filter) both use
`visible_client_sql`, so the page and the list can never disagree.
"""

from __future__ import annotations

from typing import Any

from app.core.auth.principal import Principal

SCOPED_ROLES = frozenset({"sales"})

_SCOPED_SQL = (
    "EXISTS (SELECT 1 FROM routing_assignments sa WHERE sa.client = {alias}.id AND ("
    "sa.owner = {{}} OR sa.desk IN ("
    "SELECT m.desk FROM routing_desk_members m WHERE m.staff = {{}} AND m.active)))"
)


def is_desk_scoped(viewer: Principal) -> bool:
    """True when the viewer sees only their own and their desks' clients."""
    return viewer.is_staff and viewer.roles <= SCOPED_ROLES


def visible_client_sql(viewer: Principal, alias: str = "c") -> tuple[str, list[Any]]:
    """A condition on `clients AS alias` (with `{}` placeholders) and its parameters, in order."""
    if not viewer.is_staff:
        return "FALSE", []
    if not is_desk_scoped(viewer):
        return "TRUE", []
    return _SCOPED_SQL.format(alias=alias), [viewer.id, viewer.id]


def visible_in_list_sql(viewer: Principal) -> tuple[str, list[Any]]:
    """The same rule for queries that already join the client's assignment as `a` (LIST_FROM; the
    assignment is unique per client, so this equals `visible_client_sql`). Written on the join,
    the agent's desks become one uncorrelated sub-select the planner evaluates once, instead of
    an EXISTS per client row."""
    if not viewer.is_staff:
        return "FALSE", []
    if not is_desk_scoped(viewer):
        return "TRUE", []
    return (
        "(a.owner = {} OR a.desk IN (SELECT m.desk FROM routing_desk_members m WHERE m.staff = {} AND m.active))",
        [viewer.id, viewer.id],
    )


async def staff_who_may_see(client_id: int, staff_ids: list[int]) -> set[int]:
    """Which of these colleagues may open this client, by the same rule as `visible_client_sql`
    (used before naming the client to them: a mention, a task)."""
    from app.core import db

    if not staff_ids:
        return set()
    scoped = _SCOPED_SQL.format(alias="c").replace("{}", "s.id")
    rows = await db.fetch(
        "SELECT s.id FROM staff_users s, clients c WHERE c.id = {} AND s.id = ANY({}) "
        f"AND (NOT (s.roles <@ {{}}::varchar[]) OR {scoped})",
        client_id,
        staff_ids,
        sorted(SCOPED_ROLES),
    )
    return {int(r["id"]) for r in rows}
