from piccolo.columns import Boolean, ForeignKey, Integer, Serial, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from app.clients.tables import Client
from app.staff.tables import StaffUser


class Desk(Table, tablename="routing_desks"):
    """A sales team that owns a share of the incoming leads."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    name = Varchar(length=100, unique=True)
    active = Boolean(default=True)


class DeskMember(Table, tablename="routing_desk_members"):
    """An agent on a desk; `capacity` is how many open (uncontacted) leads they may hold at once."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    desk = ForeignKey(references=Desk, on_delete=OnDelete.cascade, index=True)
    staff = ForeignKey(references=StaffUser, on_delete=OnDelete.cascade)
    capacity = Integer(default=20)
    active = Boolean(default=True)


class RoutingRule(Table, tablename="routing_rules"):
    """Leads from `country` speaking `language` (empty: any) go to `desk`; lowest priority first."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    priority = Integer(default=100)
    country = Varchar(length=2, default="")
    language = Varchar(length=8, default="")
    desk = ForeignKey(references=Desk, on_delete=OnDelete.cascade)


class Assignment(Table, tablename="routing_assignments"):
    """Which desk and agent own a lead, and the first-contact SLA clock. Owner NULL: the desk's pool."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, unique=True, on_delete=OnDelete.cascade)
    desk = ForeignKey(references=Desk, null=True, on_delete=OnDelete.set_null, index=True)
    owner = ForeignKey(references=StaffUser, null=True, on_delete=OnDelete.set_null, index=True)
    assigned_at = Timestamptz()
    first_contact_due_at = Timestamptz()
    first_contact_at = Timestamptz(null=True, default=None)
    last_touched_at = Timestamptz()
