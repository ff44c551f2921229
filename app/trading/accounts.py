"""Opening trading accounts for clients, and what clients change on them themselves.

Opening is two steps on two systems, so the CRM row comes first: it is written `pending` (and
committed, audited) before the platform is asked, then becomes `active` with its login or `failed`
with the platform's message. A crash in between leaves a visible `pending` row, never an MT5 user
the CRM does not know about. A failure the platform *reported* (weak password, unknown group,
server unreachable before sending) may be retried on the same row. A failure whose outcome is
unknown (the request went out, no answer came) may have created the user: the client is not
offered a retry, dealing checks the server and retries from the console (`staff_actions.retry`).

Passwords are generated here, shown once on the page that answers the request and never stored
or e-mailed: the e-mail carries the login and says to use that password or reset it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.core import audit, db, live, mail
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import FormErrors, NotFound
from app.kyc import appropriateness, levels
from app.trading import account_types, credentials, views
from app.trading.platform import (
    NewAccount,
    OutcomeUnknown,
    PasswordKind,
    PlatformError,
    PlatformUser,
    TradingPlatform,
)
from app.trading.tables import TradingAccount
from app.workbench.timeline import record_event

log = logging.getLogger(__name__)

# No 0/O/o, 1/l/I: people copy these by hand into a trading terminal.
_LOWER = "abcdefghijkmnpqrstuvwxyz"
_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_DIGITS = "23456789"
_SYMBOLS = "#@$%&*+=?!"
PASSWORD_LENGTH = 12
UNCONFIRMED = (
    "The trading server did not confirm whether the account was created. Our dealing team will check "
    "and finish opening it; you do not need to do anything."
)


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    """A strong password with every character class (MT5 refuses weak ones with 3006)."""
    classes = (_LOWER, _UPPER, _DIGITS, _SYMBOLS)
    chars = [secrets.choice(c) for c in classes]
    pool = "".join(classes)
    chars += [secrets.choice(pool) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


@dataclass(frozen=True)
class Opened:
    """The answer to "open an account": the only place the passwords ever appear."""

    account: dict[str, Any]
    password_main: str
    password_investor: str


class ProvisioningFailed(Exception):
    """The platform did not create the account; the row is `failed`. `retry`: the client may."""

    def __init__(self, account_id: int, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.account_id = account_id
        self.message = message
        self.retry = retry


async def platform_for(server_id: int) -> TradingPlatform:
    """The server's platform; a stored password that no longer decrypts is a platform problem too."""
    from app.trading import connections

    try:
        return await connections.platform_for(server_id)
    except credentials.CredentialError as exc:
        log.error("trading server %s: %s", server_id, exc)
        raise PlatformError(
            "The trading server is not available right now. Please try again later."
        ) from None


async def announce(client_id: int, account_id: int) -> None:
    """Open pages showing this account (the client's portal, staff on the client page) re-render it."""
    await live.publish(f"client:{client_id}", "trading.account", account_id=account_id)


# --- what a client may choose --------------------------------------------------------------------


async def allowed_leverages(client_id: int, account_type: dict[str, Any]) -> tuple[list[int], int | None]:
    """(the leverages this client may pick on this type, the appropriateness cap for live types)."""
    offered = account_types.leverages_of(account_type)
    if account_type["is_demo"]:
        return offered, None
    cap = await appropriateness.max_leverage_for(client_id)
    return ([n for n in offered if cap is None or n <= cap], cap)


async def offers_for(p: Principal) -> list[dict[str, Any]]:
    """Every active type with what this client may do with it: its leverages, or why not."""
    if not p.is_client:
        raise NotFound("client")
    out = []
    for t in await account_types.list_types(active_only=True):
        try:
            await levels.require_right(p.id, "demo_accounts" if t["is_demo"] else "live_accounts")
            refused = ""
        except levels.RightDenied as exc:
            refused = exc.message
        choices, cap = await allowed_leverages(p.id, t)
        if not refused and not choices:
            refused = f"Your appropriateness assessment allows leverage up to 1:{cap}, below this account's."
        default = (
            t["default_leverage"] if t["default_leverage"] in choices else (choices[-1] if choices else None)
        )
        out.append({**t, "choices": choices, "cap": cap, "refused": refused, "default": default})
    return out


async def _check_leverage(client_id: int, account_type: dict[str, Any], raw: str | int) -> int:
    text = str(raw).strip()
    if not text.isdigit():
        raise FormErrors({"leverage": "Choose a leverage."})
    leverage = int(text)
    choices, cap = await allowed_leverages(client_id, account_type)
    if leverage in choices:
        return leverage
    if leverage in account_types.leverages_of(account_type) and cap is not None:
        raise FormErrors({"leverage": f"Your appropriateness assessment allows leverage up to 1:{cap}."})
    offered = ", ".join(f"1:{n}" for n in choices) or "none"
    raise FormErrors({"leverage": f"Choose one of the leverages offered: {offered}."})


async def _check_right(client_id: int, account_type: dict[str, Any]) -> None:
    try:
        await levels.require_right(client_id, "demo_accounts" if account_type["is_demo"] else "live_accounts")
    except levels.RightDenied as exc:
        raise FormErrors({"__all__": exc.message}) from None


# --- opening -------------------------------------------------------------------------------------


async def open_account(p: Principal, type_id: str | int, leverage: str | int, actor: Actor) -> Opened:
    """Open a demo or live account of this type for the signed-in client."""
    if not p.is_client:
        raise NotFound("client")
    if not str(type_id).isdigit():
        raise FormErrors({"account_type": "Choose an account type."})
    try:
        t = await account_types.get_type(int(type_id))
    except NotFound:
        raise FormErrors({"account_type": "Choose an account type."}) from None
    if not (t["active"] and t["server_active"]):
        raise FormErrors({"account_type": "This account type is not available at the moment."})
    await _check_right(p.id, t)
    chosen = await _check_leverage(p.id, t, leverage)
    now = datetime.now(UTC)
    async with transaction():
        row = TradingAccount(
            client=p.id,
            server=t["server"],
            account_type=t["id"],
            group_name=t["group_name"],
            currency=t["currency"],
            leverage=chosen,
            is_demo=t["is_demo"],
            status="pending",
            created_at=now,
            updated_at=now,
        )
        await row.save()
        await audit.record(
            actor,
            "trading.account_requested",
            "trading_account",
            row.id,
            after={
                "client_id": p.id,
                "type": t["name"],
                "group": t["group_name"],
                "leverage": chosen,
                "demo": t["is_demo"],
                "server_id": t["server"],
            },
        )
        await announce(p.id, row.id)
    return await provision(int(row.id), actor)


async def retry(p: Principal, account_id: int, actor: Actor) -> Opened:
    """The client tries a failed account again, on the same row (rights and leverage re-checked)."""
    account = await views.get_account_for(p, account_id)
    if account["status"] != "failed":
        raise FormErrors({"__all__": "This account is not waiting for a retry."})
    if await last_failure_unconfirmed(account_id):
        raise FormErrors({"__all__": UNCONFIRMED})
    if account["account_type"] is not None:
        t = await account_types.get_type(account["account_type"])
        await _check_right(account["client"], t)
        await _check_leverage(account["client"], t, account["leverage"])
    await claim_for_retry(account_id, actor)
    return await provision(account_id, actor)


async def claim_for_retry(account_id: int, actor: Actor) -> None:
    """failed → pending, once: two retries at the same moment cannot both reach the platform. The
    group is taken from the account type again, so a type dealing has corrected since applies."""
    async with transaction():
        claimed = await db.fetch(
            "UPDATE trading_accounts a SET status = 'pending', error = '', updated_at = now(), group_name = "
            "COALESCE((SELECT t.group_name FROM trading_account_types t WHERE t.id = a.account_type), a.group_name) "
            "WHERE a.id = {} AND a.status = 'failed' RETURNING a.client, a.group_name",
            account_id,
        )
        if not claimed:
            raise FormErrors({"__all__": "This account is already being opened."})
        await audit.record(
            actor,
            "trading.account_retried",
            "trading_account",
            account_id,
            after={"group": claimed[0]["group_name"]},
        )
        await announce(claimed[0]["client"], account_id)


async def last_failure_unconfirmed(account_id: int) -> bool:
    row = await db.fetchrow(
        "SELECT after->>'outcome' AS outcome FROM audit_events WHERE subject_type = 'trading_account' "
        "AND subject_id = $1 AND action = 'trading.account_failed' ORDER BY seq DESC LIMIT 1",
        str(account_id),
    )
    return bool(row and row["outcome"] == "unknown")


async def account_row(account_id: int) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT a.*, t.name AS type_name, s.name AS server_name, c.first_name, c.last_name, c.email, "
        "c.country, c.language, c.phone FROM trading_accounts a JOIN trading_servers s ON s.id = a.server "
        "JOIN clients c ON c.id = a.client LEFT JOIN trading_account_types t ON t.id = a.account_type "
        "WHERE a.id = $1",
        account_id,
    )
    if row is None:
        raise NotFound("trading account")
    return row


async def record_login(a: dict[str, Any], user: PlatformUser, *, was: str) -> bool:
    """The account is open on its server as `user`: its login and first figures, if it is still
    in state `was` (False when someone else settled it first). Inside the caller's transaction."""
    rows = await db.fetch(
        "UPDATE trading_accounts SET login = {}, status = 'active', error = '', group_name = {}, leverage = {}, "
        "balance = {}, credit = {}, equity = {}, margin = 0, margin_free = {}, profit = 0, state_at = now(), "
        "updated_at = now() WHERE id = {} AND status = {} RETURNING id",
        user.login,
        user.group or a["group_name"],
        user.leverage or a["leverage"],
        user.balance,
        user.credit,
        user.balance + user.credit,
        user.balance + user.credit,
        a["id"],
        was,
    )
    return bool(rows)


def creation_comment(account_id: int) -> str:
    """Stored on the platform user at creation: the key that finds it again (`find_lost`)."""
    return f"fxcrm account {account_id}"[:32]


async def provision(account_id: int, actor: Actor) -> Opened:
    """Create the pending account on its server and record the outcome."""
    a = await account_row(account_id)
    main, investor = generate_password(), generate_password()
    new = NewAccount(
        group=a["group_name"],
        name=f"{a['first_name']} {a['last_name']}".strip()[:128],
        leverage=a["leverage"],
        password_main=main,
        password_investor=investor,
        email=a["email"],
        first_name=a["first_name"],
        last_name=a["last_name"],
        country=a["country"],
        language=a["language"],
        phone=a["phone"],
        comment=creation_comment(account_id),
        client_ref=str(a["client"]),
    )
    try:
        user = await (await platform_for(a["server"])).create_account(new)
    except PlatformError as exc:
        await mark_failed(a, exc, actor)
        raise ProvisioningFailed(
            account_id, _client_message(exc), retry=not isinstance(exc, OutcomeUnknown)
        ) from exc
    except Exception as exc:  # noqa: BLE001 (a bug or an unmapped transport error: the outcome is unknown)
        log.exception("creating trading account %s", account_id)
        unknown = OutcomeUnknown("The trading server did not answer as expected.")
        await mark_failed(a, unknown, actor)
        raise ProvisioningFailed(account_id, UNCONFIRMED, retry=False) from exc
    async with transaction():
        await record_login(a, user, was="pending")
        await audit.record(
            actor,
            "trading.account_opened",
            "trading_account",
            account_id,
            before={"status": "pending"},
            after={
                "status": "active",
                "login": user.login,
                "group": user.group or a["group_name"],
                "leverage": user.leverage or a["leverage"],
                "server": a["server_name"],
            },
        )
        kind = "demo" if a["is_demo"] else "live"
        await record_event(
            a["client"],
            "account",
            f"Opened {kind} trading account {user.login} ({a['type_name'] or a['group_name']}, 1:{a['leverage']})",
            "trading_account",
            account_id,
        )
        await mail.queue_email(
            a["email"],
            "trading_account_opened",
            {
                "first_name": a["first_name"],
                "login": user.login,
                "server": a["server_name"],
                "account_type": a["type_name"] or a["group_name"],
                "group": user.group or a["group_name"],
                "leverage": user.leverage or a["leverage"],
                "currency": a["currency"],
                "demo": a["is_demo"],
            },
            client_id=a["client"],
            language=a["language"],
        )
        await announce(a["client"], account_id)
    account = await account_row(account_id)
    return Opened(views.decorate(account), main, investor)


def _client_message(exc: PlatformError) -> str:
    if isinstance(exc, OutcomeUnknown):
        return UNCONFIRMED
    return f"Your account could not be opened: {exc.message}"


async def mark_failed(a: dict[str, Any], exc: PlatformError, actor: Actor) -> None:
    unknown = isinstance(exc, OutcomeUnknown)
    shown = UNCONFIRMED if unknown else exc.message
    async with transaction():
        await db.fetch(
            "UPDATE trading_accounts SET status = 'failed', error = {}, updated_at = now() "
            "WHERE id = {} AND status = 'pending'",
            shown[:2000],
            a["id"],
        )
        await audit.record(
            actor,
            "trading.account_failed",
            "trading_account",
            a["id"],
            before={"status": "pending"},
            after={
                "status": "failed",
                "error": exc.message[:500],
                "code": exc.code,
                "outcome": "unknown" if unknown else "refused",
            },
        )
        await record_event(
            a["client"],
            "account",
            f"Trading account ({a['type_name'] or a['group_name']}) could not be opened: {exc.message}",
            "trading_account",
            a["id"],
        )
        await announce(a["client"], a["id"])


# --- what the client changes ---------------------------------------------------------------------


async def _active_account_for(p: Principal, account_id: int) -> dict[str, Any]:
    if not p.is_client:
        raise NotFound("trading account")
    account = await views.get_account_for(p, account_id)
    if account["status"] != "active" or account["login"] is None:
        raise FormErrors({"__all__": "This account is not open."})
    return account


async def change_leverage(p: Principal, account_id: int, leverage: str | int, actor: Actor) -> int:
    """Within the type's offers and, for live accounts, the client's appropriateness cap."""
    account = await _active_account_for(p, account_id)
    if account["account_type"] is None:
        raise FormErrors({"leverage": "Leverage on this account is changed by our dealing team: contact us."})
    t = await account_types.get_type(account["account_type"])
    chosen = await _check_leverage(p.id, {**t, "is_demo": account["is_demo"]}, leverage)
    if chosen == account["leverage"]:
        return chosen
    try:
        await (await platform_for(account["server"])).change_leverage(account["login"], chosen)
    except PlatformError as exc:
        raise FormErrors({"leverage": f"The leverage was not changed: {exc.message}"}) from None
    async with transaction():
        await db.fetch(
            "UPDATE trading_accounts SET leverage = {}, updated_at = now() WHERE id = {}", chosen, account_id
        )
        await audit.record(
            actor,
            "trading.leverage_changed",
            "trading_account",
            account_id,
            before={"leverage": account["leverage"]},
            after={"leverage": chosen},
        )
        await record_event(
            p.id,
            "account",
            f"Leverage of account {account['login']}: 1:{account['leverage']} → 1:{chosen}",
            "trading_account",
            account_id,
        )
        await announce(p.id, account_id)
    return chosen


async def reset_password(p: Principal, account_id: int, kind: str, actor: Actor) -> str:
    """A new main or investor password, returned once for the page (audited without it)."""
    if kind not in (PasswordKind.MAIN, PasswordKind.INVESTOR):
        raise FormErrors({"kind": "Choose which password to reset."})
    account = await _active_account_for(p, account_id)
    password = generate_password()
    try:
        await (await platform_for(account["server"])).change_password(account["login"], password, kind)
    except PlatformError as exc:
        raise FormErrors({"__all__": f"The password was not changed: {exc.message}"}) from None
    async with transaction():
        await audit.record(
            actor,
            "trading.password_reset",
            "trading_account",
            account_id,
            after={"kind": kind, "login": account["login"]},
        )
        await record_event(
            p.id,
            "account",
            f"{kind.title()} password of account {account['login']} reset",
            "trading_account",
            account_id,
        )
    return password
