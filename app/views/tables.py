from piccolo.columns import ForeignKey, Serial, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from app.routing.tables import Desk
from app.staff.tables import StaffUser

SCOPES = ("private", "desk", "all")


class SavedView(Table, tablename="saved_views"):
    """A named client-list query, seen by its owner alone, by one desk, or by every colleague.

    A desk view whose desk is gone (desk NULL) falls back to its owner alone, never to everyone."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    owner = ForeignKey(references=StaffUser, on_delete=OnDelete.cascade, index=True)
    name = Varchar(length=80)
    query = Varchar(length=2000, default="")
    scope = Varchar(length=8, default="private")
    desk = ForeignKey(references=Desk, null=True, default=None, on_delete=OnDelete.set_null, index=True)
    created_at = Timestamptz()
