"""Client → client transfers: wallet to wallet in one currency, with finance's approval.

Requested by the client (or by staff on their behalf): the amount is held on the sender's wallet
at once (`awaiting_approval`), so a withdrawal racing the request cannot spend it twice. A finance
officer who did not request it approves (the hold is captured into the recipient's wallet) or
rejects with a reason (the hold is released). Both are audited with the officer's name. Until
then the sender may cancel it (`cancelled`: the hold is released, as for a rejection); finance may
do that for them too. The transfer's row is locked for each of these, so only one of them happens.

The recipient is named by e-mail *and* their client number or one of their account logins. A
client learns nothing about an e-mail address alone: whether no client has it, the second detail
does not match, or the recipient may not receive money, the answer is the same sentence.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.errors import FormErrors, NotFound
from app.funding import holds, ledger
from app.funding.amounts import AlreadySettled, LedgerError, check_amount, currency_code
from app.funding.transfers import check_key, get_transfer, insert, publish, replayed, update, view
from app.kyc.levels import RightDenied, require_right

NO_MATCH = (
    "No client matches this e-mail address together with that client number or account login, "
    "or they cannot receive transfers. Check the details with the recipient."
)
APPROVERS = ("finance", "admin")


async def find_recipient(email: str, ref: str) -> int:
    """The recipient's client id, or the one refusal that says nothing about who exists."""
    email = (email or "").strip()
    ref = (ref or "").strip().lstrip("#")
    if not email or "@" not in email or not ref.isdigit() or len(ref) > 18:
        raise LedgerError(
            "Enter the recipient's e-mail and their client number or account login.", field="recipient"
        )
    row = await db.fetchrow(
        "SELECT c.id FROM clients c WHERE lower(c.email) = lower($1) AND c.is_active AND ("
        "c.id::bigint = $2 OR EXISTS (SELECT 1 FROM trading_accounts a WHERE a.client = c.id AND a.login = $2))",
        email,
        int(ref),
    )
    if row is None:
        raise LedgerError(NO_MATCH, field="recipient")
    try:
        await require_right(int(row["id"]), "deposits")
    except RightDenied:
        raise LedgerError(NO_MATCH, field="recipient") from None
    return int(row["id"])


async def request(
    actor: Actor,
    client_id: int,
    currency: str,
    amount: Any,
    recipient_email: str,
    recipient_ref: str,
    idempotency_key: str,
    *,
    note: str = "",
) -> dict[str, Any]:
    """Hold the amount on the sender's wallet and queue the transfer for finance."""
    key = check_key(idempotency_key)
    if (first := await replayed(key, client_id, "client_to_client", amount)) is not None:
        return first
    cur = currency_code(currency)
    value = check_amount(amount, cur)
    try:
        await require_right(client_id, "withdrawals")
    except RightDenied as exc:
        raise LedgerError(exc.message, field="from") from None
    to_client = await find_recipient(recipient_email, recipient_ref)
    if to_client == client_id:
        raise LedgerError("That is your own client account: choose another recipient.", field="recipient")
    async with db.transaction():
        wallet = await ledger.wallet_for(client_id, cur, create=False)
        if wallet is None:
            raise LedgerError(f"You have no {cur} wallet.", field="from")
        transfer_id = await insert(
            actor, "client_to_client", client_id, value, cur, key, status="awaiting_approval",
            to_client_id=to_client, note=(note or "").strip()[:500],
        )  # fmt: skip
        if transfer_id is None:
            first = await replayed(key, client_id, "client_to_client", value)
            assert first is not None
            return first
        hold = await holds.hold(
            actor, wallet, value, f"transfer:{transfer_id}:hold", reference=f"transfer:{transfer_id}",
            memo=f"to client {to_client}, awaiting approval",
        )  # fmt: skip
        t = await update(transfer_id, hold_id=hold.id)
        await audit.record(actor, "funding.transfer.requested", "funding_transfer", t["id"], after=view(t))
        await publish(t, finance=True, recipient=False)  # the recipient hears of it once approved
    return t


def may_decide(p: Principal) -> bool:
    return p.is_staff and p.has_role(*APPROVERS)


async def _pending_for_decision(p: Principal, transfer_id: int) -> dict[str, Any]:
    if not may_decide(p):
        raise NotFound("transfer")
    t = await get_transfer(transfer_id, lock=True)
    if t["kind"] != "client_to_client":
        raise NotFound("transfer")
    if t["status"] != "awaiting_approval":
        raise AlreadySettled(f"This transfer was already {t['status'].replace('_', ' ')}.", field="transfer")
    if t["requester_kind"] == "staff" and t["requester_id"] == p.id:
        raise FormErrors(
            {"transfer": "You requested this transfer: another finance officer must decide on it."}
        )
    return t


async def approve(p: Principal, transfer_id: int, actor: Actor) -> dict[str, Any]:
    """Capture the held amount into the recipient's wallet (opened in that currency if needed)."""
    async with db.transaction():
        t = await _pending_for_decision(p, transfer_id)
        recipient = await db.fetchrow("SELECT is_active FROM clients WHERE id = $1", t["to_client_id"])
        if recipient is None or not recipient["is_active"]:
            raise FormErrors({"transfer": "The recipient's client account is no longer active: reject it."})
        to_wallet = await ledger.wallet_for(t["to_client_id"], t["currency"])
        assert to_wallet is not None and t["hold_id"] is not None
        captured = await holds.capture(
            actor, t["hold_id"], to_wallet, f"transfer:{t['id']}:capture", kind="transfer",
            memo=f"from client {t['client_id']}",
        )  # fmt: skip
        done = await update(
            t["id"], status="done", decided_by=actor.label[:320], transaction_id=captured.settle_transaction_id,
            done_at=datetime.now(UTC),
        )  # fmt: skip
        await audit.record(
            actor, "funding.transfer.approved", "funding_transfer", t["id"], before=view(t), after=view(done)
        )
        await publish(done, finance=True)
    return done


async def reject(p: Principal, transfer_id: int, reason: str, actor: Actor) -> dict[str, Any]:
    """Give the held amount back to the sender, with the reason they will read."""
    reason = (reason or "").strip()
    if not reason:
        raise FormErrors({"reason": "Say why the transfer is rejected: the client reads it."})
    async with db.transaction():
        t = await _pending_for_decision(p, transfer_id)
        assert t["hold_id"] is not None
        await holds.release(actor, t["hold_id"], f"transfer:{t['id']}:release", reason=reason[:500])
        done = await update(
            t["id"],
            status="rejected",
            decided_by=actor.label[:320],
            message=reason[:2000],
            done_at=datetime.now(UTC),
        )
        await audit.record(
            actor, "funding.transfer.rejected", "funding_transfer", t["id"], before=view(t), after=view(done)
        )
        await publish(done, finance=True, recipient=False)
    return done


async def cancel(p: Principal, transfer_id: int, actor: Actor) -> dict[str, Any]:
    """The sender takes back a transfer finance has not decided on: the held amount is theirs again.
    Cancelling it twice (a double click) gives the cancelled transfer back and releases nothing."""
    if not _may_cancel(p, await get_transfer(transfer_id)):
        raise NotFound("transfer")
    async with db.transaction():
        t = await get_transfer(transfer_id, lock=True)  # finance approving waits here, or we do
        if t["status"] == "cancelled":
            return {**t, "replayed": True}
        if t["status"] != "awaiting_approval":
            raise AlreadySettled(
                f"This transfer was already {_DECIDED.get(t['status'], t['status'])}: it can no longer be cancelled.",
                field="transfer",
            )
        assert t["hold_id"] is not None
        by_client = p.is_client
        await holds.release(
            actor, t["hold_id"], f"transfer:{t['id']}:release",
            reason="cancelled by the client" if by_client else "cancelled by finance for the client",
        )  # fmt: skip
        done = await update(
            t["id"], status="cancelled", decided_by=actor.label[:320], done_at=datetime.now(UTC),
            message="" if by_client else "Cancelled by our finance team at your request.",
        )  # fmt: skip
        await audit.record(
            actor, "funding.transfer.cancelled", "funding_transfer", t["id"], before=view(t), after=view(done)
        )
        await publish(done, finance=True, recipient=False)
    return done


_DECIDED = {"done": "approved", "rejected": "rejected", "pending": "sent", "failed": "failed"}


def _may_cancel(p: Principal, t: dict[str, Any]) -> bool:
    """Its sender, or finance on their behalf; to anyone else the transfer does not exist."""
    if t["kind"] != "client_to_client":
        return False
    return (p.is_client and t["client_id"] == p.id) or may_decide(p)


def may_cancel(p: Principal, t: dict[str, Any]) -> bool:
    """Whether the page shows `p` the cancel button for this transfer."""
    return t["status"] == "awaiting_approval" and _may_cancel(p, t)
