"""Bank statements: finance imports the bank's CSV, credit lines are matched to pending wire
deposits by the reference the client quoted, and what cannot be matched waits for finance.

An import is all or nothing: the file is parsed whole first (`statement_csv`), and its lines are
stored in one transaction. A line already imported (same `bank_id`) is skipped, so importing the
same statement twice adds nothing. Then each new line is matched on its own: exactly one open wire
deposit whose reference appears in the line's description (ignoring case, spaces and dashes), in
the same currency and for the same amount, is completed with the amount received. Anything else
(no reference, several, a different amount or currency, a deposit already completed) stays
`unmatched` with a note saying why; finance matches it by hand (choosing the deposit: it is
completed with what the bank received) or ignores it with a reason. Every action is audited.

Lines are matched in the import's transaction (each in a savepoint, so one that fails is left for
finance without undoing the others), and every line still unmatched is then booked into suspense
in that same transaction (`app.funding.suspense`): the bank holds the money, we do not know whose
it is yet. Matching or ignoring such a line later first takes it out of suspense, in the
transaction of that decision. Debits never become lines, so they are never in suspense.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.auth.guards import allowed
from app.core.auth.principal import Principal
from app.core.db import DB
from app.core.errors import FormErrors, NotFound
from app.funding import deposits, suspense
from app.funding.amounts import format_amount
from app.funding.ledger import Posted
from app.funding.providers.wire import KEY as WIRE_PROVIDER
from app.funding.statement_csv import ParsedStatement, StatementError, normalise_reference, parse_statement

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 5 * 1_048_576
MATCHABLE = ("created", "pending")
_NORMALISED_REF = "regexp_replace(upper(d.reference), '[^A-Z0-9]', '', 'g')"


@dataclass(frozen=True)
class ImportResult:
    import_id: int
    new_lines: int
    duplicates: int
    debits_skipped: int
    matched: int
    unmatched: int


def _require_finance(p: Principal) -> None:
    if not (p.is_staff and allowed(p, "finance")):
        raise PermissionError("Only finance imports bank statements and matches them.")


def _label(actor: Actor) -> str:
    return (actor.label or actor.kind)[:320]


async def import_statement(
    actor: Actor, p: Principal, filename: str, data: bytes, *, default_currency: str = ""
) -> ImportResult:
    """Parse, store and auto-match a statement. StatementError (nothing stored) lists what to fix."""
    _require_finance(p)
    if len(data) > MAX_FILE_BYTES:
        raise StatementError(
            [f"The file is larger than {MAX_FILE_BYTES // 1_048_576} MB: split the statement."]
        )
    parsed: ParsedStatement = parse_statement(data, default_currency=default_currency.strip().upper())
    currencies = sorted({line.currency for line in parsed.lines})
    new_ids: list[int] = []
    async with db.transaction():
        header = await db.fetchrow(
            "INSERT INTO funding_statement_imports (filename, currency, lines, matched, imported_by, created_at) "
            "VALUES ($1, $2, 0, 0, $3, now()) RETURNING id",
            filename[:255],
            ",".join(currencies)[:8] if len(currencies) == 1 else ("mixed" if currencies else ""),
            _label(actor),
        )
        assert header is not None
        for line in parsed.lines:
            row = await db.fetchrow(
                "INSERT INTO funding_statement_lines (import_id, line_no, booked_on, amount, currency, reference, "
                "payer, bank_id, status, note, matched_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'unmatched', '', '') "
                "ON CONFLICT (bank_id) DO NOTHING RETURNING id",
                header["id"],
                line.line_no,
                line.booked_on,
                line.amount,
                line.currency,
                line.reference,
                line.payer,
                line.bank_id,
            )
            if row is not None:
                new_ids.append(int(row["id"]))
        await db.fetch(
            "UPDATE funding_statement_imports SET lines = {} WHERE id = {}", len(new_ids), header["id"]
        )
        matched = await _auto_match_all(actor, new_ids)
        in_suspense = await _book_unmatched(actor, new_ids)
        await audit.record(
            actor,
            "funding.statement.imported",
            "funding_statement_import",
            header["id"],
            after={
                "filename": filename[:255],
                "new_lines": len(new_ids),
                "duplicates": len(parsed.lines) - len(new_ids),
                "debits_skipped": parsed.debits_skipped,
                "columns": parsed.columns,
                "matched": matched,
                "in_suspense": {c: str(v) for c, v in sorted(in_suspense.items())},
            },
        )
    return ImportResult(
        import_id=int(header["id"]),
        new_lines=len(new_ids),
        duplicates=len(parsed.lines) - len(new_ids),
        debits_skipped=parsed.debits_skipped,
        matched=matched,
        unmatched=len(new_ids) - matched,
    )


async def _auto_match_all(actor: Actor, line_ids: list[int]) -> int:
    """Auto-match each new line in its own savepoint: a line whose matching fails is rolled back
    alone and left for finance with a note; how many were matched."""
    tx = DB.current_transaction.get()
    assert tx is not None
    matched = 0
    for line_id in line_ids:
        savepoint = await tx.savepoint()
        try:
            if await auto_match(actor, line_id):
                matched += 1
        except Exception as exc:  # the line is stored; finance matches it by hand
            await savepoint.rollback_to()
            log.exception("automatic matching of statement line %s failed", line_id)
            await db.fetch(
                "UPDATE funding_statement_lines SET note = {} WHERE id = {} AND status = 'unmatched'",
                f"Automatic matching failed ({type(exc).__name__}): match it by hand.",
                line_id,
            )
        else:
            await savepoint.release()
    return matched


async def _book_unmatched(actor: Actor, line_ids: list[int]) -> dict[str, Decimal]:
    """Book every still unmatched line of the import into suspense; the totals per currency (the
    import's audit record names them: the postings carry no audit record of their own)."""
    rows = await db.fetch(
        "SELECT * FROM funding_statement_lines WHERE id = ANY({}) AND status = 'unmatched' ORDER BY id",
        line_ids,
    )
    totals: dict[str, Decimal] = {}
    accounts: dict[tuple[str, str], tuple[int, int]] = {}
    for line in rows:
        if await book_line(actor, line, audit_it=False, accounts=accounts) is not None:
            totals[line["currency"]] = totals.get(line["currency"], Decimal(0)) + line["amount"]
    return totals


async def book_line(
    actor: Actor,
    line: dict[str, Any],
    *,
    audit_it: bool,
    accounts: dict[tuple[str, str], tuple[int, int]] | None = None,
) -> Posted | None:
    """Dr wire clearing / Cr suspense for an unmatched line, once (inside the caller's transaction)."""
    return await suspense.book(
        actor,
        suspense.wire_keys(line["id"])[0],
        provider=WIRE_PROVIDER,
        amount=line["amount"],
        currency=line["currency"],
        reference=line["bank_id"][:200],
        memo=f"Unmatched bank wire from {line['payer'] or 'an unknown payer'}: statement line {line['id']} "
        f"(import {line['import_id']}, booked {line['booked_on']})",
        audit=audit_it,
        accounts=accounts,
    )


async def _unsuspend(actor: Actor, line: dict[str, Any], why: str) -> int | None:
    """Take a line out of suspense (inside the caller's transaction); the unwind's transaction id
    for the caller's audit record, None when the line was never booked."""
    booking, key = suspense.wire_keys(line["id"])
    posted = await suspense.unwind(
        actor, booking, key, reference=line["bank_id"][:200], memo=why[:1000], audit=False
    )
    return None if posted is None else posted.id


async def _candidates(text: str) -> list[dict[str, Any]]:
    """Wire deposits whose reference appears in `text` (normalised), whatever their status."""
    needle = normalise_reference(text)
    if not needle:
        return []
    return await db.fetch(
        f"SELECT d.* FROM funding_deposits d WHERE d.kind = 'wire' AND length(d.reference) >= 6 "
        f"AND position({_NORMALISED_REF} IN {{}}) > 0 ORDER BY d.id",
        needle,
    )


async def auto_match(actor: Actor, line_id: int) -> bool:
    """Match one unmatched line if exactly one open deposit fits it; otherwise note why not."""
    async with db.transaction():
        line = await _locked_line(line_id)
        if line["status"] != "unmatched":
            return False
        found = await _candidates(line["reference"])
        open_ = [d for d in found if d["status"] in MATCHABLE]
        note = ""
        if not found:
            note = "No deposit reference in the description."
        elif not open_:
            refs = ", ".join(f"{d['reference']} ({d['status']})" for d in found)
            note = f"The reference belongs to a deposit that is no longer open: {refs}. A second payment?"
        elif len(open_) > 1:
            note = "Several open deposits fit: " + ", ".join(d["reference"] for d in open_) + ". Choose one."
        else:
            deposit = await _locked_deposit(open_[0]["id"])
            if deposit["status"] not in MATCHABLE or await _taken(deposit["id"]):
                note = f"Deposit {deposit['reference']} is no longer open ({deposit['status']}) or already matched."
            elif deposit["currency"] != line["currency"]:
                note = (
                    f"Deposit {deposit['reference']} is in {deposit['currency']}, the bank received "
                    f"{line['currency']}. Match it by hand if it is right."
                )
            elif deposit["amount"] != line["amount"]:
                note = (
                    f"Amount differs: deposit {deposit['reference']} expects "
                    f"{format_amount(deposit['amount'], deposit['currency'])}, the bank received "
                    f"{format_amount(line['amount'], line['currency'])}. Match it by hand to credit what was received."
                )
            else:
                await _match(actor, line, deposit, how="auto", note="")
                return True
        await db.fetch("UPDATE funding_statement_lines SET note = {} WHERE id = {}", note, line_id)
        return False


async def match_line(
    actor: Actor, p: Principal, line_id: int, deposit_id: int, note: str = ""
) -> dict[str, Any]:
    """Finance matches a line to the wire deposit it chose: the deposit is completed with the amount
    the bank received (in the currency it was received)."""
    _require_finance(p)
    async with db.transaction():
        line = await _locked_line(line_id)
        if line["status"] != "unmatched":
            raise FormErrors({"deposit_id": f"This line is already {line['status']}."})
        deposit = await db.fetchrow("SELECT * FROM funding_deposits WHERE id = $1 FOR UPDATE", deposit_id)
        if deposit is None or deposit["kind"] != "wire":
            raise FormErrors({"deposit_id": "Choose a wire deposit from the list."})
        if deposit["status"] == "completed":
            raise FormErrors(
                {
                    "deposit_id": f"Deposit {deposit['reference']} is already completed: ignore this line with a reason instead."
                }
            )
        if await _taken(deposit_id):
            raise FormErrors(
                {"deposit_id": f"Deposit {deposit['reference']} is already matched to another line."}
            )
        unwound = await _unsuspend(
            actor,
            line,
            f"Statement line {line_id} matched to deposit {deposit['reference']}: out of suspense",
        )
        return await _match(
            actor, line, deposit, how="manual", note=note.strip()[:1000], unsuspense_transaction_id=unwound
        )


async def ignore_line(actor: Actor, p: Principal, line_id: int, reason: str) -> dict[str, Any]:
    """Finance sets a line aside (not a client deposit: a refund, interest, a test payment …)."""
    _require_finance(p)
    reason = (reason or "").strip()
    if not reason:
        raise FormErrors({"reason": "Say why this line is ignored (finance reads it later)."})
    async with db.transaction():
        line = await _locked_line(line_id)
        if line["status"] != "unmatched":
            raise FormErrors({"reason": f"This line is already {line['status']}."})
        unwound = await _unsuspend(actor, line, f"Statement line {line_id} ignored: {reason}")
        new = await db.fetchrow(
            "UPDATE funding_statement_lines SET status = 'ignored', note = $2, matched_by = $3, matched_at = now() "
            "WHERE id = $1 RETURNING *",
            line_id,
            reason[:1000],
            _label(actor),
        )
        assert new is not None
        await audit.record(
            actor,
            "funding.statement_line.ignored",
            "funding_statement_line",
            line_id,
            before={"status": line["status"], "note": line["note"]},
            after={"status": "ignored", "reason": reason[:1000], "unsuspense_transaction_id": unwound},
        )
    return new


async def _match(
    actor: Actor,
    line: dict[str, Any],
    deposit: dict[str, Any],
    *,
    how: str,
    note: str,
    unsuspense_transaction_id: int | None = None,
) -> dict[str, Any]:
    completed = await deposits.complete_deposit(
        actor, deposit["id"], amount=line["amount"], currency=line["currency"]
    )
    new = await db.fetchrow(
        "UPDATE funding_statement_lines SET status = 'matched', deposit_id = $2, note = $3, matched_by = $4, "
        "matched_at = now() WHERE id = $1 RETURNING *",
        line["id"],
        deposit["id"],
        note,
        "auto" if how == "auto" else _label(actor),
    )
    assert new is not None
    await db.fetch(
        "UPDATE funding_statement_imports SET matched = matched + 1 WHERE id = {}", line["import_id"]
    )
    await audit.record(
        actor,
        "funding.statement_line.matched",
        "funding_statement_line",
        line["id"],
        before={"status": line["status"], "note": line["note"]},
        after={
            "how": how,
            "deposit_id": deposit["id"],
            "reference": deposit["reference"],
            "received": format_amount(line["amount"], line["currency"]),
            "expected": format_amount(deposit["amount"], deposit["currency"]),
            "deposit_status": completed["status"],
            "note": note,
        }
        | ({"unsuspense_transaction_id": unsuspense_transaction_id} if unsuspense_transaction_id else {}),
    )
    return new


async def _taken(deposit_id: int) -> bool:
    """A deposit is matched by one line at most (a second payment is a line of its own)."""
    row = await db.fetchrow(
        "SELECT id FROM funding_statement_lines WHERE deposit_id = $1 AND status = 'matched'", deposit_id
    )
    return row is not None


async def _locked_line(line_id: int) -> dict[str, Any]:
    row = await db.fetchrow("SELECT * FROM funding_statement_lines WHERE id = $1 FOR UPDATE", line_id)
    if row is None:
        raise NotFound("statement line")
    return row


async def _locked_deposit(deposit_id: int) -> dict[str, Any]:
    row = await db.fetchrow("SELECT * FROM funding_deposits WHERE id = $1 FOR UPDATE", deposit_id)
    assert row is not None
    return row


# --- what the finance pages read ---------------------------------------------------------------


async def recent_imports(limit: int = 20) -> list[dict[str, Any]]:
    return await db.fetch(
        "SELECT i.*, (SELECT count(*) FROM funding_statement_lines l WHERE l.import_id = i.id "
        "AND l.status = 'unmatched') AS open_lines FROM funding_statement_imports i ORDER BY i.id DESC LIMIT {}",
        limit,
    )


async def lines(
    *, status: str = "unmatched", import_id: int | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Statement lines with their deposit's reference and client, newest first."""
    where = ["true"]
    args: list[Any] = []
    if status in ("matched", "unmatched", "ignored"):
        args.append(status)
        where.append("l.status = {}")
    if import_id is not None:
        args.append(import_id)
        where.append("l.import_id = {}")
    args.append(limit)
    return await db.fetch(
        "SELECT l.*, d.reference AS deposit_reference, d.client_id, d.status AS deposit_status "
        "FROM funding_statement_lines l LEFT JOIN funding_deposits d ON d.id = l.deposit_id "
        f"WHERE {' AND '.join(where)} ORDER BY l.id DESC LIMIT {{}}",
        *args,
    )


async def get_line(p: Principal, line_id: int) -> dict[str, Any]:
    _require_finance(p)
    row = await db.fetchrow("SELECT * FROM funding_statement_lines WHERE id = $1", line_id)
    if row is None:
        raise NotFound("statement line")
    return row


async def open_wire_deposits(search: str = "", limit: int = 50) -> list[dict[str, Any]]:
    """The deposits finance may match a line to: open wire deposits, by reference, client name or
    e-mail, with their receipt flag."""
    text = search.strip()[:100]
    pattern = f"%{text.replace('%', '').replace('_', '')}%"
    return await db.fetch(
        "SELECT d.id, d.reference, d.amount, d.currency, d.status, d.created_at, d.client_id, "
        "d.receipt_path <> '' AS has_receipt, c.first_name, c.last_name, c.email "
        "FROM funding_deposits d JOIN clients c ON c.id = d.client_id "
        "WHERE d.kind = 'wire' AND d.status IN ('created', 'pending') AND ({} = '' OR d.reference ILIKE {} "
        "OR c.email ILIKE {} OR (c.first_name || ' ' || c.last_name) ILIKE {}) ORDER BY d.id DESC LIMIT {}",
        text,
        pattern,
        pattern,
        pattern,
        limit,
    )


async def counts() -> dict[str, int]:
    rows = await db.fetch("SELECT status, count(*) AS n FROM funding_statement_lines GROUP BY status")
    out = {"matched": 0, "unmatched": 0, "ignored": 0}
    out.update({r["status"]: int(r["n"]) for r in rows})
    return out
