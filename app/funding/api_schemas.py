"""What the funding JSON API reads and writes (msgspec Structs), the rows → bodies mapping, and
the reads it needs that no service offers for a caller without a Principal (an API key).

Amounts travel as strings ("100.50"), never JSON numbers: a float has lost cents before we see
it. Unknown fields are refused, so a misspelt field is never silently ignored.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import msgspec

from app.core import db
from app.core.errors import FormErrors, NotFound
from app.funding.amounts import MINOR_UNITS, LedgerError, check_amount, currency_code
from app.funding.balances import WalletBalance, wallet_balances
from app.funding.deposits import parse_amount
from app.funding.withdrawal_checks import destinations_for

TransferKind = Literal["wallet_to_account", "account_to_wallet", "account_to_account", "client_to_client"]


class DepositIn(msgspec.Struct, forbid_unknown_fields=True):
    method_id: int
    amount: str  # in `currency`, e.g. "100.00"
    currency: str
    credit_currency: str | None = None  # the wallet to credit, when not `currency` (converted)
    return_url: str = ""  # where the hosted payment page sends the client back


class WithdrawalIn(msgspec.Struct, forbid_unknown_fields=True):
    amount: str
    currency: str
    source: Literal["wallet", "account"] = "wallet"
    trading_account_id: int | None = None  # when source is "account"
    destination: str = ""  # a destination key from the client's withdrawal options (card, bank, address)


class TransferIn(msgspec.Struct, forbid_unknown_fields=True):
    kind: TransferKind
    amount: str
    currency: str
    from_account_id: int | None = None  # trading account, for account_to_wallet / account_to_account
    to_account_id: int | None = None  # trading account, for wallet_to_account / account_to_account
    to_client_id: int | None = None  # for client_to_client
    note: str = ""


class DepositOut(msgspec.Struct):
    id: int
    reference: str
    client_id: int
    status: str  # created | pending | completed | failed | cancelled
    kind: str
    amount: str
    currency: str
    fee_broker: str
    fee_provider: str
    credit_currency: str
    credited_amount: str | None
    redirect_url: str | None  # card / e-wallet: the provider's hosted payment page
    failure_reason: str
    created_at: str
    completed_at: str | None


class WithdrawalOut(msgspec.Struct):
    id: int
    client_id: int
    status: str
    source: str
    trading_account_id: int | None
    amount: str
    requested_amount: str
    currency: str
    destination: str
    approvals_required: int
    rejection_reason: str
    created_at: str
    paid_at: str | None


class TransferOut(msgspec.Struct):
    id: int
    client_id: int
    kind: str
    status: str  # pending | awaiting_approval | done | failed | rejected | cancelled
    amount: str
    currency: str
    from_account_id: int | None
    to_account_id: int | None
    to_client_id: int | None
    message: str
    created_at: str
    done_at: str | None


class DestinationOut(msgspec.Struct):
    key: str  # send as a withdrawal's `destination`
    label: str
    kind: str  # card | ewallet | wire | crypto
    returnable: str | None  # cards: what may still go back to them (return-to-source)


class DestinationsOut(msgspec.Struct):
    client_id: int
    currency: str
    destinations: list[DestinationOut]


class WalletOut(msgspec.Struct):
    currency: str
    balance: str
    available: str
    held: str


class WalletsOut(msgspec.Struct):
    client_id: int
    wallets: list[WalletOut]


def amount_of(raw: str, currency: str, field: str = "amount") -> tuple[Decimal, str]:
    """(amount, currency) as the ledger will take them, or FormErrors naming every field at fault."""
    errors: dict[str, str] = {}
    code = ""
    try:
        code = currency_code(currency)
    except LedgerError as exc:
        errors.update(exc.errors)
    try:
        value = parse_amount(raw, field)
        if code:
            value = check_amount(value, code, field=field)
        elif value <= 0:
            raise LedgerError("The amount must be positive.", field=field)
    except LedgerError as exc:
        errors.update(exc.errors)
    if errors:
        raise FormErrors(errors)
    return value, code


def money(value: Any, currency: str) -> str:
    """An amount as a string in its currency's minor units ("0.00", not "0")."""
    digits = MINOR_UNITS.get(str(currency), 2)
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits)))


def _money_or_none(value: Any, currency: str) -> str | None:
    return None if value is None else money(value, currency)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def deposit_out(row: dict[str, Any], redirect_url: str | None = None) -> DepositOut:
    return DepositOut(
        id=row["id"],
        reference=row["reference"],
        client_id=row["client_id"],
        status=row["status"],
        kind=row["kind"],
        amount=money(row["amount"], row["currency"]),
        currency=row["currency"],
        fee_broker=money(row["fee_broker"], row["currency"]),
        fee_provider=money(row["fee_provider"], row["currency"]),
        credit_currency=row["credit_currency"],
        credited_amount=_money_or_none(row["credited_amount"], row["credit_currency"]),
        redirect_url=redirect_url or None,
        failure_reason=row["failure_reason"] or "",
        created_at=str(_text(row["created_at"])),
        completed_at=_text(row["completed_at"]),
    )


def withdrawal_out(row: dict[str, Any]) -> WithdrawalOut:
    return WithdrawalOut(
        id=row["id"],
        client_id=row["client_id"],
        status=row["status"],
        source=row["source"],
        trading_account_id=row["trading_account_id"],
        amount=money(row["amount"], row["currency"]),
        requested_amount=money(row["requested_amount"], row["currency"]),
        currency=row["currency"],
        destination=row.get("destination_label") or "",
        approvals_required=int(row["approvals_required"]),
        rejection_reason=row.get("rejection_reason") or "",
        created_at=str(_text(row["created_at"])),
        paid_at=_text(row.get("paid_at")),
    )


def transfer_out(row: dict[str, Any]) -> TransferOut:
    return TransferOut(
        id=row["id"],
        client_id=row["client_id"],
        kind=row["kind"],
        status=row["status"],
        amount=money(row["amount"], row["currency"]),
        currency=row["currency"],
        from_account_id=row["from_account_id"],
        to_account_id=row["to_account_id"],
        to_client_id=row["to_client_id"],
        message=row.get("message") or "",
        created_at=str(_text(row["created_at"])),
        done_at=_text(row.get("done_at")),
    )


def wallets_out(client_id: int, wallets: list[WalletBalance]) -> WalletsOut:
    return WalletsOut(
        client_id=client_id,
        wallets=[
            WalletOut(
                w.currency,
                money(w.balance, w.currency),
                money(w.available, w.currency),
                money(w.held, w.currency),
            )
            for w in wallets
        ],
    )


async def require_client(client_id: int) -> None:
    """NotFound unless the client exists (an API key acts for the broker, so any client it names)."""
    if await db.fetchrow("SELECT 1 FROM clients WHERE id = $1", client_id) is None:
        raise NotFound("client")


async def wallets_of(client_id: int) -> WalletsOut:
    """The client's wallets; NotFound for an unknown client (an empty list means no wallet yet)."""
    await require_client(client_id)
    return wallets_out(client_id, await wallet_balances(client_id))


async def destinations_of(client_id: int, currency: str) -> DestinationsOut:
    await require_client(client_id)
    try:
        code = currency_code(currency)
    except LedgerError as exc:
        raise FormErrors(exc.errors) from None
    return DestinationsOut(
        client_id=client_id,
        currency=code,
        destinations=[
            DestinationOut(
                key=d["key"],
                label=d["label"],
                kind=str(d["destination"].get("kind", "")),
                returnable=_money_or_none(d["returnable"], code),
            )
            for d in await destinations_for(client_id, code)
        ],
    )


_NEEDS = {
    "wallet_to_account": ("to_account_id",),
    "account_to_wallet": ("from_account_id",),
    "account_to_account": ("from_account_id", "to_account_id"),
    "client_to_client": ("to_client_id",),
}


def check_transfer_shape(data: TransferIn) -> None:
    """FormErrors unless the transfer names exactly what its kind needs (and nothing it ignores)."""
    needed = _NEEDS[data.kind]
    errors = {name: f"Required for a {data.kind} transfer." for name in needed if getattr(data, name) is None}
    for name in ("from_account_id", "to_account_id", "to_client_id"):
        if name not in needed and getattr(data, name) is not None:
            errors[name] = f"Not used by a {data.kind} transfer: leave it out."
    if errors:
        raise FormErrors(errors)


async def email_of(client_id: int) -> str:
    """The recipient's e-mail: `client_transfers` names recipients by e-mail and client number, as
    a client would; an API key names them by id (NotFound-like refusals come from the service)."""
    row = await db.fetchrow("SELECT email FROM clients WHERE id = $1", client_id)
    return str(row["email"]) if row is not None else ""


def check_return_url(url: str) -> None:
    if url and (not url.startswith(("https://", "http://")) or len(url) > 2000 or not url.isprintable()):
        raise FormErrors({"return_url": "An http(s) URL of at most 2000 characters, or leave it out."})


async def customer_of(client_id: int) -> dict[str, Any]:
    """Who pays, as the provider's hosted page shows it."""
    row = await db.fetchrow("SELECT email, first_name, last_name FROM clients WHERE id = $1", client_id)
    if row is None:
        raise NotFound("client")
    name = f"{row['first_name'] or ''} {row['last_name'] or ''}".strip()
    return {"client_id": client_id, "email": row["email"], "name": name}
