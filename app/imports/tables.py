from piccolo.columns import JSONB, Bytea, ForeignKey, Integer, Serial, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from app.routing.tables import Desk
from app.staff.tables import StaffUser

MODES = ("create", "update", "upsert")
STATUSES = ("uploaded", "queued", "running", "finished", "failed")


class ImportRun(Table, tablename="client_imports"):
    """One uploaded file and its run. `position` counts the CSV records after the header that are
    committed (imported or rejected): a retried job starts there, so no row is handled twice.
    The file itself is kept only until the run finishes; the rejected rows keep their raw values."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    created_by = ForeignKey(references=StaffUser, index=True)
    filename = Varchar(length=255)
    content = Bytea(null=True, default=None)
    size = Integer(default=0)
    sha256 = Varchar(length=64)
    encoding = Varchar(length=16)
    delimiter = Varchar(length=4)
    header = JSONB()  # the column names, in file order
    total_rows = Integer(default=0)  # CSV records after the header (blank lines included)
    mapping = JSONB(null=True, default=None)  # {"<column index>": "<client field>"}
    mode = Varchar(length=8, default="create")
    desk = ForeignKey(references=Desk, null=True, on_delete=OnDelete.set_null)
    owner = ForeignKey(references=StaffUser, null=True, on_delete=OnDelete.set_null)
    status = Varchar(length=16, default="uploaded", index=True)
    position = Integer(default=0)
    created = Integer(default=0)
    updated = Integer(default=0)
    unchanged = Integer(default=0)
    rejected = Integer(default=0)
    error = Text(default="")
    actor_ip = Varchar(length=64, null=True, default=None)
    actor_user_agent = Varchar(length=400, null=True, default=None)
    created_at = Timestamptz()
    started_at = Timestamptz(null=True, default=None)
    finished_at = Timestamptz(null=True, default=None)


class ImportRejection(Table, tablename="client_import_rejections"):
    """A row that was not imported: its line in the file, the raw values and why."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    run = ForeignKey(references=ImportRun, on_delete=OnDelete.cascade, index=True)
    line = Integer()
    cells = JSONB()  # the row as read (a list of its values)
    reason = Text()
