"""Crypto deposits: each client's own address per currency, and the chain feed turned into deposits.

An address is derived, not stored-then-random: HMAC-SHA256 of (client, currency, network) under
a key derived from SECRET_KEY, so the same client always gets the same address and no two clients
share one (the column is unique as well). Whatever arrives at it belongs to that client.

`poll` reads the feed from the stored cursor and hands each item to `ingest`, one transaction per
item, and stores the new cursor only when every item went through (a crash re-reads them; that is
safe because each step is idempotent). An item is kept once per tx hash (`ChainTransaction`): the
first sighting creates the client's deposit (`pending`, with the tx hash, key `chain:<hash>`),
later ones update its confirmations (published live), and at `FundingPolicy.crypto_confirmations`
it is completed with the amount that arrived, once, however often the feed repeats it or a re-org
takes confirmations away and gives them back. A transaction dropped before credit fails the
deposit. Money to an address nobody has, in the wrong currency, or that the deposit rules refuse,
is never lost: it is recorded `unassigned`, the suspense list finance works through, and once it
has the policy's confirmations it is booked into the ledger's suspense account (Dr the chain
provider's clearing / Cr suspense, key `chain-suspense:<row id>`, once; `app.funding.suspense`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from typing import Any

from app.core import audit, db, live
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.funding import deposits, payment_methods, suspense
from app.funding.amounts import LedgerError, format_amount
from app.funding.providers import ProviderError, get, register
from app.funding.providers.simchain import KEY, ChainItem, SimChainProvider
from app.kyc.levels import RightDenied, require_right
from app.settings import get_settings

log = logging.getLogger(__name__)

NETWORKS = {"BTC": "bitcoin-sim", "ETH": "ethereum-sim", "USDT": "ethereum-sim", "USDC": "ethereum-sim"}
FEED_PAGE = 500
MAX_PAGES = 20


def provider() -> SimChainProvider:
    """The configured chain provider (tests register one pointing at their own chain)."""
    try:
        found = get(KEY)
    except ProviderError:
        found = register(SimChainProvider(get_settings().payments.chain_url))
    assert isinstance(found, SimChainProvider)
    return found


def _address_key() -> bytes:
    return hashlib.sha256(
        b"fxcrm crypto deposit addresses v1|" + get_settings().security.secret_key.encode()
    ).digest()


def derive_address(client_id: int, currency: str, network: str) -> str:
    mac = hmac.new(_address_key(), f"{client_id}|{currency}|{network}".encode(), hashlib.sha256).digest()
    if network.startswith("ethereum"):
        return "0x" + mac[:20].hex()
    return "sb1q" + base64.b32encode(mac[:25]).decode().lower().rstrip("=")[:38]


async def confirmations_needed() -> int:
    row = await db.fetchrow("SELECT crypto_confirmations FROM funding_policy WHERE id = 1")
    return int(row["crypto_confirmations"]) if row else 3


async def methods_for(client_id: int) -> list[dict[str, Any]]:
    return [
        m
        for m in await payment_methods.methods_for_client(client_id)
        if m["kind"] == "crypto" and m["provider"] == KEY
    ]


async def offered(client_id: int) -> list[dict[str, Any]]:
    """Each currency the client may deposit in crypto, with its method and network."""
    out: dict[str, dict[str, Any]] = {}
    for method in await methods_for(client_id):
        for currency in method["currencies"].split(","):
            if currency in NETWORKS and currency not in out:
                out[currency] = {
                    "currency": currency,
                    "network": NETWORKS[currency],
                    "method": method,
                    "limits": payment_methods.limits_text(method),
                }
    return list(out.values())


async def address_for(actor: Actor, client_id: int, currency: str) -> dict[str, Any]:
    """The client's deposit address for `currency` (made on first request, audited then). Raises
    `levels.RightDenied` when the client may not deposit: an address would invite money we could
    only put in suspense."""
    await require_right(client_id, "deposits")
    choice = next((o for o in await offered(client_id) if o["currency"] == currency.strip().upper()), None)
    if choice is None:
        raise FormErrors({"currency": "Choose one of the currencies offered."})
    network = choice["network"]
    row = await db.fetchrow(
        "SELECT * FROM funding_crypto_addresses WHERE client_id = $1 AND currency = $2 AND network = $3",
        client_id,
        choice["currency"],
        network,
    )
    if row is not None:
        return row
    async with db.transaction():
        row = await db.fetchrow(
            "INSERT INTO funding_crypto_addresses (client_id, currency, network, address, created_at) "
            "VALUES ($1, $2, $3, $4, now()) ON CONFLICT (address) DO NOTHING RETURNING *",
            client_id,
            choice["currency"],
            network,
            derive_address(client_id, choice["currency"], network),
        )
        if row is None:  # a concurrent request made it
            row = await db.fetchrow(
                "SELECT * FROM funding_crypto_addresses WHERE address = $1",
                derive_address(client_id, choice["currency"], network),
            )
            assert row is not None
            return row
        await audit.record(
            actor,
            "funding.crypto_address.created",
            "funding_crypto_address",
            row["id"],
            after={
                "client_id": client_id,
                "currency": row["currency"],
                "network": network,
                "address": row["address"],
            },
        )
    return row


async def crypto_deposits_of(client_id: int, limit: int = 20) -> list[dict[str, Any]]:
    return await deposits.deposits_for_client(client_id, limit, kind="crypto")


async def get_crypto_for(p: Principal, deposit_id: int) -> dict[str, Any]:
    row = await deposits.get_deposit_for(p, deposit_id)
    if row["kind"] != "crypto":
        raise NotFound("deposit")
    return row


# --- the feed -----------------------------------------------------------------------------------


@dataclass
class PollResult:
    items: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    cursor: str = ""

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


async def poll(actor: Actor | None = None, chain: SimChainProvider | None = None) -> PollResult:
    """Read the feed from where we stopped until it has nothing new (at most MAX_PAGES pages)."""
    actor = actor or Actor.system("crypto feed")
    chain = chain or provider()
    row = await db.fetchrow("SELECT cursor FROM funding_chain_cursors WHERE provider = $1", chain.key)
    cursor = row["cursor"] if row else ""
    result = PollResult(cursor=cursor)
    needed = await confirmations_needed()
    for _ in range(MAX_PAGES):
        items, next_cursor = await chain.feed(cursor, FEED_PAGE)
        for item in items:
            result.count(await ingest(actor, item, chain.key, needed))
            result.items += 1
        if next_cursor != cursor:
            await db.fetch(
                "INSERT INTO funding_chain_cursors (provider, cursor, updated_at) VALUES ({}, {}, now()) "
                "ON CONFLICT (provider) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()",
                chain.key,
                next_cursor,
            )
            cursor = next_cursor
        if len(items) < FEED_PAGE:
            break
    result.cursor = cursor
    return result


async def ingest(actor: Actor, item: ChainItem, provider_key: str, needed: int) -> str:
    """Apply one feed item; returns what happened (created, confirming, completed, unassigned,
    dropped, unchanged, ignored)."""
    if (
        not (item.amount > 0 and item.amount.is_finite())
        or not item.tx_hash
        or len(item.tx_hash) > 200
        or len(item.address) > 200
    ):
        log.warning("crypto feed: ignoring an item we cannot store: %r", item)
        return "ignored"
    if item.outgoing:  # our own payout leaving (withdrawals record it), not a deposit
        return "outgoing"
    async with db.transaction():
        seen = await db.fetchrow(
            "INSERT INTO funding_chain_transactions (provider, tx_hash, address, network, currency, amount, "
            "confirmations, status, note, resolved_by, first_seen_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, "
            "$7, 'deposit', '', '', now(), now()) ON CONFLICT (provider, tx_hash) DO NOTHING RETURNING *",
            provider_key,
            item.tx_hash,
            item.address,
            item.network[:32],
            item.currency[:8],
            item.amount,
            item.confirmations,
        )
        first = seen is not None
        if seen is None:
            seen = await db.fetchrow(
                "SELECT * FROM funding_chain_transactions WHERE provider = $1 AND tx_hash = $2 FOR UPDATE",
                provider_key,
                item.tx_hash,
            )
            assert seen is not None
        elif item.status == "dropped":  # gone before we ever saw it: no money arrived
            await db.fetch(
                "UPDATE funding_chain_transactions SET status = 'dropped' WHERE id = {}", seen["id"]
            )
            return "dropped"
        else:
            refusal = await _open_deposit(actor, seen, item)
            if refusal:
                await _unassigned(actor, seen, refusal)
                await _suspense_follows(actor, seen, item, needed)
                return "unassigned"
            seen = await db.fetchrow("SELECT * FROM funding_chain_transactions WHERE id = $1", seen["id"])
            assert seen is not None
        if seen["status"] != "deposit" or seen["deposit_id"] is None:
            if seen["confirmations"] != item.confirmations:
                await db.fetch(
                    "UPDATE funding_chain_transactions SET confirmations = {}, updated_at = now() WHERE id = {}",
                    item.confirmations,
                    seen["id"],
                )
            if seen["status"] == "unassigned":
                await _suspense_follows(actor, seen, item, needed)
            return "unchanged"
        deposit = await db.fetchrow(
            "SELECT * FROM funding_deposits WHERE id = $1 FOR UPDATE", seen["deposit_id"]
        )
        assert deposit is not None
        await db.fetch(
            "UPDATE funding_chain_transactions SET confirmations = {}, updated_at = now() WHERE id = {}",
            item.confirmations,
            seen["id"],
        )
        if deposit["status"] == "completed":
            if item.status == "dropped" and "dropped" not in seen["note"]:
                await _note(
                    seen["id"], "The chain dropped this transaction after it was credited: review it."
                )
            return "unchanged"
        if item.status == "dropped":
            await deposits.fail_deposit(actor, deposit["id"], "The transaction was dropped from the chain.")
            await db.fetch(
                "UPDATE funding_chain_transactions SET status = 'dropped', updated_at = now() WHERE id = {}",
                seen["id"],
            )
            return "dropped"
        if item.confirmations >= needed:
            done = await deposits.complete_deposit(
                actor,
                deposit["id"],
                amount=item.amount,
                currency=item.currency,
                tx_hash=item.tx_hash,
                confirmations=item.confirmations,
            )
            return "completed" if done["status"] == "completed" else "confirming"
        if deposit["confirmations"] != item.confirmations:
            await db.fetch(
                "UPDATE funding_deposits SET confirmations = {}, updated_at = now() WHERE id = {}",
                item.confirmations,
                deposit["id"],
            )
            await deposits.announce(deposit)
        return "created" if first else "confirming"


async def _open_deposit(actor: Actor, seen: dict[str, Any], item: ChainItem) -> str:
    """Create the pending deposit for a new transaction to a client's address; or say why not."""
    owner = await db.fetchrow("SELECT * FROM funding_crypto_addresses WHERE address = $1", item.address)
    if owner is None:
        return "No client has this address."
    if owner["currency"] != item.currency:
        return f"{item.currency} was sent to the client's {owner['currency']} address (client {owner['client_id']})."
    method = next(
        (o["method"] for o in await offered(owner["client_id"]) if o["currency"] == item.currency), None
    )
    if method is None:
        return f"Client {owner['client_id']} is no longer offered {item.currency} deposits."
    tx = db.DB.current_transaction.get()
    assert tx is not None
    savepoint = await tx.savepoint()
    try:
        row = await deposits.create_deposit(
            actor,
            owner["client_id"],
            method["id"],
            item.amount,
            item.currency,
            idempotency_key=deposit_key(seen["provider"], item.tx_hash),
        )
    except (LedgerError, RightDenied) as exc:
        await savepoint.rollback_to()
        return f"Client {owner['client_id']}: {exc.message}"
    await on_chain(actor, row["id"], item.tx_hash, item.address, item.confirmations)
    await db.fetch(
        "UPDATE funding_chain_transactions SET deposit_id = {}, status = 'deposit' WHERE id = {}",
        row["id"],
        seen["id"],
    )
    return ""


def deposit_key(provider_key: str, tx_hash: str) -> str:
    """The idempotency key of the deposit a chain transaction becomes (the feed's or finance's)."""
    return f"chain:{provider_key}:{tx_hash}"[:200]


async def on_chain(actor: Actor, deposit_id: int, tx_hash: str, address: str, confirmations: int) -> None:
    """A deposit just created for a chain transaction: its facts, and `pending` while it confirms
    (inside the caller's transaction)."""
    await db.fetch(
        "UPDATE funding_deposits SET tx_hash = {}, crypto_address = {}, confirmations = {}, updated_at = now() "
        "WHERE id = {}",
        tx_hash[:200],
        address[:200],
        confirmations,
        deposit_id,
    )
    await deposits.mark_pending(actor, deposit_id, provider_payment_id=tx_hash[:200])


async def _unassigned(actor: Actor, seen: dict[str, Any], why: str) -> None:
    await db.fetch(
        "UPDATE funding_chain_transactions SET status = 'unassigned', note = {}, updated_at = now() WHERE id = {}",
        why[:1000],
        seen["id"],
    )
    await audit.record(
        actor,
        "funding.chain_transaction.unassigned",
        "funding_chain_transaction",
        seen["id"],
        after={
            "tx_hash": seen["tx_hash"],
            "address": seen["address"],
            "amount": format_amount(seen["amount"], seen["currency"]),
            "currency": seen["currency"],
            "why": why,
        },
    )
    await live.publish("staff:finance", "funding.chain_transaction", chain_transaction_id=seen["id"])


async def _suspense_follows(actor: Actor, seen: dict[str, Any], item: ChainItem, needed: int) -> None:
    """An unassigned transaction enters suspense once confirmed enough (and stays there, whatever a
    re-org does later, until finance decides); one dropped after that is flagged for finance."""
    booking = suspense.chain_keys(seen["id"])[0]
    if item.status == "dropped":
        if "dropped" not in seen["note"] and await suspense.is_booked(booking):
            await _note(
                seen["id"], "The chain dropped this transaction after it was booked to suspense: review it."
            )
        return
    if item.confirmations >= needed and not await suspense.is_booked(booking):
        await book_suspense(actor, seen)


async def book_suspense(actor: Actor, seen: dict[str, Any]) -> None:
    """Dr the chain provider's clearing / Cr suspense for an unassigned transaction, once (inside the
    caller's transaction, with the ledger's own audit record)."""
    cut = suspense.bookable(seen["amount"], seen["currency"])
    dust = seen["amount"] - cut
    try:
        await suspense.book(
            actor,
            suspense.chain_keys(seen["id"])[0],
            provider=seen["provider"],
            amount=seen["amount"],
            currency=seen["currency"],
            reference=seen["tx_hash"][:200],
            memo=f"Chain payment nobody could be credited with: {seen['amount']:f} {seen['currency']} to "
            f"{seen['address'][:100]} (chain transaction {seen['id']})"
            + (
                f"; {dust:f} {seen['currency']} below the ledger's precision not booked"
                if cut and dust
                else ""
            ),
            audit=True,
        )
    except LedgerError as exc:  # refused, nothing written: the suspense reconciliation lists it
        log.warning(
            "crypto feed: chain transaction %s cannot be booked to suspense: %s", seen["id"], exc.message
        )


async def _note(chain_tx_id: int, note: str) -> None:
    await db.fetch(
        "UPDATE funding_chain_transactions SET note = CASE WHEN note = '' THEN {} ELSE note || ' ' || {} END, "
        "updated_at = now() WHERE id = {}",
        note,
        note,
        chain_tx_id,
    )
