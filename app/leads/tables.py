from piccolo.columns import ForeignKey, Serial, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from app.clients.tables import Client
from app.integrations.tables import ApiKey

CHANNELS = ("api", "form")


class LeadSource(Table, tablename="lead_sources"):
    """Where a lead came from, one row per capture: a merged duplicate adds a row to the timeline."""

    id: Serial  # Piccolo's implicit primary key, declared for type checkers only
    client = ForeignKey(references=Client, index=True)
    channel = Varchar(length=8)
    campaign = Varchar(length=200, default="")
    utm_source = Varchar(length=200, default="")
    utm_medium = Varchar(length=200, default="")
    utm_campaign = Varchar(length=200, default="")
    utm_term = Varchar(length=200, default="")
    utm_content = Varchar(length=200, default="")
    landing_page = Varchar(length=2000, default="")
    referring_ib_code = Varchar(length=24, default="")
    account_type_interest = Varchar(length=50, default="")
    api_key = ForeignKey(references=ApiKey, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz()
