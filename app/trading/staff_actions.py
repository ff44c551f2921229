"""What dealing does to an existing account: re-link it to another client, move it to another
group, disable or enable trading, and finish an account whose creation was never confirmed.

The platform is changed first and the CRM only after it said yes, in one transaction with the
audit record: when the platform refuses, nothing in the CRM moved and the message says why.
"""

from __future__ import annotations

from typing import Any

from app.clients.services import get_client_for
from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.trading import accounts, views
from app.trading.accounts import announce, platform_for
from app.trading.platform import AccountUpdate, OutcomeUnknown, PlatformError
from app.workbench.timeline import record_event

TRADE_DISABLED = 0x4


async def _account_for_dealing(p: Principal, account_id: int, *, active: bool = True) -> dict[str, Any]:
    if not allowed(p, "dealing"):
        raise PermissionError("Only dealing and administrators change trading accounts.")
    account = await views.get_account_for(p, account_id)
    if active and (account["status"] != "active" or account["login"] is None):
        raise FormErrors({"__all__": "This account is not open on its server."})
    return account


async def relink(p: Principal, account_id: int, target: str, reason: str, actor: Actor) -> int:
    """Move the account (and its deal history) to another client; `target` is an id or an e-mail."""
    account = await _account_for_dealing(p, account_id, active=False)
    reason = reason.strip()
    errors: dict[str, str] = {}
    if len(reason) < 5:
        errors["reason"] = "Say why the account moves (at least a few words)."
    target = target.strip()
    row = None
    if target.isdigit() and int(target) < 2**31:
        row = await db.fetchrow("SELECT id FROM clients WHERE id = $1", int(target))
    elif "@" in target:
        row = await db.fetchrow("SELECT id FROM clients WHERE lower(email) = lower($1)", target)
    new_id = int(row["id"]) if row else 0
    try:
        client = await get_client_for(p, new_id) if new_id else None
    except NotFound:
        client = None
    if client is None:
        errors["target"] = "No client with this id or e-mail (that you may see)."
    elif new_id == account["client"]:
        errors["target"] = "The account belongs to this client already."
    if errors:
        raise FormErrors(errors)
    assert client is not None
    if account["login"] is not None:
        change = AccountUpdate(
            client_ref=str(new_id),
            name=f"{client['first_name']} {client['last_name']}".strip()[:128],
            email=client["email"],
        )
        try:
            await (await platform_for(account["server"])).update_account(account["login"], change)
        except PlatformError as exc:
            raise FormErrors({"__all__": f"The server refused the change: {exc.message}"}) from None
    old_id = account["client"]
    label = account["login"] or f"#{account_id}"
    async with transaction():
        moved = await db.fetch(
            "UPDATE trading_accounts SET client = {}, updated_at = now() WHERE id = {} AND client = {} RETURNING id",
            new_id,
            account_id,
            old_id,
        )
        if not moved:
            raise FormErrors({"__all__": "Someone changed this account meanwhile; reload and try again."})
        await db.fetch("UPDATE trading_deals SET client_id = {} WHERE account_id = {}", new_id, account_id)
        await audit.record(
            actor,
            "trading.account_relinked",
            "trading_account",
            account_id,
            before={"client_id": old_id},
            after={"client_id": new_id, "reason": reason},
        )
        name = f"{client['first_name']} {client['last_name']}"
        await record_event(
            old_id,
            "account",
            f"Trading account {label} moved to {name} (#{new_id}): {reason}",
            "trading_account",
            account_id,
        )
        await record_event(
            new_id,
            "account",
            f"Trading account {label} moved here from client #{old_id}: {reason}",
            "trading_account",
            account_id,
        )
        await announce(old_id, account_id)
        await announce(new_id, account_id)
    return new_id


async def change_group(p: Principal, account_id: int, group_name: str, actor: Actor) -> str:
    """Another group on the same server, in the same currency (the balance does not convert)."""
    account = await _account_for_dealing(p, account_id)
    group_name = group_name.strip()
    if not group_name:
        raise FormErrors({"group": "Choose the new group."})
    try:
        platform = await platform_for(account["server"])
        groups = await platform.list_groups()
    except PlatformError as exc:
        raise FormErrors({"group": f"The server's groups could not be read: {exc.message}"}) from None
    group = next((g for g in groups if g.name.lower() == group_name.lower()), None)
    if group is None:
        raise FormErrors({"group": f"There is no group “{group_name}” on {account['server_name']}."})
    if group.currency.upper() != account["currency"].upper():
        raise FormErrors(
            {"group": f"{group.name} is in {group.currency}; this account is in {account['currency']}."}
        )
    if group.name == account["group_name"]:
        return group.name
    try:
        await platform.update_account(account["login"], AccountUpdate(group=group.name))
    except PlatformError as exc:
        raise FormErrors({"group": f"The server refused the change: {exc.message}"}) from None
    async with transaction():
        type_row = await db.fetchrow(
            "SELECT id FROM trading_account_types WHERE server = $1 AND group_name = $2 ORDER BY active DESC, id "
            "LIMIT 1",
            account["server"],
            group.name,
        )
        await db.fetch(
            "UPDATE trading_accounts SET group_name = {}, account_type = {}, updated_at = now() WHERE id = {}",
            group.name,
            type_row["id"] if type_row else None,
            account_id,
        )
        await audit.record(
            actor,
            "trading.group_changed",
            "trading_account",
            account_id,
            before={"group": account["group_name"]},
            after={"group": group.name},
        )
        await record_event(
            account["client"],
            "account",
            f"Account {account['login']} moved from group {account['group_name']} to {group.name}",
            "trading_account",
            account_id,
        )
        await announce(account["client"], account_id)
    return group.name


async def set_trading(p: Principal, account_id: int, enabled: bool, reason: str, actor: Actor) -> None:
    """The platform's TRADE_DISABLED right: the client can still sign in and see, not trade."""
    account = await _account_for_dealing(p, account_id)
    reason = reason.strip()[:500]
    try:
        platform = await platform_for(account["server"])
        user = await platform.get_user(account["login"])
        rights = user.rights & ~TRADE_DISABLED if enabled else user.rights | TRADE_DISABLED
        if rights != user.rights:
            await platform.update_account(account["login"], AccountUpdate(rights=rights))
    except PlatformError as exc:
        raise FormErrors({"__all__": f"The server refused the change: {exc.message}"}) from None
    if account["trading_disabled"] == (not enabled):
        return
    async with transaction():
        await db.fetch(
            "UPDATE trading_accounts SET trading_disabled = {}, updated_at = now() WHERE id = {}",
            not enabled,
            account_id,
        )
        action = "trading.trading_enabled" if enabled else "trading.trading_disabled"
        await audit.record(
            actor,
            action,
            "trading_account",
            account_id,
            before={"rights": user.rights},
            after={"rights": rights, "reason": reason},
        )
        what = "enabled" if enabled else "disabled"
        await record_event(
            account["client"],
            "account",
            f"Trading {what} on account {account['login']}" + (f": {reason}" if reason else ""),
            "trading_account",
            account_id,
        )
        await announce(account["client"], account_id)


async def retry(p: Principal, account_id: int, actor: Actor) -> dict[str, Any]:
    """Dealing finishes a failed account, after checking on the server that the first attempt left
    nothing behind. The passwords are not shown to staff: the client resets them in the portal."""
    account = await _account_for_dealing(p, account_id, active=False)
    if account["status"] == "pending" and not await abandon_stale_pending(account_id, actor):
        raise FormErrors({"__all__": "This account is being opened right now; try again in a few minutes."})
    if account["status"] not in ("failed", "pending"):
        raise FormErrors({"__all__": "This account is not waiting for a retry."})
    try:
        found = await find_lost(account_id, actor)
    except PlatformError as exc:
        raise FormErrors(
            {"__all__": f"Could not check the server for an earlier attempt: {exc.message}"}
        ) from None
    if found is not None:
        return found
    await accounts.claim_for_retry(account_id, actor)
    try:
        opened = await accounts.provision(account_id, actor)
    except accounts.ProvisioningFailed as exc:
        raise FormErrors({"__all__": exc.message}) from None
    return opened.account


STALE_PENDING_SECONDS = 120  # a creation still `pending` this long was cut off (a crash, a restart)


async def abandon_stale_pending(account_id: int, actor: Actor) -> bool:
    """pending → failed (outcome unknown) for a creation cut off mid-way, so dealing can finish it.
    False when the row is not pending or is still fresh (a creation may be in flight)."""
    a = await accounts.account_row(account_id)
    if a["status"] != "pending":
        return False
    age = await db.fetchrow(
        "SELECT now() - updated_at > make_interval(secs => $2) AS stale FROM trading_accounts WHERE id = $1",
        account_id,
        STALE_PENDING_SECONDS,
    )
    if not (age and age["stale"]):
        return False
    await accounts.mark_failed(
        a, OutcomeUnknown("The opening of this account was cut off before the server answered."), actor
    )
    return True


async def find_lost(account_id: int, actor: Actor) -> dict[str, Any] | None:
    """Look on the server for the user an unconfirmed creation may have made (by the comment it
    carries); when there is one, the CRM adopts its login instead of creating a second user. The
    client then sets passwords with "reset password": the first ones were never shown."""
    a = await accounts.account_row(account_id)
    if a["status"] != "failed":
        return None
    user = await (await platform_for(a["server"])).find_user(
        a["group_name"], accounts.creation_comment(account_id)
    )
    if user is None:
        return None
    async with transaction():
        if not await accounts.record_login(a, user, was="failed"):
            return None
        await audit.record(
            actor,
            "trading.account_found",
            "trading_account",
            account_id,
            before={"status": "failed"},
            after={"status": "active", "login": user.login, "group": user.group, "server": a["server_name"]},
        )
        await record_event(
            a["client"],
            "account",
            f"Trading account {user.login} found on the server (its opening had not been confirmed)",
            "trading_account",
            account_id,
        )
        await announce(a["client"], account_id)
    return await accounts.account_row(account_id)
