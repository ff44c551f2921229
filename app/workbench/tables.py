from piccolo.columns import ForeignKey, Integer, Serial, Text, Timestamptz, Varchar
from piccolo.columns.indexes import IndexMethod
from piccolo.table import Table

from app.clients.tables import Client
from app.staff.tables import StaffUser

KINDS = ("note", "task", "stage", "message", "login", "email", "lead", "tag", "ib", "kyc", "document",
         "account")  # fmt: skip


class Note(Table, tablename="client_notes"):
    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, index=True)
    author = ForeignKey(references=StaffUser)
    body = Text()
    created_at = Timestamptz()


class Mention(Table, tablename="note_mentions"):
    """A colleague named in a note; unread until they open their mentions page."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    note = ForeignKey(references=Note, index=True)
    staff = ForeignKey(references=StaffUser, index=True)
    seen_at = Timestamptz(null=True, default=None)


class Task(Table, tablename="client_tasks"):
    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, index=True)
    title = Varchar(length=200)
    due_at = Timestamptz()
    assignee = ForeignKey(references=StaffUser, index=True)
    created_by = ForeignKey(references=StaffUser)
    done_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class TimelineEvent(Table, tablename="client_timeline"):
    """Everything that happened to a client, written in the transaction of the fact itself."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, index=True)
    occurred_at = Timestamptz(index=True, index_method=IndexMethod.btree)
    kind = Varchar(length=16)
    summary = Varchar(length=500)
    ref_type = Varchar(length=32, default="")
    ref_id = Integer(null=True, default=None)
