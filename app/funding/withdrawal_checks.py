"""What would block a withdrawal, worked out before the client asks (issue 6 item 3).

The same list is shown live on the portal form, stored on the withdrawal when it is requested,
and recomputed on finance's approval screen. Each check says whether it passed and, when it did
not, whether it blocks and what the client can do about it.

- **KYC level**: `app.kyc.levels.require_right(client, "withdrawals")`.
- **Available balance**: a wallet's available funds are its ledger account's own balance (held
  funds are already moved to the hold account). From a trading account: the latest synced
  figures, `min(balance, margin_free − credit)` — credit is the broker's money and free margin
  already counts it, so it is taken off; an account never synced blocks.
- **Return to source**: card and e-wallet deposits go back to the same instrument first. Per
  instrument (`Deposit.instrument_key`) and currency, what is still returnable is the completed
  deposits' amount minus the withdrawals to it that are not rejected, cancelled or failed. While
  any instrument has something returnable, only those instruments may be chosen, and at most
  what is returnable to the chosen one.
- **Open questionnaire**: in this codebase the questionnaire a client can leave open is the
  enhanced due diligence compliance opens for a high-risk client (`kyc_profiles.risk_edd_task`,
  a task not done yet): compliance is waiting for the client's answers about their wealth and
  funds, so no money leaves until it is closed. The appropriateness questionnaire has no
  "started" state (a result exists only once completed) and is already part of the KYC level.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from app.core import db
from app.core.errors import NotFound
from app.funding import accounts
from app.funding.amounts import MINOR_UNITS, LedgerError, check_amount, format_amount, parse_typed
from app.funding.balances import wallet_balances
from app.kyc.levels import RightDenied, require_right

CARD_KINDS = ("card", "ewallet")
LIVE_STATUSES = ("moving", "requested", "approved", "paying", "paid")  # what still counts against a card


@dataclass(frozen=True)
class Check:
    key: str  # kyc | amount | balance | margin | return_to_source | destination | questionnaire
    label: str
    ok: bool
    blocking: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def blocking(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.ok and c.blocking]


# --- destinations ---------------------------------------------------------------------------------


async def returnable_by_instrument(
    client_id: int, currency: str, *, exclude_withdrawal: int | None = None
) -> list[dict[str, Any]]:
    """Each card/e-wallet the client deposited from in `currency`, with what may still go back to it."""
    rows = await db.fetch(
        "SELECT d.instrument_key, max(d.instrument) AS label, max(d.provider) AS provider, "
        "max(d.kind) AS kind, max(d.method_id) AS method_id, sum(d.amount) AS deposited, "
        "coalesce((SELECT sum(w.amount) FROM funding_withdrawals w WHERE w.client_id = {} AND w.currency = {} "
        "AND w.destination->>'instrument_key' = d.instrument_key AND w.status = ANY({}) AND w.id <> {}), 0) "
        "AS withdrawn "
        "FROM funding_deposits d WHERE d.client_id = {} AND d.currency = {} AND d.status = 'completed' "
        "AND d.kind = ANY({}) AND d.instrument_key <> '' GROUP BY d.instrument_key ORDER BY min(d.id)",
        client_id,
        currency,
        list(LIVE_STATUSES),
        exclude_withdrawal or 0,
        client_id,
        currency,
        list(CARD_KINDS),
    )
    out = []
    for r in rows:
        returnable = max(Decimal(r["deposited"]) - Decimal(r["withdrawn"]), Decimal(0))
        out.append({**r, "returnable": returnable, "label": r["label"] or "your card"})
    return out


async def destinations_for(client_id: int, currency: str) -> list[dict[str, Any]]:
    """Where a withdrawal in `currency` may go: the cards deposited from (return to source) and the
    active methods finance allows withdrawals through (wire, crypto …). Keys: `card:<instrument>`
    and `method:<id>`."""
    out: list[dict[str, Any]] = []
    for card in await returnable_by_instrument(client_id, currency):
        out.append(
            {
                "key": f"card:{card['instrument_key']}",
                "label": f"{card['label']} (up to {format_amount(card['returnable'], currency)} returnable)",
                "provider": card["provider"],
                "method_id": card["method_id"],
                "destination": {
                    "kind": card["kind"],
                    "instrument_key": card["instrument_key"],
                    "label": card["label"],
                },
                "returnable": card["returnable"],
            }
        )
    methods = await db.fetch(
        "SELECT id, name, kind, provider, currencies FROM funding_payment_methods WHERE active AND withdrawals_allowed "
        "AND kind <> ALL({}) ORDER BY sort_order, name",
        list(CARD_KINDS),
    )
    for m in methods:
        if currency not in [c.strip() for c in m["currencies"].split(",")]:
            continue
        out.append(
            {
                "key": f"method:{m['id']}",
                "label": m["name"],
                "provider": m["provider"],
                "method_id": m["id"],
                "destination": {"kind": m["kind"], "method_id": m["id"], "label": m["name"]},
                "returnable": None,
            }
        )
    return out


# --- the checks -----------------------------------------------------------------------------------


async def _kyc(client_id: int) -> Check:
    try:
        await require_right(client_id, "withdrawals")
    except RightDenied as exc:
        return Check("kyc", "Verification", False, True, exc.message)
    return Check("kyc", "Verification", True, False, "Your verification level allows withdrawals.")


async def trading_figures(client_id: int, trading_account_id: int) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT id, login, currency, status, is_demo, balance, credit, equity, margin_free, state_at "
        "FROM trading_accounts WHERE id = $1 AND client = $2",
        trading_account_id,
        client_id,
    )
    if row is None:
        raise NotFound("trading account")
    return row


def withdrawable(account: dict[str, Any]) -> Decimal | None:
    if account["balance"] is None or account["margin_free"] is None:
        return None
    free = Decimal(account["margin_free"]) - Decimal(account["credit"] or 0)
    return max(min(Decimal(account["balance"]), free), Decimal(0))


async def _open_questionnaire(client_id: int) -> Check:
    row = await db.fetchrow(
        "SELECT t.title, t.due_at FROM kyc_profiles p JOIN client_tasks t ON t.id = p.risk_edd_task "
        "WHERE p.client = $1 AND t.done_at IS NULL",
        client_id,
    )
    if row is not None:
        return Check(
            "questionnaire",
            "Questionnaires",
            False,
            True,
            "Our compliance team is waiting for your answers to the enhanced due diligence questionnaire "
            "(source of wealth and funds). Withdrawals open again once it is completed; please contact support.",
        )
    return Check("questionnaire", "Questionnaires", True, False, "No questionnaire is waiting for you.")


def parse_amount(typed: Any) -> Any:
    """An amount as a person typed it ("1,250.50"; `amounts.parse_typed`), or LedgerError;
    Decimals pass through (the JSON API's). Withdrawal and transfer forms both read it here."""
    if not isinstance(typed, str):
        return typed
    return parse_typed(typed)


async def prechecks(
    client_id: int,
    *,
    source: str,
    trading_account_id: int | None = None,
    amount: Any,
    currency: str,
    destination: str = "",
    exclude_withdrawal: int | None = None,
) -> list[Check]:
    """Every check at once, in the order the client reads them. `amount` may be anything typed:
    an unusable one is itself a blocking check, so the form shows it with the others.
    `exclude_withdrawal`: recomputing for an existing withdrawal (finance's screen), which must
    not count against its own card."""
    checks = [await _kyc(client_id)]
    value: Decimal | None = None
    try:
        currency = accounts.currency_code(currency)
        value = check_amount(parse_amount(amount), currency)
        checks.append(Check("amount", "Amount", True, False, format_amount(value, currency)))
    except LedgerError as exc:
        checks.append(Check("amount", "Amount", False, True, exc.message))
    if source == "account":
        checks.append(await _margin(client_id, trading_account_id, value, currency))
    else:
        checks.append(await _balance(client_id, value, currency))
    checks.extend(await _return_to_source(client_id, currency, destination, value, exclude_withdrawal))
    checks.append(await _open_questionnaire(client_id))
    return checks


async def _balance(client_id: int, value: Decimal | None, currency: str) -> Check:
    wallet = await accounts.wallet_for(client_id, currency, create=False) if currency in MINOR_UNITS else None
    available = Decimal(0)
    if wallet is not None:
        available = Decimal((await accounts.get_account(wallet)).balance)
    text = f"Available in your {currency} wallet: {format_amount(available, currency)}."
    if value is not None and value > available:
        return Check("balance", "Available balance", False, True, text + " The amount is more than that.")
    return Check("balance", "Available balance", True, False, text)


async def _margin(
    client_id: int, trading_account_id: int | None, value: Decimal | None, currency: str
) -> Check:
    label = "Free margin"
    if trading_account_id is None:
        return Check("margin", label, False, True, "Choose the trading account to withdraw from.")
    try:
        account = await trading_figures(client_id, trading_account_id)
    except NotFound:
        return Check("margin", label, False, True, "Choose one of your trading accounts.")
    if account["status"] != "active" or account["is_demo"]:
        return Check("margin", label, False, True, "Withdrawals are possible from active live accounts only.")
    if account["currency"] != currency:
        return Check("margin", label, False, True, f"This account is in {account['currency']}.")
    free = withdrawable(account)
    if free is None:
        return Check(
            "margin",
            label,
            False,
            True,
            "This account's figures have not been read from the trading server yet.",
        )
    text = f"Withdrawable from login {account['login']} now: {format_amount(free, currency)} (balance within free margin)."
    if value is not None and value > free:
        return Check("margin", label, False, True, text + " The amount is more than that.")
    return Check("margin", label, True, False, text)


async def _return_to_source(
    client_id: int, currency: str, destination: str, value: Decimal | None, exclude: int | None
) -> list[Check]:
    label = "Return to source"
    cards = await returnable_by_instrument(client_id, currency, exclude_withdrawal=exclude)
    owed = [c for c in cards if c["returnable"] > 0]
    if not destination:
        return [Check("destination", "Destination", False, True, "Choose where the money should go.")]
    kind, _, ident = destination.partition(":")
    if kind == "card":
        card = next((c for c in cards if c["instrument_key"] == ident), None)
        if card is None:
            return [
                Check(
                    "destination",
                    "Destination",
                    False,
                    True,
                    "Money can go back only to a card you deposited from.",
                )
            ]
        if card["returnable"] <= 0:
            return [Check(
                "return_to_source", label, False, True,
                f"Everything deposited from {card['label']} has been returned to it; choose another method.",
            )]  # fmt: skip
        if value is not None and value > card["returnable"]:
            return [Check(
                "return_to_source", label, False, True,
                f"At most {format_amount(card['returnable'], currency)} can go back to {card['label']} "
                "(what was deposited from it). Withdraw the rest in a second request to another method.",
            )]  # fmt: skip
        return [Check("return_to_source", label, True, False, f"Your money goes back to {card['label']}.")]
    offered = {d["key"] for d in await destinations_for(client_id, currency)}
    if kind != "method" or destination not in offered:
        return [
            Check(
                "destination", "Destination", False, True, f"Choose where the money should go ({currency})."
            )
        ]
    if owed:
        first = owed[0]
        return [Check(
            "return_to_source", label, False, True,
            f"Card deposits go back to the same card first: withdraw up to "
            f"{format_amount(first['returnable'], currency)} to {first['label']} before using another method.",
        )]  # fmt: skip
    return [Check("return_to_source", label, True, False, "No card deposit needs returning first.")]


async def sources_for(client_id: int) -> list[dict[str, Any]]:
    """Where a client may withdraw from, as the form offers it: each wallet with what is available,
    each live trading account with what is withdrawable now."""
    out = [
        {
            "value": f"wallet:{w.currency}",
            "label": f"{w.currency} wallet · {format_amount(w.available, w.currency)} available",
            "currency": w.currency,
        }
        for w in await wallet_balances(client_id)
    ]
    accounts = await db.fetch(
        "SELECT id FROM trading_accounts WHERE client = {} AND status = 'active' AND NOT is_demo ORDER BY id",
        client_id,
    )
    for a in accounts:
        figures = await trading_figures(client_id, a["id"])
        free = withdrawable(figures)
        shown = (
            "not synced yet" if free is None else f"{format_amount(free, figures['currency'])} withdrawable"
        )
        out.append(
            {
                "value": f"account:{a['id']}",
                "label": f"Trading account {figures['login']} · {shown}",
                "currency": figures["currency"],
            }
        )
    return out
