"""Reading bank CSV exports: header spellings, separators, decimal marks, debits, and refusals that
name the line (no database needed)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.funding.statement_csv import StatementError, normalise_reference, parse_amount, parse_statement


def parse(text: str, **kw):
    return parse_statement(text.encode(), **kw)


def test_it_reads_a_plain_comma_separated_statement() -> None:
    s = parse(
        "Date,Amount,Currency,Reference,Payer,Bank transaction id\n"
        "2026-11-20,1500.00,EUR,Deposit DABCDEFGH,Anna Muster,TX-1\n"
        '2026-11-21,"1,250.50",USD,DQWERTYUI thanks,Bob,TX-2\n'
    )
    assert [(line.amount, line.currency, line.bank_id) for line in s.lines] == [
        (Decimal("1500.00"), "EUR", "TX-1"),
        (Decimal("1250.50"), "USD", "TX-2"),
    ]
    assert s.lines[0].booked_on == "2026-11-20" and s.lines[0].payer == "Anna Muster"
    assert s.lines[0].line_no == 2


def test_it_reads_a_semicolon_statement_with_decimal_commas_and_german_headers() -> None:
    s = parse(
        "\ufeffBuchungstag;Betrag;Währung;Verwendungszweck;Auftraggeber\n"
        "24.11.2026;1.234,56;EUR;Einzahlung D7AB2CDEF;Max Mustermann\n"
        "25.11.2026;50,5;EUR;d7ab-2cde f;Max\n"
    )
    assert [line.amount for line in s.lines] == [Decimal("1234.56"), Decimal("50.5")]
    assert s.lines[0].booked_on == "2026-11-24"
    assert s.lines[0].bank_id.startswith("sha256:")  # no id column: a hash of the line


def test_it_reads_credit_and_debit_columns_and_skips_debits() -> None:
    s = parse(
        "Value date\tDescription\tDebit\tCredit\tCCY\n"
        "2026-11-20\tcard fee\t12.00\t\tEUR\n"
        "2026-11-20\tREF DABCDEFGH\t\t300.00\tEUR\n",
    )
    assert len(s.lines) == 1 and s.lines[0].amount == Decimal("300.00")
    assert s.debits_skipped == 1


def test_negative_amounts_are_debits_and_are_skipped() -> None:
    s = parse("date,amount,currency,reference\n2026-11-20,-40.00,EUR,rent\n2026-11-20,40.00,EUR,in\n")
    assert s.debits_skipped == 1 and len(s.lines) == 1


def test_a_default_currency_fills_a_file_without_a_currency_column() -> None:
    s = parse("date,amount,details\n2026-11-20,10.00,x\n", default_currency="EUR")
    assert s.lines[0].currency == "EUR"


def test_it_lists_every_bad_line_and_imports_nothing() -> None:
    with pytest.raises(StatementError) as exc:
        parse(
            "date,amount,currency,reference,bank id\n"
            "2026-11-20,10.00,EUR,ok,A\n"
            "yesterday,10.00,EUR,bad date,B\n"
            "2026-11-20,ten,EUR,bad amount,C\n"
            "2026-11-20,10.001,EUR,too precise,D\n"
            "2026-11-20,10.00,XXX,bad currency,E\n"
            "2026-11-20,10.00,EUR,same id,A\n"
        )
    errors = exc.value.errors
    assert len(errors) == 5
    assert errors[0].startswith("Line 3:") and "date" in errors[0]
    assert errors[1].startswith("Line 4:") and "'ten'" in errors[1]
    assert errors[2].startswith("Line 5:") and "decimals" in errors[2]
    assert errors[3].startswith("Line 6:") and "XXX" in errors[3]
    assert errors[4].startswith("Line 7:") and "line 2" in errors[4]


def test_a_missing_column_is_named_with_the_headers_found() -> None:
    with pytest.raises(StatementError) as exc:
        parse("when,how much\n2026-11-20,10\n", default_currency="EUR")
    text = " ".join(exc.value.errors)
    assert "date column" in text and "amount column" in text and "reference column" in text
    assert "Found: when, how much" in text


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(StatementError):
        parse("")
    with pytest.raises(StatementError, match="no lines"):
        parse("date,amount,currency,reference\n")


def test_mixed_decimal_marks_are_refused_rather_than_guessed() -> None:
    with pytest.raises(StatementError, match="mix"):
        parse('date,amount,currency,reference\n2026-11-20,"10,50",EUR,a\n2026-11-20,10.50,EUR,b\n')


def test_identical_lines_without_an_id_get_distinct_stable_ids() -> None:
    text = "date,amount,currency,reference\n2026-11-20,10.00,EUR,same\n2026-11-20,10.00,EUR,same\n"
    first, again = parse(text), parse(text)
    ids = [line.bank_id for line in first.lines]
    assert len(set(ids)) == 2
    assert ids == [line.bank_id for line in again.lines]


@pytest.mark.parametrize(
    ("raw", "mark", "value"),
    [
        ("1,234.56", ".", "1234.56"),
        ("1.234,56", ",", "1234.56"),
        ("1 234,56", ",", "1234.56"),
        ("1'234.56", ".", "1234.56"),
        ("(12.00)", ".", "-12.00"),
        ("12.00-", ".", "-12.00"),
        ("+5", ".", "5"),
    ],
)
def test_amount_spellings(raw: str, mark: str, value: str) -> None:
    assert parse_amount(raw, mark) == Decimal(value)


@pytest.mark.parametrize("raw", ["1,23,4.00", "1e3", "12.3.4", "", "abc", "1.234.5"])
def test_amounts_that_are_not_numbers_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_amount(raw, ".")


def test_references_are_compared_without_case_spaces_or_dashes() -> None:
    assert normalise_reference(" dab-cd efgh ") == "DABCDEFGH"


def test_a_preamble_above_the_header_and_an_excel_separator_hint_are_understood() -> None:
    s = parse(
        "sep=;\n"
        "Account;DE89 3704 0044 0532 0130 00\n"
        "Period;01.11.2026 - 24.11.2026\n"
        "\n"
        "Buchungstag;Betrag;Währung;Verwendungszweck\n"
        "24.11.2026;100,00;EUR;DABCDEFGH\n"
    )
    assert [line.amount for line in s.lines] == [Decimal("100.00")]
    assert s.lines[0].line_no == 6
    with pytest.raises(StatementError) as exc:
        parse("Account,123\n\ndate,amount,currency,reference\n2026-11-20,ten,EUR,x\n")
    assert exc.value.errors[0].startswith("Line 4:")
