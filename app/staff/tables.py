from piccolo.columns import Array, Boolean, Integer, Serial, Timestamptz, Varchar
from piccolo.table import Table

ROLES = ("admin", "compliance", "finance", "sales", "dealing")
ROLE_LABELS = {
    "admin": "Administrator",
    "compliance": "Compliance",
    "finance": "Finance",
    "sales": "Sales",
    "dealing": "Dealing / support",
}


class StaffUser(Table, tablename="staff_users"):
    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    email = Varchar(length=320, unique=True)
    name = Varchar(length=200)
    password_hash = Varchar(length=255)
    roles = Array(base_column=Varchar(length=24), default=list)
    is_active = Boolean(default=True)
    totp_secret = Varchar(length=64, null=True, default=None)
    totp_enabled = Boolean(default=False)
    totp_last_step = Integer(default=0)
    created_at = Timestamptz()
    last_login_at = Timestamptz(null=True, default=None)
    password_changed_at = Timestamptz(null=True, default=None)
