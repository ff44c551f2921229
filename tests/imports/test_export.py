"""Exporting the client list: every row of the viewer's list (never more), the list's columns,
CSV that Excel reads as UTF-8 and cannot run as formulas, XLSX that opens, and an audit record."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from xml.etree import ElementTree

from app.clients import export
from app.core import db
from tests.imports.conftest import actions
from tests.personas import sign_in

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def csv_rows(content: bytes) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def xlsx_rows(content: bytes) -> list[list[str]]:
    """The first sheet's cells as text, read with nothing but zipfile and XML."""
    with zipfile.ZipFile(io.BytesIO(content)) as book:
        assert "xl/workbook.xml" in book.namelist()
        shared = []
        if "xl/sharedStrings.xml" in book.namelist():
            root = ElementTree.fromstring(book.read("xl/sharedStrings.xml"))  # noqa: S314 (our own file)
            shared = [
                "".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t")) for si in root.findall("m:si", NS)
            ]
        sheet = ElementTree.fromstring(book.read("xl/worksheets/sheet1.xml"))  # noqa: S314 (our own file)
    out = []
    for row in sheet.iter(f"{{{NS['m']}}}row"):
        cells = []
        for c in row.findall("m:c", NS):
            kind = c.get("t")
            if kind == "inlineStr":
                cells.append("".join(t.text or "" for t in c.iter(f"{{{NS['m']}}}t")))
            elif kind == "s":
                cells.append(shared[int(c.find("m:v", NS).text)])
            else:
                v = c.find("m:v", NS)
                cells.append("" if v is None else v.text)
        out.append(cells)
    return out


async def make_clients(n: int, *, country: str = "FR", prefix: str = "exp") -> None:
    await db.fetch(
        "INSERT INTO clients (email, first_name, last_name, phone, country, language, stage, stage_changed_at, created_at) "
        "SELECT {} || g || '@export.test', 'First' || g, 'Last' || g, '', {}, 'fr', 'lead', now(), "
        "now() - g * interval '1 minute' FROM generate_series(1, {}) g",
        prefix,
        country,
        n,
    )


async def test_a_desk_scoped_agent_exports_only_the_clients_they_may_see(client, personas):
    await sign_in(client, personas["sales"])
    r = await client.get("/staff/clients/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert re.fullmatch(r'attachment; filename="clients-\d{8}-\d{4}\.csv"', r.headers["content-disposition"])
    rows = csv_rows(r.content)
    assert [row[0] for row in rows[1:]] == [str(personas["client_a"].id)]
    assert personas["client_b"].email not in r.text
    x = await client.get("/staff/clients/export.xlsx")
    assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert [row[0] for row in xlsx_rows(x.content)[1:]] == [str(personas["client_a"].id)]


async def test_the_export_applies_the_filters_and_holds_every_page_of_the_list(client, personas):
    await make_clients(2300, country="FR")
    await make_clients(40, country="ES", prefix="other")
    await sign_in(client, personas["admin"])
    r = await client.get("/staff/clients/export.csv?country=FR&sort=name&dir=asc&per=20&after=x&after_id=9")
    rows = csv_rows(r.content)
    assert r.headers["x-export-rows"] == "2300" and len(rows) == 2301  # every page, not the first 20
    ids = [row[0] for row in rows[1:]]
    assert len(set(ids)) == 2300  # no row twice across the pages
    expected = await db.fetch(
        "SELECT id FROM clients WHERE country = 'FR' ORDER BY lower(first_name || ' ' || last_name), id"
    )
    assert ids == [str(r["id"]) for r in expected]  # in the list's order
    assert all(row[rows[0].index("Country")] == "FR" for row in rows[1:])
    r = await client.get("/staff/clients/export.csv?q=other1")
    assert {row[1] for row in csv_rows(r.content)[1:]} == {"First1", *(f"First{i}" for i in range(10, 20))}


async def test_the_columns_are_the_ones_chosen_on_the_list_after_id_names_and_stage(client, personas):
    await sign_in(client, personas["admin"])
    r = await client.get("/staff/clients/export.csv?cols=phone,desk,verified")
    assert csv_rows(r.content)[0] == ["ID", "First name", "Last name", "Stage", "Phone", "Desk", "Verified"]
    a = next(row for row in csv_rows(r.content) if row[0] == str(personas["client_a"].id))
    assert a[3:] == ["registered", "", "Persona desk", "yes"]
    default = csv_rows((await client.get("/staff/clients/export.csv")).content)[0]
    assert default == ["ID", "First name", "Last name", "Stage", "E-mail", "Country", "Owner", "Created"]


async def test_the_tags_column_lists_each_clients_tags_as_text(client, personas):
    await db.fetch(
        "INSERT INTO client_tags (client, tag, created_at) VALUES ({}, 'vip', now()), ({}, 'callback', now())",
        personas["client_a"].id,
        personas["client_a"].id,
    )
    await sign_in(client, personas["admin"])
    rows = csv_rows((await client.get("/staff/clients/export.csv?cols=tags")).content)
    assert rows[0][-1] == "Tags"
    a = next(row for row in rows if row[0] == str(personas["client_a"].id))
    assert a[-1] == "callback, vip"


async def test_the_list_links_to_the_import_for_those_who_may_import(client, personas):
    for name, shown in (("admin", True), ("sales", True), ("compliance", False), ("finance", False)):
        await sign_in(client, personas[name])
        page = (await client.get("/staff/clients")).text
        assert ('href="/staff/clients/import"' in page) is shown, name


async def test_cells_that_look_like_formulas_are_neutralised(client, personas):
    await db.fetch(
        "INSERT INTO clients (email, first_name, last_name, phone, stage, stage_changed_at, created_at) VALUES "
        "('evil@export.test', '=HYPERLINK(\"http://x\")', '@SUM(A1)', '+4915123456789', 'lead', now(), now()), "
        "('tab@export.test', '\tTab', '-2+3', '', 'lead', now(), now())"
    )
    await sign_in(client, personas["admin"])
    rows = csv_rows((await client.get("/staff/clients/export.csv?q=export.test&cols=phone")).content)
    evil = {row[1]: row for row in rows[1:]}
    assert evil['\'=HYPERLINK("http://x")'][2:] == ["'@SUM(A1)", "lead", "'+4915123456789"]
    assert evil["'\tTab"][2] == "'-2+3"
    sheet = xlsx_rows((await client.get("/staff/clients/export.xlsx?q=export.test&cols=phone")).content)
    assert {row[1] for row in sheet[1:]} == {'\'=HYPERLINK("http://x")', "'\tTab"}
    x = await client.get("/staff/clients/export.xlsx?q=export.test")
    with zipfile.ZipFile(io.BytesIO(x.content)) as book:
        assert "<f>" not in book.read("xl/worksheets/sheet1.xml").decode()  # no formula cell at all


def test_neutralise_leaves_ordinary_text_alone():
    assert [export.neutralise(v) for v in ("Ann", "", "a=b", "=1", "+1", "-1", "@a", "\t", "\rx")] == [
        "Ann",
        "",
        "a=b",
        "'=1",
        "'+1",
        "'-1",
        "'@a",
        "'\t",
        "'\rx",
    ]


async def test_the_xlsx_opens_with_a_header_dates_and_every_row(client, personas):
    await make_clients(1500)
    await sign_in(client, personas["compliance"])
    r = await client.get("/staff/clients/export.xlsx?country=FR&cols=email,created")
    sheet = xlsx_rows(r.content)
    assert sheet[0] == ["ID", "First name", "Last name", "Stage", "E-mail", "Created"]
    assert len(sheet) == 1501 and r.headers["x-export-rows"] == "1500"
    assert float(sheet[1][5]) > 45000  # a real date cell (an Excel serial number), not text


async def test_each_export_is_audited_with_its_format_query_and_row_count(client, personas):
    await sign_in(client, personas["sales"])
    await client.get("/staff/clients/export.csv?stage=registered&cols=email")
    await client.get("/staff/clients/export.xlsx?country=ZZ")
    events = await actions("clients.exported")
    assert [(e["actor_label"], e["subject_type"]) for e in events] == [
        ("sales@staff.test", "client_list")
    ] * 2
    first, second = (json.loads(e["after"]) for e in events)
    assert (first["format"], first["query"], first["rows"]) == ("csv", "stage=registered&cols=email", 1)
    assert first["columns"] == ["id", "first_name", "last_name", "stage", "email"]
    assert (second["format"], second["query"], second["rows"]) == ("xlsx", "country=ZZ", 0)


async def test_the_list_links_to_its_export_with_the_current_query(client, personas):
    await sign_in(client, personas["admin"])
    r = await client.get("/staff/clients?country=DE&sort=name")
    assert 'href="/staff/clients/export.csv?country=DE&amp;sort=name&amp;dir=asc"' in r.text
    assert 'data-keep-query="/staff/clients/export.xlsx"' in r.text


async def test_a_client_or_a_visitor_gets_no_export(client, personas):
    await sign_in(client, personas["client_a"])
    assert (await client.get("/staff/clients/export.csv")).status_code == 403
    await sign_in(client, personas["outsider"])
    assert (await client.get("/staff/clients/export.xlsx")).status_code == 303
    assert await actions("clients.exported") == []


async def test_an_xlsx_too_long_for_a_worksheet_says_where_it_was_cut(client, personas, monkeypatch):
    monkeypatch.setattr(export, "XLSX_MAX_ROWS", 3)
    await make_clients(5)
    await sign_in(client, personas["admin"])
    sheet = xlsx_rows((await client.get("/staff/clients/export.xlsx?country=FR")).content)
    assert len(sheet) == 5 and sheet[-1][0].startswith("Cut at 3 rows") and "CSV" in sheet[-1][0]
    [event] = await actions("clients.exported")
    assert json.loads(event["after"])["rows"] == 3 and json.loads(event["after"])["truncated"] is True
    rows = csv_rows((await client.get("/staff/clients/export.csv?country=FR")).content)
    assert len(rows) == 6  # CSV has no such limit
