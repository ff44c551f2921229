"""Reading a bank statement export (CSV) into lines finance can match, without guessing.

Banks disagree on everything: header names, the separator (`,` `;` or tab), the decimal mark
(`1,234.56`, `1.234,56`, `1234,56`), separate credit and debit columns, a byte-order mark. We
accept the common spellings and refuse the rest with a message per line: a statement is imported
whole or not at all, so finance fixes the file and imports it again.

Only credits (money received) become lines; debits are counted and skipped. A line's `bank_id` is
the bank's own transaction id when the file has one, otherwise a hash of the line's content and
its occurrence number, so importing the same file twice adds nothing either way.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from app.funding.amounts import MINOR_UNITS

MAX_LINES = 20_000
MAX_FIELD = 500

# Header spellings, compared after lower-casing and keeping letters and digits only.
HEADERS: dict[str, tuple[str, ...]] = {
    "date": (
        "date",
        "bookingdate",
        "bookeddate",
        "bookedon",
        "valuedate",
        "transactiondate",
        "posteddate",
        "postingdate",
        "buchungstag",
        "datum",
        "valuta",
    ),
    "amount": ("amount", "value", "sum", "creditamount", "transactionamount", "betrag", "montant", "importe"),
    "credit": ("credit", "credits", "paidin", "moneyin", "haben", "gutschrift"),
    "debit": ("debit", "debits", "paidout", "moneyout", "soll", "lastschrift"),
    "currency": (
        "currency",
        "ccy",
        "cur",
        "curr",
        "currencycode",
        "wahrung",
        "waehrung",
        "devise",
    ),
    "reference": (
        "reference",
        "description",
        "details",
        "narrative",
        "remittanceinformation",
        "remittanceinfo",
        "paymentreference",
        "paymentdetails",
        "memo",
        "purpose",
        "verwendungszweck",
        "text",
        "libelle",
        "concepto",
    ),
    "payer": (
        "payer",
        "payername",
        "counterparty",
        "counterpartyname",
        "name",
        "from",
        "orderingparty",
        "sender",
        "remitter",
        "debtor",
        "debtorname",
        "auftraggeber",
    ),
    "bank_id": (
        "banktransactionid",
        "transactionid",
        "bankid",
        "banktxid",
        "txnid",
        "txid",
        "id",
        "fitid",
        "bankreference",
        "transactionreference",
        "endtoendid",
    ),
}
_LOOKUP = {alias: key for key, aliases in HEADERS.items() for alias in aliases}
_DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%Y/%m/%d", "%d-%m-%Y", "%Y%m%d", "%d.%m.%y")
_AMOUNT_CHARS = re.compile(r"^[+-]?[0-9.,]+$")


class StatementError(ValueError):
    """The file cannot be imported; `errors` lists what to fix, line by line where it can."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class ParsedLine:
    line_no: int  # the line in the file (the header is line 1)
    booked_on: str  # ISO date
    amount: Decimal
    currency: str
    reference: str
    payer: str
    bank_id: str


@dataclass
class ParsedStatement:
    lines: list[ParsedLine] = field(default_factory=list)
    debits_skipped: int = 0
    columns: dict[str, str] = field(default_factory=dict)  # our field → the file's header


def _norm_header(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.strip().lower().replace("ä", "a").replace("ü", "u"))


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _dialect(lines: list[str]) -> str:
    """The separator: the one a line near the top (the header, after any preamble) uses most."""
    counts = {sep: max((line.count(sep) for line in lines[:20]), default=0) for sep in (";", "\t", ",")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] else ","


def _is_header(row: list[str]) -> bool:
    found = map_columns(row)
    return "date" in found and ("amount" in found or "credit" in found)


def map_columns(header: list[str]) -> dict[str, int]:
    """Our field → column index. Several description-like columns are all kept (joined later)."""
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        key = _LOOKUP.get(_norm_header(name))
        if key is None:
            continue
        if key == "reference" and "reference" in found:
            found[f"reference{index}"] = index
            continue
        found.setdefault(key, index)
    return found


def _decimal_mark(samples: list[str], separator: str) -> str:
    """`.` or `,`: decided once for the whole file from the amounts that are unambiguous."""
    votes = set()
    for raw in samples:
        text = _clean_number(raw)
        marks = [c for c in text if c in ".,"]
        if not marks:
            continue
        last = marks[-1]
        tail = text.rsplit(last, 1)[1]
        if len(marks) > 1 and marks[0] != last:
            votes.add(last)  # 1.234,56 / 1,234.56: the last mark is the decimal one
        elif len(tail) != 3 or marks.count(last) > 1:
            # 12,5 or 12.50 say decimal; 1,234,567 says thousands (so the other mark is decimal)
            votes.add(last if marks.count(last) == 1 else ("," if last == "." else "."))
    if len(votes) == 1:
        return votes.pop()
    if len(votes) > 1:
        raise StatementError(
            ["The amounts mix decimal points and decimal commas; export the statement with one of them."]
        )
    return "," if separator == ";" else "."


def _clean_number(raw: str) -> str:
    text = raw.strip().replace("\u00a0", "").replace(" ", "").replace("'", "").replace("\u2019", "")
    if text.startswith("(") and text.endswith(")"):
        text = "-" + text[1:-1]
    return text


def parse_amount(raw: str, mark: str) -> Decimal:
    text = _clean_number(raw)
    if text.endswith("-"):  # 100.00- (some banks put the sign last)
        text = "-" + text[:-1]
    if not text or not _AMOUNT_CHARS.match(text):
        raise ValueError(f"the amount {raw.strip()!r} is not a number")
    thousands = "," if mark == "." else "."
    if text.count(mark) > 1:
        raise ValueError(f"the amount {raw.strip()!r} has more than one decimal mark")
    whole = text.split(mark)[0]
    if thousands in whole:
        groups = whole.lstrip("+-").split(thousands)
        if any(len(g) != 3 for g in groups[1:]) or not groups[0]:
            raise ValueError(f"the amount {raw.strip()!r} is not a number")
    if mark in text and thousands in text.split(mark)[1]:
        raise ValueError(f"the amount {raw.strip()!r} is not a number")
    try:
        return Decimal(text.replace(thousands, "").replace(mark, "."))
    except InvalidOperation:
        raise ValueError(f"the amount {raw.strip()!r} is not a number") from None


def parse_date(raw: str) -> date:
    text = raw.strip()
    if "T" in text:
        text = text.split("T", 1)[0]
    elif len(text) > 10 and " " in text:
        text = text.split(" ", 1)[0]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()  # noqa: DTZ007 (a calendar date, no time)
        except ValueError:
            continue
    raise ValueError(f"the date {raw.strip()!r} is not a date (use 2026-11-24 or 24.11.2026)")


def parse_statement(data: bytes, *, default_currency: str = "") -> ParsedStatement:
    """Every credit line of the file, or StatementError listing every problem found."""
    text = _decode(data)
    if not text.strip():
        raise StatementError(["The file is empty."])
    lines = text.splitlines()
    skipped = 0
    if lines and lines[0].strip().lower().startswith("sep=") and len(lines[0].strip()) == 5:
        separator = lines[0].strip()[4]  # Excel's "sep=;" hint
        text = text.split("\n", 1)[1] if "\n" in text else ""
        skipped = 1
    else:
        separator = _dialect(lines)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=separator))
    filled = [i for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not filled:
        raise StatementError(["The file is empty."])
    # Banks often put the account and period above the header: the header is the first row that
    # names a date and an amount column (within the first 20), else the first row with anything.
    at = next((i for i in filled[:20] if _is_header(rows[i])), filled[0])
    header, body = rows[at], rows[at + 1 :]
    first_line_no = skipped + at + 2  # the file's line number of the first row after the header
    columns = map_columns(header)
    missing = []
    if "date" not in columns:
        missing.append("a date column (date, booking date, value date …)")
    if "amount" not in columns and "credit" not in columns:
        missing.append("an amount column (amount, or credit and debit)")
    if not any(k.startswith("reference") for k in columns):
        missing.append("a reference column (reference, description, details …)")
    if "currency" not in columns and not default_currency:
        missing.append("a currency column, or choose the statement's currency on the form")
    if missing:
        found = ", ".join(h.strip() for h in header if h.strip())[:200]
        raise StatementError(
            [f"The header row (line {first_line_no - 1}) lacks {m}. Found: {found}." for m in missing]
        )
    if len(body) > MAX_LINES:
        raise StatementError([f"The file has {len(body)} lines; import at most {MAX_LINES} at a time."])

    def cell(row: list[str], key: str) -> str:
        index = columns.get(key)
        return row[index].strip() if index is not None and index < len(row) else ""

    samples = [cell(r, k) for r in body for k in ("amount", "credit", "debit") if cell(r, k)]
    mark = _decimal_mark(samples, separator)
    result = ParsedStatement(columns={k: header[i].strip() for k, i in columns.items()})
    errors: list[str] = []
    seen_ids: dict[str, int] = {}
    occurrences: dict[str, int] = {}
    for offset, row in enumerate(body):
        line_no = first_line_no + offset
        if not any(c.strip() for c in row):
            continue
        problems: list[str] = []
        amount = Decimal(0)
        try:
            if "amount" in columns and cell(row, "amount"):
                amount = parse_amount(cell(row, "amount"), mark)
            elif cell(row, "credit"):
                amount = parse_amount(cell(row, "credit"), mark)
            elif cell(row, "debit"):
                amount = -abs(parse_amount(cell(row, "debit"), mark))
            else:
                problems.append("the amount is missing")
        except ValueError as exc:
            problems.append(str(exc))
        if not problems and amount <= 0:
            result.debits_skipped += 1
            continue
        booked = ""
        try:
            booked = parse_date(cell(row, "date")).isoformat()
        except ValueError as exc:
            problems.append(str(exc) if cell(row, "date") else "the date is missing")
        currency = (cell(row, "currency") or default_currency).upper()
        if currency not in MINOR_UNITS:
            problems.append(f"unknown currency {currency!r}" if currency else "the currency is missing")
        elif not problems:
            digits = MINOR_UNITS[currency]
            if amount != amount.quantize(Decimal(1).scaleb(-digits)):
                problems.append(f"{amount} has more decimals than {currency} allows ({digits})")
        reference = " / ".join(
            cell(row, k) for k in sorted(columns) if k.startswith("reference") and cell(row, k)
        )
        payer = cell(row, "payer")
        bank_id = cell(row, "bank_id")
        if len(reference) > MAX_FIELD or len(payer) > 200 or len(bank_id) > 200:
            problems.append("a field is too long (reference 500, payer and transaction id 200 characters)")
        if bank_id:
            if bank_id in seen_ids:
                problems.append(f"the bank transaction id {bank_id!r} is also on line {seen_ids[bank_id]}")
            else:
                seen_ids[bank_id] = line_no
        if problems:
            errors.append(f"Line {line_no}: " + "; ".join(problems) + ".")
            continue
        if not bank_id:
            content = "|".join((booked, str(amount), currency, reference, payer))
            nth = occurrences.get(content, 0) + 1
            occurrences[content] = nth
            bank_id = "sha256:" + hashlib.sha256(f"{content}|{nth}".encode()).hexdigest()
        result.lines.append(ParsedLine(line_no, booked, amount, currency, reference, payer, bank_id))
    if errors:
        raise StatementError(errors)
    if not result.lines and not result.debits_skipped:
        raise StatementError(["The file has a header but no lines."])
    return result


def normalise_reference(text: str) -> str:
    """What matching compares: upper case, letters and digits only (banks drop or add spaces and
    dashes, and clients type references in any case)."""
    return re.sub(r"[^A-Z0-9]", "", text.upper())
