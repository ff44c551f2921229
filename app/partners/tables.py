from piccolo.columns import ForeignKey, Serial, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from app.clients.tables import Client
from app.staff.tables import StaffUser


class Partner(Table, tablename="partners"):
    """Partner (IB) status granted to a client: one person, one login, reaching /ib as well."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, unique=True)
    code = Varchar(length=24, unique=True)
    parent: ForeignKey["Partner"] = ForeignKey(references="self", null=True)
    status = Varchar(length=16, default="active")  # active | suspended
    created_at = Timestamptz()


class ReferralClick(Table, tablename="referral_clicks"):
    """One visit through a partner's referral link: the evidence an attribution points back to."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    partner = ForeignKey(references=Partner, index=True)
    token = Varchar(length=64, unique=True)
    clicked_at = Timestamptz()
    landing_page = Varchar(length=2000, default="")
    ip = Varchar(length=64, default="")
    user_agent = Varchar(length=400, default="")


class Attribution(Table, tablename="partner_attributions"):
    """Which partner brought a client, decided once, with how we know (link, code or staff)."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, unique=True)
    partner = ForeignKey(references=Partner, index=True)
    source = Varchar(length=8)  # link | code | staff
    click = ForeignKey(references=ReferralClick, null=True, on_delete=OnDelete.set_null)
    clicked_at = Timestamptz(null=True, default=None)
    landing_page = Varchar(length=2000, default="")
    attributed_at = Timestamptz()


class AttributionChange(Table, tablename="partner_attribution_changes"):
    """A staff decision to set, change or remove a client's IB: the attribution it replaced (with
    its evidence), the partner it chose (NULL: removed), who decided and why. History outlives
    nothing it names: partners and staff are suspended or deactivated, never deleted under it."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, index=True)
    old_partner = ForeignKey(references=Partner, null=True, on_delete=OnDelete.restrict)
    old_source = Varchar(length=8, default="")
    old_click = ForeignKey(references=ReferralClick, null=True, on_delete=OnDelete.set_null)
    old_clicked_at = Timestamptz(null=True, default=None)
    old_landing_page = Varchar(length=2000, default="")
    old_attributed_at = Timestamptz(null=True, default=None)
    new_partner = ForeignKey(references=Partner, null=True, on_delete=OnDelete.restrict)
    reason = Text()
    changed_by = ForeignKey(references=StaffUser, on_delete=OnDelete.restrict)
    changed_at = Timestamptz()
