"""Account types: what a client may open, configured by dealing.

A type names one group on one server. The group is checked against the server's own list when
the server answers, so a typo in `real\\standard-usd` is caught here and not when the first
client tries to open an account; the type's currency must be the group's. When the server does
not answer the type is still saved, with a note saying the group could not be checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.trading.platform import Group, PlatformError
from app.trading.tables import AccountType

MAX_LEVERAGE = 10_000
_CURRENCY = re.compile(r"^[A-Z]{3}$")
AUDITED = (
    "name",
    "server",
    "group_name",
    "currency",
    "leverages",
    "default_leverage",
    "is_demo",
    "active",
    "description",
)


def parse_leverages(text: str) -> list[int]:
    """ "30, 100,500" → [30, 100, 500]. Strict: whole numbers only, each once, 1 … 10000.

    Raises ValueError with a message fit for the form."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise ValueError("List the leverages offered as whole numbers separated by commas, e.g. 30,100,500.")
    values = []
    for p in parts:
        if not p.isdigit() or not p.isascii():
            raise ValueError(f"“{p}” is not a whole number: write 100 for 1:100.")
        n = int(p)
        if not 1 <= n <= MAX_LEVERAGE:
            raise ValueError(f"Leverage {n} is out of range (1 to {MAX_LEVERAGE}).")
        if n in values:
            raise ValueError(f"Leverage {n} is listed twice.")
        values.append(n)
    return sorted(values)


def leverages_of(account_type: dict[str, Any]) -> list[int]:
    """The stored list (validated on save), tolerant of a hand-edited row: bad items are skipped."""
    return sorted({int(p) for p in str(account_type["leverages"]).split(",") if p.strip().isdigit()})


@dataclass(frozen=True)
class TypeForm:
    name: str = ""
    server: str = ""
    group_name: str = ""
    currency: str = ""
    leverages: str = ""
    default_leverage: str = ""
    is_demo: bool = False
    active: bool = True
    description: str = ""

    @classmethod
    def from_form(cls, data: dict[str, str]) -> TypeForm:
        return cls(
            name=data.get("name", "").strip(),
            server=data.get("server", "").strip(),
            group_name=data.get("group_name", "").strip(),
            currency=data.get("currency", "").strip().upper(),
            leverages=data.get("leverages", "").strip(),
            default_leverage=data.get("default_leverage", "").strip(),
            is_demo=data.get("is_demo") == "on",
            active=data.get("active") == "on",
            description=data.get("description", "").strip(),
        )

    def values(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _require_dealing(p: Principal) -> None:
    if not allowed(p, "dealing"):
        raise PermissionError("Only dealing and administrators configure account types.")


def _validate(form: TypeForm) -> dict[str, Any]:
    errors: dict[str, str] = {}
    if not form.name or len(form.name) > 100:
        errors["name"] = "Give the type a name (up to 100 characters)."
    if not form.server.isdigit():
        errors["server"] = "Choose the server."
    if not form.group_name or len(form.group_name) > 128 or any(c in form.group_name for c in "*?,"):
        errors["group_name"] = "Write the group's full name as on the server, e.g. real\\standard-usd."
    if not _CURRENCY.match(form.currency):
        errors["currency"] = "Three letters, e.g. USD."
    leverages: list[int] = []
    try:
        leverages = parse_leverages(form.leverages)
    except ValueError as exc:
        errors["leverages"] = str(exc)
    default = 0
    if not form.default_leverage.isdigit():
        errors["default_leverage"] = "The default leverage must be a whole number."
    else:
        default = int(form.default_leverage)
        if leverages and default not in leverages:
            errors["default_leverage"] = "The default leverage must be one of those offered."
    if len(form.description) > 2000:
        errors["description"] = "Keep the description under 2000 characters."
    if errors:
        raise FormErrors(errors)
    return {
        "name": form.name,
        "server": int(form.server),
        "group_name": form.group_name,
        "currency": form.currency,
        "leverages": ",".join(str(n) for n in leverages),
        "default_leverage": default,
        "is_demo": form.is_demo,
        "active": form.active,
        "description": form.description,
    }


async def check_group(server_id: int, group_name: str, currency: str) -> tuple[Group | None, str]:
    """(the group, "") when the server lists it with this currency; raises FormErrors when the
    server says otherwise; (None, note) when the server could not be asked."""
    from app.trading import connections

    server = await db.fetchrow("SELECT id, name FROM trading_servers WHERE id = $1", server_id)
    if server is None:
        raise FormErrors({"server": "Choose the server."})
    try:
        platform = await connections.platform_for(server_id)
        groups = await platform.list_groups()
    except PlatformError as exc:
        return None, f"The group could not be checked on {server['name']}: {exc.message}"
    found = next((g for g in groups if g.name.lower() == group_name.lower()), None)
    if found is None:
        names = ", ".join(sorted(g.name for g in groups)[:12]) or "none"
        raise FormErrors(
            {"group_name": f"There is no group “{group_name}” on {server['name']}. Groups there: {names}."}
        )
    if found.currency.upper() != currency:
        raise FormErrors(
            {"currency": f"The group {found.name} is in {found.currency}; the type's currency must match."}
        )
    return found, ""


async def list_types(*, active_only: bool = False) -> list[dict[str, Any]]:
    return await db.fetch(
        "SELECT t.*, s.name AS server_name, s.active AS server_active, "
        "(SELECT count(*) FROM trading_accounts a WHERE a.account_type = t.id) AS accounts "
        "FROM trading_account_types t JOIN trading_servers s ON s.id = t.server "
        + ("WHERE t.active AND s.active " if active_only else "")
        + "ORDER BY t.is_demo DESC, t.name"
    )


async def get_type(type_id: int) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT t.*, s.name AS server_name, s.active AS server_active FROM trading_account_types t "
        "JOIN trading_servers s ON s.id = t.server WHERE t.id = $1",
        type_id,
    )
    if row is None:
        raise NotFound("account type")
    return row


async def create_type(p: Principal, form: TypeForm, actor: Actor) -> tuple[int, str]:
    """(the new type's id, a note when the group could not be checked)."""
    _require_dealing(p)
    fields = _validate(form)
    group, note = await check_group(fields["server"], fields["group_name"], fields["currency"])
    if group is not None:
        fields["group_name"] = group.name  # as the server spells it
    now = datetime.now(UTC)
    async with transaction():
        row = AccountType(**fields, created_at=now, updated_at=now)
        await row.save()
        await audit.record(
            actor,
            "trading.account_type_created",
            "trading_account_type",
            row.id,
            after={**fields, "group_checked": group is not None},
        )
    return int(row.id), note


async def update_type(p: Principal, type_id: int, form: TypeForm, actor: Actor) -> str:
    """Accounts already open keep their group and leverage: a type describes what may be opened."""
    _require_dealing(p)
    fields = _validate(form)
    old = await get_type(type_id)
    note = ""
    if (fields["server"], fields["group_name"], fields["currency"]) != (
        old["server"],
        old["group_name"],
        old["currency"],
    ):
        group, note = await check_group(fields["server"], fields["group_name"], fields["currency"])
        if group is not None:
            fields["group_name"] = group.name
    changes = {k: v for k, v in fields.items() if old[k] != v}
    if not changes:
        return note
    async with transaction():
        await AccountType.update(
            {
                **{getattr(AccountType, k): v for k, v in changes.items()},
                AccountType.updated_at: datetime.now(UTC),
            }
        ).where(AccountType.id == type_id)
        await audit.record(
            actor,
            "trading.account_type_updated",
            "trading_account_type",
            type_id,
            before={k: old[k] for k in changes},
            after=changes,
        )
    return note
