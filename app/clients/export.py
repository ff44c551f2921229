"""Export of the staff client list to CSV or XLSX: every row of the list the viewer asked for.

The rows come from `services.list_clients_for`, page by page along its keyset cursor, so the
export shows exactly what the list shows this viewer (desk scoping, filters, sort), never more.
The file is written to a temporary file first and the export is audited with its exact row count
before the first byte leaves; then the file is streamed, so memory stays bounded either way.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import IO, Any

import anyio.to_thread

from app.clients import services
from app.clients.filters import COLUMNS, ClientFilters
from app.core import audit
from app.core.audit import Actor
from app.core.auth.principal import Principal
from app.core.db import transaction
from app.core.errors import NotFound

PAGE = 1000
CHUNK = 64 * 1024
XLSX_MAX_ROWS = 1_048_574  # a worksheet's rows, less the header and a last line saying it is cut
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BASE_COLUMNS = (("id", "ID"), ("first_name", "First name"), ("last_name", "Last name"), ("stage", "Stage"))


def neutralise(value: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading apostrophe (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def columns_of(filters: ClientFilters) -> list[tuple[str, str]]:
    """The list's chosen columns, after the id, the names and the stage."""
    return [*BASE_COLUMNS, *((key, COLUMNS[key]) for key in filters.cols)]


def _value(row: dict[str, Any], key: str) -> Any:
    if key == "owner":
        return row["owner_name"] or ""
    if key == "desk":
        return row["desk_name"] or ""
    if key == "ib":
        return row["ib_code"] or ""
    if key == "verified":
        return "yes" if row["email_verified_at"] else "no"
    if key == "created":
        return row["created_at"]
    if key == "tags":
        return ", ".join(row.get("tags") or [])
    value = row[key]
    return "" if value is None else value


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


@dataclass
class Export:
    filename: str
    media_type: str
    rows: int
    chunks: AsyncIterator[bytes]


class _Csv:
    def __init__(self, out: IO[bytes], columns: list[tuple[str, str]]) -> None:
        self.out, self.keys = out, [k for k, _ in columns]
        self.out.write(b"\xef\xbb\xbf")  # the BOM: Excel then reads the file as UTF-8
        self._write([[label for _, label in columns]])

    def _write(self, rows: list[list[Any]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        self.out.write(buffer.getvalue().encode())

    def page(self, rows: list[dict[str, Any]]) -> None:
        self._write(
            [
                [r["id"], *(neutralise(_text(_value(r, k))) for k in self.keys[1:])]
                for r in rows  # the id is a number, never a formula
            ]
        )

    def note(self, text: str) -> None:
        self._write([[text]])

    def close(self) -> None:
        pass


class _Xlsx:
    def __init__(self, out: IO[bytes], columns: list[tuple[str, str]]) -> None:
        import xlsxwriter

        self.keys = [k for k, _ in columns]
        self.book = xlsxwriter.Workbook(
            out,
            {
                "constant_memory": True,  # rows go to disk as they are written
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
                "tmpdir": tempfile.gettempdir(),
            },
        )
        self.sheet = self.book.add_worksheet("Clients")
        self.bold = self.book.add_format({"bold": True})
        self.when = self.book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        for col, (_, label) in enumerate(columns):
            self.sheet.write_string(0, col, label, self.bold)
        self.sheet.freeze_panes(1, 0)
        self.row = 1

    def page(self, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            self.sheet.write_number(self.row, 0, r["id"])
            for col, key in enumerate(self.keys[1:], start=1):
                value = _value(r, key)
                if isinstance(value, datetime):
                    self.sheet.write_datetime(
                        self.row, col, value.astimezone(UTC).replace(tzinfo=None), self.when
                    )
                else:  # always a string cell: text that looks like a formula stays text
                    self.sheet.write_string(self.row, col, neutralise(str(value)))
            self.row += 1

    def note(self, text: str) -> None:
        self.sheet.write_string(self.row, 0, text, self.bold)

    def close(self) -> None:
        self.book.close()


async def export_clients(viewer: Principal, filters: ClientFilters, fmt: str, actor: Actor) -> Export:
    """Every row of the viewer's list (all pages), written, audited, then ready to stream."""
    if fmt not in FORMATS:
        raise NotFound("export format")
    if not viewer.is_staff:
        raise NotFound("client")
    columns = columns_of(filters)
    out = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (closed by the stream)
    try:
        writer: _Csv | _Xlsx = await anyio.to_thread.run_sync(_Csv if fmt == "csv" else _Xlsx, out, columns)
        count, truncated = await _write_all(
            viewer, filters, writer.page, XLSX_MAX_ROWS if fmt == "xlsx" else None
        )
        if truncated:
            message = f"Cut at {count:,} rows, all a worksheet holds: export as CSV for every row."
            await anyio.to_thread.run_sync(writer.note, message)
        await anyio.to_thread.run_sync(writer.close)
        async with transaction():
            await audit.record(
                actor,
                "clients.exported",
                "client_list",
                None,
                after={
                    "format": fmt,
                    "query": filters.query(),
                    "rows": count,
                    "columns": [k for k, _ in columns],
                    **({"truncated": True} if truncated else {}),
                },
            )
    except BaseException:
        out.close()
        raise
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    return Export(f"clients-{stamp}.{fmt}", FORMATS[fmt], count, _stream(out))


async def _write_all(
    viewer: Principal,
    filters: ClientFilters,
    write: Callable[[list[dict[str, Any]]], None],
    limit: int | None,
) -> tuple[int, bool]:
    f = replace(filters, after=None, after_id=None, per=PAGE)
    count = 0
    while True:
        page = await services.list_clients_for(viewer, f)
        rows = page["clients"]
        if limit is not None and count + len(rows) > limit:
            rows = rows[: limit - count]
            await anyio.to_thread.run_sync(write, rows)
            return count + len(rows), True
        await anyio.to_thread.run_sync(write, rows)
        count += len(rows)
        if page["next_query"] is None or not rows:
            return count, False
        last = rows[-1]
        f = replace(f, after=last["sort_key"], after_id=last["id"])


async def _stream(out: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        out.seek(0)
        while chunk := await anyio.to_thread.run_sync(out.read, CHUNK):
            yield chunk
    finally:
        out.close()
