"""Trading servers, as administrators configure them in the console.

The manager password is encrypted at rest (`app.trading.credentials`, the server's name bound in)
and never leaves this module again: forms show an empty field, an empty field on edit keeps the
stored one, and audit records say only *that* it changed. Renaming a server re-encrypts the stored
password under the new name, since the name is the ciphertext's associated data.
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
from app.trading import credentials
from app.trading.platform import PlatformError
from app.trading.tables import PLATFORMS, TradingServer

_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$")
AUDITED = (
    "name",
    "platform",
    "address",
    "use_tls",
    "verify_tls",
    "manager_login",
    "timeout_seconds",
    "pool_size",
    "active",
)


@dataclass(frozen=True)
class ServerForm:
    name: str = ""
    platform: str = "mt5"
    address: str = ""
    use_tls: bool = True
    verify_tls: bool = True
    manager_login: str = ""
    password: str = ""
    timeout_seconds: str = "10"
    pool_size: str = "2"
    active: bool = True

    @classmethod
    def from_form(cls, data: dict[str, str]) -> ServerForm:
        """Checkboxes are absent when unticked: absence is False."""
        return cls(
            name=data.get("name", "").strip(),
            platform=data.get("platform", "mt5").strip() or "mt5",
            address=data.get("address", "").strip(),
            use_tls=data.get("use_tls") == "on",
            verify_tls=data.get("verify_tls") == "on",
            manager_login=data.get("manager_login", "").strip(),
            password=data.get("password", ""),
            timeout_seconds=data.get("timeout_seconds", "").strip(),
            pool_size=data.get("pool_size", "").strip(),
            active=data.get("active") == "on",
        )

    def values(self) -> dict[str, Any]:
        """What the form shows back after an error: everything but the password."""
        return {k: v for k, v in self.__dict__.items() if k != "password"}


def _whole(value: str, field: str, low: int, high: int, errors: dict[str, str], label: str) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        errors[field] = f"{label} must be a whole number from {low} to {high}."
        return low
    return int(value)


def _validate(form: ServerForm, *, creating: bool) -> dict[str, Any]:
    errors: dict[str, str] = {}
    if not form.name or len(form.name) > 100:
        errors["name"] = "Give the server a name (up to 100 characters)."
    if form.platform not in PLATFORMS:
        errors["platform"] = "Choose a supported platform."
    host, sep, port = form.address.rpartition(":")
    if not sep or not _HOST.match(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        errors["address"] = "Write the address as host:port, e.g. mt5.example.com:443."
    manager = _whole(form.manager_login, "manager_login", 1, 2**63 - 1, errors, "The manager login")
    if creating and not form.password:
        errors["password"] = "Enter the manager's password."  # noqa: S105 (a form message)
    if len(form.password) > 128:
        errors["password"] = "That password is too long."  # noqa: S105 (a form message)
    timeout = _whole(form.timeout_seconds, "timeout_seconds", 1, 120, errors, "The timeout")
    pool = _whole(form.pool_size, "pool_size", 1, 16, errors, "The pool size")
    if errors:
        raise FormErrors(errors)
    return {
        "name": form.name,
        "platform": form.platform,
        "address": form.address,
        "use_tls": form.use_tls,
        # Certificate checks only mean something over TLS; keep the flag honest.
        "verify_tls": form.verify_tls and form.use_tls,
        "manager_login": manager,
        "timeout_seconds": timeout,
        "pool_size": pool,
        "active": form.active,
    }


def _require_admin(p: Principal) -> None:
    if not allowed(p):
        raise PermissionError("Only administrators configure trading servers.")


async def list_servers() -> list[dict[str, Any]]:
    """Every server, with how many accounts and account types use it (never the password)."""
    return await db.fetch(
        "SELECT s.id, s.name, s.platform, s.address, s.use_tls, s.verify_tls, s.manager_login, s.active, "
        "s.timeout_seconds, s.pool_size, s.updated_at, "
        "(SELECT count(*) FROM trading_accounts a WHERE a.server = s.id) AS accounts, "
        "(SELECT count(*) FROM trading_account_types t WHERE t.server = s.id) AS types "
        "FROM trading_servers s ORDER BY s.name"
    )


async def server_choices(*, active_only: bool = True) -> list[tuple[int, str]]:
    rows = await TradingServer.select(TradingServer.id, TradingServer.name, TradingServer.active).order_by(
        TradingServer.name
    )
    return [(r["id"], r["name"]) for r in rows if r["active"] or not active_only]


async def get_server(server_id: int) -> dict[str, Any]:
    row = await TradingServer.select(*_public_columns()).where(TradingServer.id == server_id).first()
    if row is None:
        raise NotFound("trading server")
    return row


def _public_columns() -> list[Any]:
    return [c for c in TradingServer.all_columns() if c._meta.name != "password_enc"]


async def _name_taken(name: str, except_id: int | None = None) -> bool:
    row = await db.fetchrow(
        "SELECT id FROM trading_servers WHERE lower(name) = lower($1) AND id IS DISTINCT FROM $2",
        name,
        except_id,
    )
    return row is not None


async def create_server(p: Principal, form: ServerForm, actor: Actor) -> int:
    _require_admin(p)
    fields = _validate(form, creating=True)
    now = datetime.now(UTC)
    async with transaction():
        if await _name_taken(fields["name"]):
            raise FormErrors({"name": "A server with this name exists already."})
        row = TradingServer(
            **fields,
            password_enc=credentials.encrypt(form.password, fields["name"]),
            created_at=now,
            updated_at=now,
        )
        await row.save()
        await audit.record(
            actor, "trading.server_created", "trading_server", row.id, after={**fields, "password_set": True}
        )
    return int(row.id)


async def update_server(p: Principal, server_id: int, form: ServerForm, actor: Actor) -> None:
    """A blank password keeps the stored one (re-encrypted if the name changed)."""
    _require_admin(p)
    fields = _validate(form, creating=False)
    async with transaction():
        old = await db.fetchrow("SELECT * FROM trading_servers WHERE id = $1 FOR UPDATE", server_id)
        if old is None:
            raise NotFound("trading server")
        if await _name_taken(fields["name"], server_id):
            raise FormErrors({"name": "A server with this name exists already."})
        if form.password:
            secret = form.password
        elif fields["name"] != old["name"]:
            try:
                secret = credentials.decrypt(old["password_enc"], old["name"])
            except credentials.CredentialError as exc:
                raise FormErrors({"password": f"Enter the password again: {exc}."}) from None
        else:
            secret = None
        changes: dict[str, Any] = {k: v for k, v in fields.items() if old[k] != v}
        if secret is not None:
            changes["password_enc"] = credentials.encrypt(secret, fields["name"])
        if not changes:
            return
        changes["updated_at"] = datetime.now(UTC)
        await TradingServer.update({getattr(TradingServer, k): v for k, v in changes.items()}).where(
            TradingServer.id == server_id
        )
        shown = [k for k in AUDITED if k in changes]
        after: dict[str, Any] = {k: changes[k] for k in shown}
        if form.password:
            after["password_changed"] = True
        await audit.record(
            actor,
            "trading.server_updated",
            "trading_server",
            server_id,
            before={k: old[k] for k in shown},
            after=after,
        )


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str


async def check_connection(p: Principal, server_id: int, actor: Actor) -> ConnectionCheck:
    """Sign in with the stored credentials and ask for the server's time and groups: what the CRM
    will need first. Audited, because it uses the manager credentials."""
    _require_admin(p)
    server = await get_server(server_id)
    from app.trading import connections

    try:
        message = await connections.test_connection(server_id)
        check = ConnectionCheck(True, str(message or f"Connected to {server['name']}."))
    except PlatformError as exc:
        check = ConnectionCheck(False, exc.message)
    except credentials.CredentialError as exc:
        check = ConnectionCheck(False, f"The stored password cannot be used: {exc}. Enter it again.")
    async with transaction():
        await audit.record(
            actor,
            "trading.server_tested",
            "trading_server",
            server_id,
            after={"ok": check.ok, "message": check.message[:300]},
        )
    return check
