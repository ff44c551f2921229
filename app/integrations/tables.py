from piccolo.columns import Array, ForeignKey, Integer, Serial, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from app.staff.tables import StaffUser

SCOPES = ("leads:write", "leads:form", "funding:write", "funding:read")
SCOPE_LABELS = {
    "leads:write": "Leads API (server-to-server, secret)",
    "leads:form": "Landing-page form (public, can only create leads)",
    "funding:write": "Funding API: create deposits, withdrawals and transfers (secret; moves money)",
    "funding:read": "Funding API: read wallets, deposits, withdrawals and transfers (secret)",
}


class ApiKey(Table, tablename="api_keys"):
    """A key for the public API. Only its SHA-256 is kept: the key itself is shown once."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    name = Varchar(length=100)
    prefix = Varchar(length=8)
    key_hash = Varchar(length=64, unique=True)
    scopes = Array(base_column=Varchar(length=32), default=list)
    created_by = ForeignKey(references=StaffUser, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)
    last_used_at = Timestamptz(null=True, default=None)


class ApiKeyWindow(Table, tablename="api_key_windows"):
    """Requests per key per minute: one upsert per request counts and reads in one round trip."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    key = ForeignKey(references=ApiKey, index=True)
    window_start = Timestamptz()
    hits = Integer(default=0)
