from piccolo.columns import Boolean, ForeignKey, Serial, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from app.staff.tables import StaffUser


class SavedView(Table, tablename="saved_views"):
    """A named client-list query: the owner's own, or shared with every colleague."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    owner = ForeignKey(references=StaffUser, on_delete=OnDelete.cascade, index=True)
    name = Varchar(length=80)
    query = Varchar(length=2000, default="")
    shared = Boolean(default=False)
    created_at = Timestamptz()
