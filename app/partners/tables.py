from piccolo.columns import ForeignKey, Serial, Timestamptz, Varchar
from piccolo.table import Table

from app.clients.tables import Client


class Partner(Table, tablename="partners"):
    """Partner (IB) status granted to a client: one person, one login, reaching /ib as well."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, unique=True)
    code = Varchar(length=24, unique=True)
    parent: ForeignKey["Partner"] = ForeignKey(references="self", null=True)
    status = Varchar(length=16, default="active")  # active | suspended
    created_at = Timestamptz()
