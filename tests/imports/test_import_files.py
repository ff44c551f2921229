"""Uploading a CSV file: text only, a named encoding, a detected delimiter, a readable structure;
then the column mapping with its guesses and the preview. A file that cannot be read is refused
with the reason, and nothing of it is stored."""

from __future__ import annotations

import csv

import pytest

from app.core.errors import FormErrors
from app.imports import reading, rows, services
from app.imports.tables import ImportRun
from tests.imports.conftest import HEADER, MAPPING, csv_bytes, person


async def refused(staff, data: bytes, **kw) -> str:
    with pytest.raises(FormErrors) as exc:
        await services.upload(staff["sales"], "people.csv", data, staff["sales"].actor(), **kw)
    assert await ImportRun.count() == 0, "a refused file must not be stored"
    return exc.value.errors.get("file") or exc.value.errors.get("delimiter") or ""


async def test_a_file_that_is_not_utf8_is_refused_with_the_byte_and_its_line(staff):
    data = csv_bytes(person(1), person(2, first_name="Zoë")).replace("ë".encode(), "ë".encode("cp1252"))
    message = await refused(staff, data)
    assert "not valid UTF-8" in message and "0xEB" in message and "line 3" in message
    assert "Windows-1252" in message  # says what to do about it


async def test_a_windows_1252_file_is_read_when_the_user_chooses_that_encoding(staff):
    data = csv_bytes(person(1, last_name="Müller")).decode().encode("cp1252")
    run_id = await services.upload(
        staff["sales"], "old-excel.csv", data, staff["sales"].actor(), encoding="cp1252"
    )
    run = await services.load_run(run_id)
    assert run["encoding"] == "cp1252"
    preview = await services.preview(staff["sales"], run_id, {**MAPPING, "mode": "create", "assign": ""})
    assert preview["rows"][0]["cells"][2] == "Müller"


async def test_a_utf8_file_with_a_bom_loses_the_bom_before_the_first_column_name(staff):
    run_id = await services.upload(
        staff["sales"], "bom.csv", b"\xef\xbb\xbf" + csv_bytes(person(1)), staff["sales"].actor()
    )
    run = await services.load_run(run_id)
    assert run["header"][0] == "email" and run["encoding"] == "utf-8-sig"
    assert rows.guess_mapping(run["header"])[0] == "email"


@pytest.mark.parametrize(
    ("delimiter", "name"), [(",", "comma"), (";", "semicolon"), ("\t", "tab"), ("|", "pipe")]
)
async def test_the_delimiter_is_detected(staff, delimiter, name):
    lines = [line.replace(",", delimiter) for line in (HEADER, person(1), person(2))]
    run_id = await services.upload(
        staff["sales"], "x.csv", ("\n".join(lines) + "\n").encode(), staff["sales"].actor()
    )
    run = await services.load_run(run_id)
    assert run["delimiter"] == delimiter and len(run["header"]) == 6
    assert services.progress(run)["delimiter_name"] == name


async def test_values_with_commas_do_not_fool_the_detection_of_a_semicolon_file(staff):
    data = b'email;first_name;last_name;tags\nann@x.test;Ann;Lee;"vip, gold"\nbob@x.test;Bob;Ray;"a, b, c"\n'
    assert reading.read(data).delimiter == ";"


async def test_a_chosen_delimiter_the_file_does_not_use_is_refused_and_the_right_one_named(staff):
    message = await refused(staff, csv_bytes(person(1)).replace(b",", b";"), delimiter=",")
    assert "single column" in message and "seems to use semicolons" in message


async def test_a_file_with_no_delimiter_at_all_is_refused(staff):
    message = await refused(staff, b"email\nann@x.test\n")
    assert "Could not find the delimiter" in message


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "empty"),
        (HEADER.encode() + b"\n", "no rows"),
        (b"PK\x03\x04\x14\x00\x06\x00rest-of-a-workbook", "Excel workbook"),
        (b"\xff\xfee\x00m\x00a\x00i\x00l\x00", "UTF-16"),
        (b"email,first_name\nann@x.test,A\x00nn\n", "binary data"),
    ],
)
async def test_files_that_are_not_a_csv_of_clients_are_refused(staff, data, phrase):
    assert phrase in await refused(staff, data)


async def test_a_huge_line_is_refused_with_its_line_number(staff):
    huge = "x" * (csv.field_size_limit() + 10)
    message = await refused(staff, csv_bytes(person(1), person(2, first_name=huge)))
    assert "Line 3" in message and "longer than" in message


async def test_a_quote_that_is_never_closed_is_refused(staff):
    message = await refused(staff, csv_bytes(person(1), '"ann@x.test,Ann,Lee,,DE,de', person(3)))
    assert "never closed" in message and "line 3" in message


async def test_a_file_over_the_size_limit_is_refused(staff):
    line = person(1) + "\n"
    data = csv_bytes() + line.encode() * (reading.MAX_BYTES // len(line) + 1)
    assert "the limit is 20 MB" in await refused(staff, data)


# --- mapping --------------------------------------------------------------------------------------


def test_columns_are_guessed_from_their_names():
    header = ["E-Mail", "First Name", "surname", "Mobile", "Country", "lang", "utm_source", "Notes", "email"]
    assert rows.guess_mapping(header) == {
        0: "email",
        1: "first_name",
        2: "last_name",
        3: "phone",
        4: "country",
        5: "language",
        6: "utm_source",
    }  # an unknown column is left out; the second "email" does not take the field twice


def test_the_required_fields_depend_on_the_mode():
    only_email = {"col_0": "email", "mode": "create"}
    assert "First name, Last name" in rows.parse_choice(only_email, 6).errors["mapping"]
    assert "nothing to update" in rows.parse_choice({**only_email, "mode": "update"}, 6).errors["mapping"]
    assert rows.parse_choice({**only_email, "col_3": "phone", "mode": "update"}, 6).errors == {}
    twice = rows.parse_choice({**MAPPING, "col_5": "phone", "mode": "create"}, 6)
    assert "already taken by column 4" in twice.errors["col_5"]


async def test_a_missing_required_mapping_is_refused_and_the_import_does_not_start(staff):
    run_id = await services.upload(staff["admin"], "x.csv", csv_bytes(person(1)), staff["admin"].actor())
    form = {**MAPPING, "col_2": "", "mode": "upsert", "assign": ""}
    with pytest.raises(FormErrors) as exc:
        await services.start(staff["admin"], run_id, form, staff["admin"].actor())
    assert "Last name" in exc.value.errors["mapping"]
    assert (await services.load_run(run_id))["status"] == "uploaded"


async def test_a_desk_scoped_agent_must_import_into_one_of_their_desks(staff):
    options = dict(await services.assign_choices(staff["sales"]))
    assert "" not in options  # "unassigned" would hide the clients from the agent who imports them
    assert any(label.endswith("the desk’s pool") for label in options.values())
    assert any(label.endswith("Sales") for label in options.values())  # themselves, nobody else
    run_id = await services.upload(staff["sales"], "x.csv", csv_bytes(person(1)), staff["sales"].actor())
    with pytest.raises(FormErrors) as exc:
        await services.start(
            staff["sales"], run_id, {**MAPPING, "mode": "create", "assign": ""}, staff["sales"].actor()
        )
    assert "one of your desks" in exc.value.errors["assign"]


# --- preview --------------------------------------------------------------------------------------


async def test_the_preview_checks_each_cell_and_counts_the_bad_rows(staff, personas):
    data = csv_bytes(
        person(1),
        person(2, email="not-an-email"),
        person(3, country="Atlantis"),
        person(4, email=personas["client_a"].email),
        person(5, email="PERSON1@import.test"),
        person(6, country="France", phone="06 12 34 56 78"),
        "",
        person(7) + ",surplus",
    )
    run_id = await services.upload(staff["admin"], "x.csv", data, staff["admin"].actor())
    preview = await services.preview(staff["admin"], run_id, {**MAPPING, "mode": "create", "assign": ""})
    shown = {r["line"]: r for r in preview["rows"]}
    assert sorted(shown) == [2, 3, 4, 5, 6, 7, 9]  # the blank line 8 is no row
    assert shown[2]["outcome"] == "create" and shown[2]["cell_errors"] == {}
    assert "valid e-mail" in shown[3]["cell_errors"][0]
    assert set(shown[4]["cell_errors"]) == {4}  # the country is wrong; the phone is checked against it
    assert shown[5]["outcome"] == "rejected: e-mail exists"
    assert "Duplicate in the file: first on line 2" in shown[6]["cell_errors"][0]
    assert shown[7]["outcome"] == "create"  # "France" and a national number: cleaned, accepted
    assert "7 values but the header has 6" in shown[9]["row_error"]
    assert (preview["bad"], preview["scanned"]) == (4, 7)  # the existing e-mail is found when it runs
