"""Who gets in where: every route of the app, every persona, against a policy written down here.

The table below is an independent statement of the authorisation policy (issue 2, "Authorisation"),
deliberately not derived from `app.staff.navigation.SECTIONS`: if the code and this table disagree,
one of them is wrong and a person has to decide which. A route the table does not mention fails
the suite, so every new route needs a policy line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pytest
from litestar.routes import HTTPRoute

from app.clients import services as client_services
from app.core.auth.principal import Principal
from app.core.tables import AuditEvent, OutboundEmail
from app.staff.tables import StaffUser
from tests.conftest import CSRF_RE, post_form
from tests.personas import PASSWORD, Persona, make_client, make_staff, sign_in, totp_now

STAFF = ("admin", "compliance", "finance", "sales", "dealing")
CLIENTS = ("client_a", "ib", "sub_ib")
PERSONAS = (*STAFF, *CLIENTS, "outsider")

# Admin is written out in every staff line: the table states the policy, it does not lean on a rule.
EVERY_DESK = ("admin", "compliance", "finance", "sales", "dealing")
ADMIN = ("admin",)


# --- what a persona should get ------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    status: int
    location: str | None = None  # exact Location header, when a redirect
    text: str | None = None  # a phrase the page must contain

    def __str__(self) -> str:
        return (
            f"{self.status}"
            + (f" -> {self.location}" if self.location else "")
            + (f" ({self.text!r})" if self.text else "")
        )


OK = Expect(200)


def to_login(login: str, path: str) -> Expect:
    return Expect(303, f"{login}?next={quote(path, safe='')}")


@dataclass(frozen=True)
class Rule:
    """How one route treats each kind of visitor. `allowed` personas get `ok` (or an override)."""

    kind: str  # public | staff | portal | partner | api
    allowed: tuple[str, ...] = ()
    ok: Expect = OK
    overrides: tuple[tuple[str, Expect], ...] = ()

    def expect(self, persona: str, path: str) -> Expect:
        special = dict(self.overrides)
        if persona in special:
            return special[persona]
        if self.kind in ("public", "api"):
            return self.ok
        if self.kind == "staff":
            if persona == "outsider":
                return to_login("/staff/login", path)
            if persona in CLIENTS:
                return Expect(403, text="broker staff only")
            return self.ok if persona in self.allowed else Expect(403, text="role does not allow")
        if self.kind == "portal":
            if persona == "outsider":
                return to_login("/portal/login", path)
            if persona in STAFF:
                return Expect(403, text="staff use the staff console")
            return self.ok
        if self.kind == "partner":
            if persona == "outsider":
                return to_login("/ib/login", path)
            if persona in STAFF:
                return Expect(403, text="for introducing brokers")
            if persona in ("ib", "sub_ib"):
                return self.ok
            return Expect(403, text="no partner (IB) status")
        raise AssertionError(self.kind)

    def refuses(self, persona: str) -> bool:
        if any(who == persona and e.status >= 400 for who, e in self.overrides):
            return True  # e.g. another client's deposit: the action is attempted, and must be a 404
        if self.kind == "api":
            return True  # a session is no credential there: every visitor is refused alike
        if self.kind == "public":
            return False
        if persona == "outsider":
            return True
        if self.kind == "staff":
            return persona not in self.allowed
        if self.kind == "portal":
            return persona in STAFF
        return persona not in ("ib", "sub_ib")


def public(status: int = 200, **kw) -> Rule:
    return Rule("public", ok=Expect(status, **kw))


def staff(*roles: str, ok: Expect = OK, **overrides: Expect) -> Rule:
    return Rule("staff", roles, ok, tuple(overrides.items()))


def portal(ok: Expect = OK, **overrides: Expect) -> Rule:
    return Rule("portal", CLIENTS, ok, tuple(overrides.items()))


def partner(ok: Expect = OK) -> Rule:
    return Rule("partner", ("ib", "sub_ib"), ok)


def api(status: int, **kw) -> Rule:
    """A machine endpoint with its own credential (an API key, a provider's signature), which no
    persona of the walk has: each one gets this refusal, signed in or not, for GET and POST alike."""
    return Rule("api", ok=Expect(status, **kw))


# Another client's deposit, withdrawal or transfer (the `ids` fixture's belong to client_a): a 404,
# exactly as for one that does not exist.
NOT_THEIRS = {"ib": Expect(404), "sub_ib": Expect(404)}


BAD_TOKEN = "no-such-token-0123456789"  # noqa: S105

# --- the policy ---------------------------------------------------------------------------------

POLICY: dict[tuple[str, str], Rule] = {
    # Outside every portal.
    ("GET", "/"): public(302, location="/portal"),
    ("GET", "/healthz"): public(200),
    # Referral links: anyone may follow one to the registration page.
    ("GET", "/r/{code:str}"): public(303, location="/portal/register"),
    ("GET", "/readyz"): public(503, text="no worker heartbeat"),  # no worker runs in this test
    # The public lead API: a session means nothing there, an API key does (tests/leads prove it).
    ("POST", "/api/v1/leads"): api(401, text="missing_api_key"),
    ("POST", "/api/v1/leads/form"): api(401, text="API key"),
    # The funding API: an API key with a funding scope, nothing else (tests/funding/test_api_* prove the keys).
    ("POST", "/api/v1/funding/clients/{client_id:int}/deposits"): api(401, text="missing_api_key"),
    ("POST", "/api/v1/funding/clients/{client_id:int}/withdrawals"): api(401, text="missing_api_key"),
    ("POST", "/api/v1/funding/clients/{client_id:int}/transfers"): api(401, text="missing_api_key"),
    ("GET", "/api/v1/funding/clients/{client_id:int}/wallets"): api(401, text="missing_api_key"),
    ("GET", "/api/v1/funding/clients/{client_id:int}/withdrawal-destinations"): api(
        401, text="missing_api_key"
    ),
    ("GET", "/api/v1/funding/deposits/{deposit_id:int}"): api(401, text="missing_api_key"),
    ("GET", "/api/v1/funding/withdrawals/{withdrawal_id:int}"): api(401, text="missing_api_key"),
    ("GET", "/api/v1/funding/transfers/{transfer_id:int}"): api(401, text="missing_api_key"),
    # Payment providers' webhooks: only the provider's signature counts; a delivery without one is
    # refused (400 without the signature headers, 401 with a wrong signature: tests/funding decide).
    ("POST", "/api/funding/webhooks/{provider:str}"): api(400, text="stale or malformed delivery"),
    # Staff sign-in: open to everyone.
    ("GET", "/staff/login"): public(),
    ("POST", "/staff/login"): public(),
    ("POST", "/staff/logout"): public(),
    ("GET", "/staff/forgot"): public(),
    ("POST", "/staff/forgot"): public(),
    ("GET", "/staff/reset/{token:str}"): public(text="expired"),
    ("POST", "/staff/reset/{token:str}"): public(),
    # The second-factor step: any staff member, before the code is given.
    ("GET", "/staff/2fa"): staff(*EVERY_DESK),
    ("POST", "/staff/2fa"): staff(*EVERY_DESK),
    ("GET", "/staff/2fa/setup"): staff(*EVERY_DESK, ok=Expect(303, "/staff")),  # already enrolled
    ("POST", "/staff/2fa/setup"): staff(*EVERY_DESK),
    # Console sections.
    ("GET", "/staff"): staff(*EVERY_DESK),
    ("GET", "/staff/clients"): staff(*EVERY_DESK),
    ("GET", "/staff/clients/{client_id:int}"): staff(*EVERY_DESK),
    # Saved views of the client list: whoever enters the clients section (deleting: only one's own).
    ("POST", "/staff/clients/views"): staff(*EVERY_DESK),
    ("POST", "/staff/clients/views/{view_id:int}/delete"): staff(*EVERY_DESK),
    ("POST", "/staff/clients/{client_id:int}/messages"): staff(*EVERY_DESK),
    ("GET", "/staff/clients/{client_id:int}/stage"): staff(*EVERY_DESK),
    ("POST", "/staff/clients/{client_id:int}/stage"): staff("admin", "compliance", "sales"),
    # Tags: whoever may see the client (like notes). Bulk actions: every desk may start one (each
    # action checks its own role: owner = admin, stage = admin/compliance/sales); a run is shown
    # only to the staff member who started it (here the admin) and to administrators: 404 else.
    ("GET", "/staff/clients/{client_id:int}/tags"): staff(*EVERY_DESK),
    ("POST", "/staff/clients/{client_id:int}/tags"): staff(*EVERY_DESK),
    ("POST", "/staff/clients/{client_id:int}/tags/remove"): staff(*EVERY_DESK),
    ("POST", "/staff/clients/bulk"): staff(*EVERY_DESK),
    ("GET", "/staff/clients/bulk/count"): staff(*EVERY_DESK, ok=Expect(303, "/staff/clients")),
    ("GET", "/staff/clients/bulk/{run_id:int}"): staff(
        *EVERY_DESK, **{p: Expect(404) for p in ("compliance", "finance", "sales", "dealing")}
    ),
    # Exports: whoever sees the list gets it as a file (the rows are scoped like the list; audited).
    ("GET", "/staff/clients/export.csv"): staff(*EVERY_DESK),
    ("GET", "/staff/clients/export.xlsx"): staff(*EVERY_DESK),
    # CSV import: admin and sales (who bring leads in); a run is shown to whoever uploaded it
    # (here the admin) and to administrators, a 404 to anyone else.
    ("GET", "/staff/clients/import"): staff("admin", "sales"),
    ("POST", "/staff/clients/import"): staff("admin", "sales"),
    ("GET", "/staff/clients/import/{import_id:int}"): staff("admin", "sales", sales=Expect(404)),
    ("POST", "/staff/clients/import/{import_id:int}/preview"): staff("admin", "sales"),
    ("POST", "/staff/clients/import/{import_id:int}/start"): staff("admin", "sales"),
    ("GET", "/staff/clients/import/{import_id:int}/progress"): staff("admin", "sales", sales=Expect(404)),
    ("GET", "/staff/clients/import/{import_id:int}/rejected.csv"): staff("admin", "sales", sales=Expect(404)),
    ("GET", "/staff/clients/{client_id:int}/assignment"): staff(*EVERY_DESK),
    ("POST", "/staff/clients/{client_id:int}/contacted"): staff("admin", "sales"),
    ("POST", "/staff/clients/{client_id:int}/owner"): staff(*ADMIN),
    # Lead sources and the IB block of a client page; changing the IB: admin and compliance.
    ("GET", "/staff/clients/{client_id:int}/sources"): staff(*EVERY_DESK),
    ("GET", "/staff/clients/{client_id:int}/attribution"): staff(*EVERY_DESK),
    ("POST", "/staff/clients/{client_id:int}/attribution"): staff("admin", "compliance"),
    # The workbench panels of a client page: whoever enters the clients section.
    ("GET", "/staff/clients/{client_id:int}/notes"): staff(*EVERY_DESK),
    ("POST", "/staff/clients/{client_id:int}/notes"): staff(*EVERY_DESK),
    ("GET", "/staff/clients/{client_id:int}/tasks"): staff(*EVERY_DESK),
    ("POST", "/staff/clients/{client_id:int}/tasks"): staff(*EVERY_DESK),
    ("POST", "/staff/clients/{client_id:int}/tasks/{task_id:int}/done"): staff(*EVERY_DESK),
    ("GET", "/staff/clients/{client_id:int}/timeline"): staff(*EVERY_DESK),
    # Each staff member's own work: every desk.
    ("GET", "/staff/tasks"): staff(*EVERY_DESK),
    ("GET", "/staff/mentions"): staff(*EVERY_DESK),
    ("GET", "/staff/mentions/unread"): staff(*EVERY_DESK),
    # KYC review: the queue, the review page and every decision are for compliance and administrators;
    # the KYC panel of a client page for whoever may see the client (review links: reviewers only).
    ("GET", "/staff/kyc"): staff("admin", "compliance"),
    # A client's stored document file: compliance and admins (audited); to other staff a 404, as
    # for a file that does not exist (a 403 would confirm it is there).
    ("GET", "/staff/kyc/files/{file_id:int}"): staff(
        *EVERY_DESK, **{p: Expect(404) for p in ("finance", "sales", "dealing")}
    ),
    ("GET", "/staff/kyc/documents/{document_id:int}"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/documents/{document_id:int}/claim"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/documents/{document_id:int}/release"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/documents/{document_id:int}/approve"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/documents/{document_id:int}/reject"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/documents/{document_id:int}/reupload"): staff("admin", "compliance"),
    # Sanctions screening: the open cases, their decisions, the loaded lists and uploads, the
    # re-screening's progress: compliance and administrators (tests/screening prove the decisions).
    ("GET", "/staff/kyc/screening"): staff("admin", "compliance"),
    ("GET", "/staff/kyc/screening/progress"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/screening/cases/{case_id:int}/decide"): staff("admin", "compliance"),
    ("GET", "/staff/kyc/screening/lists"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/screening/lists"): staff("admin", "compliance"),
    ("GET", "/staff/clients/{client_id:int}/kyc"): staff(*EVERY_DESK),
    # The KYC panel's risk, questionnaire and company parts: whoever may see the client; what
    # compliance records there (PEP, source of funds, reassessment, the entity type): compliance and
    # administrators. The risk model, country list and questionnaire editor: the KYC section.
    ("GET", "/staff/clients/{client_id:int}/kyc/risk"): staff(*EVERY_DESK),
    ("GET", "/staff/clients/{client_id:int}/kyc/appropriateness"): staff(*EVERY_DESK),
    ("GET", "/staff/clients/{client_id:int}/kyc/company"): staff(*EVERY_DESK),
    ("POST", "/staff/clients/{client_id:int}/kyc/risk/inputs"): staff("admin", "compliance"),
    ("POST", "/staff/clients/{client_id:int}/kyc/risk/reassess"): staff("admin", "compliance"),
    ("POST", "/staff/clients/{client_id:int}/kyc/entity"): staff("admin", "compliance"),
    ("GET", "/staff/kyc/risk"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/risk/settings"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/risk/funds"): staff("admin", "compliance"),
    ("GET", "/staff/kyc/risk/countries"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/risk/countries"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/risk/countries/remove"): staff("admin", "compliance"),
    ("GET", "/staff/kyc/appropriateness"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/appropriateness/questions"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/appropriateness/bands"): staff("admin", "compliance"),
    ("GET", "/staff/kyc/appropriateness/questions/{question_id:int}"): staff("admin", "compliance"),
    ("POST", "/staff/kyc/appropriateness/questions/{question_id:int}"): staff("admin", "compliance"),
    ("GET", "/staff/accounts"): staff("admin", "finance", "dealing"),
    # Trading accounts: the section sees them (scoped like clients); dealing changes them.
    ("GET", "/staff/accounts/{account_id:int}"): staff("admin", "finance", "dealing"),
    ("POST", "/staff/accounts/{account_id:int}/relink"): staff("admin", "dealing"),
    ("POST", "/staff/accounts/{account_id:int}/group"): staff("admin", "dealing"),
    ("POST", "/staff/accounts/{account_id:int}/trading"): staff("admin", "dealing"),
    ("POST", "/staff/accounts/{account_id:int}/retry"): staff("admin", "dealing"),
    # Trading servers (manager credentials): administrators only. Account types: dealing too.
    ("GET", "/staff/accounts/servers"): staff(*ADMIN),
    ("GET", "/staff/accounts/servers/new"): staff(*ADMIN),
    ("POST", "/staff/accounts/servers/new"): staff(*ADMIN),
    ("GET", "/staff/accounts/servers/{server_id:int}"): staff(*ADMIN),
    ("POST", "/staff/accounts/servers/{server_id:int}"): staff(*ADMIN),
    ("POST", "/staff/accounts/servers/{server_id:int}/test"): staff(*ADMIN),
    ("GET", "/staff/accounts/types"): staff("admin", "dealing"),
    ("GET", "/staff/accounts/types/new"): staff("admin", "dealing"),
    ("POST", "/staff/accounts/types/new"): staff("admin", "dealing"),
    ("GET", "/staff/accounts/types/{type_id:int}"): staff("admin", "dealing"),
    ("POST", "/staff/accounts/types/{type_id:int}"): staff("admin", "dealing"),
    # The client page's accounts panel: whoever may see the client.
    ("GET", "/staff/clients/{client_id:int}/accounts"): staff(*EVERY_DESK),
    # Balance operations (credit, bonus, correction, charge) on one trading account: dealing and finance.
    ("GET", "/staff/accounts/{account_id:int}/balance"): staff("admin", "finance", "dealing"),
    ("POST", "/staff/accounts/{account_id:int}/balance"): staff("admin", "finance", "dealing"),
    ("POST", "/staff/accounts/{account_id:int}/balance/{op_id:str}/resolve"): staff(
        "admin", "finance", "dealing"
    ),
    # Sync health of each trading server: the accounts section; "sync now" (audited): dealing and administrators.
    ("GET", "/staff/accounts/sync"): staff("admin", "finance", "dealing"),
    ("POST", "/staff/accounts/sync/{server_id:int}/now"): staff("admin", "dealing"),
    # Funding: finance and administrators, for everything the section holds: payment methods, the
    # queue of deposits and withdrawals (and its export), each approval step, the policy, bank
    # statements, wire receipts (each view audited), crypto suspense, client-to-client transfers,
    # reconciliation. Other desks are refused (403), whatever they know about the money.
    ("GET", "/staff/funding"): staff("admin", "finance"),
    ("GET", "/staff/funding/methods/new"): staff("admin", "finance"),
    ("POST", "/staff/funding/methods/new"): staff("admin", "finance"),
    ("GET", "/staff/funding/methods/{method_id:int}"): staff("admin", "finance"),
    ("POST", "/staff/funding/methods/{method_id:int}"): staff("admin", "finance"),
    ("GET", "/staff/funding/queue"): staff("admin", "finance"),
    ("GET", "/staff/funding/queue.csv"): staff("admin", "finance"),
    ("GET", "/staff/funding/withdrawals/{withdrawal_id:int}"): staff("admin", "finance"),
    ("POST", "/staff/funding/withdrawals/{withdrawal_id:int}/approve"): staff("admin", "finance"),
    ("POST", "/staff/funding/withdrawals/{withdrawal_id:int}/reject"): staff("admin", "finance"),
    ("POST", "/staff/funding/withdrawals/{withdrawal_id:int}/amount"): staff("admin", "finance"),
    ("POST", "/staff/funding/withdrawals/{withdrawal_id:int}/paid"): staff("admin", "finance"),
    ("POST", "/staff/funding/withdrawals/{withdrawal_id:int}/retry"): staff("admin", "finance"),
    ("GET", "/staff/funding/policy"): staff("admin", "finance"),
    ("POST", "/staff/funding/policy"): staff("admin", "finance"),
    ("GET", "/staff/funding/statements"): staff("admin", "finance"),
    ("POST", "/staff/funding/statements/import"): staff("admin", "finance"),
    ("GET", "/staff/funding/statements/lines/{line_id:int}"): staff("admin", "finance"),
    ("POST", "/staff/funding/statements/lines/{line_id:int}/match"): staff("admin", "finance"),
    ("POST", "/staff/funding/statements/lines/{line_id:int}/ignore"): staff("admin", "finance"),
    ("GET", "/staff/funding/wire"): staff("admin", "finance"),
    ("GET", "/staff/funding/wire/{deposit_id:int}/receipt"): staff("admin", "finance"),
    ("GET", "/staff/funding/crypto"): staff("admin", "finance"),
    ("POST", "/staff/funding/crypto/poll"): staff("admin", "finance"),
    ("POST", "/staff/funding/crypto/{chain_tx_id:int}/assign"): staff("admin", "finance"),
    ("POST", "/staff/funding/crypto/{chain_tx_id:int}/resolve"): staff("admin", "finance"),
    ("GET", "/staff/funding/transfers"): staff("admin", "finance"),
    ("POST", "/staff/funding/transfers/{transfer_id:int}/approve"): staff("admin", "finance"),
    ("POST", "/staff/funding/transfers/{transfer_id:int}/reject"): staff("admin", "finance"),
    ("GET", "/staff/funding/reconciliation"): staff("admin", "finance"),
    ("GET", "/staff/funding/reconciliation/{run_id:int}"): staff("admin", "finance"),
    ("POST", "/staff/funding/reconciliation/run"): staff("admin", "finance"),
    # A client's money on the client page (wallets, deposits, withdrawals, transfers): the desks
    # that deal with money or its risks; sales is refused (403).
    ("GET", "/staff/clients/{client_id:int}/funding"): staff("admin", "compliance", "finance", "dealing"),
    ("GET", "/staff/clients/{client_id:int}/funding/history"): staff(
        "admin", "compliance", "finance", "dealing"
    ),
    # The funding panel's actions slot: the panel's desks ask, Python decides what each gets (empty for
    # compliance and dealing). Withdrawing on a client's behalf: finance only (the creator never approves it).
    ("GET", "/staff/clients/{client_id:int}/funding/actions"): staff(
        "admin", "compliance", "finance", "dealing"
    ),
    ("GET", "/staff/clients/{client_id:int}/funding/withdraw"): staff("admin", "finance"),
    ("GET", "/staff/clients/{client_id:int}/funding/withdraw/checks"): staff("admin", "finance"),
    ("POST", "/staff/clients/{client_id:int}/funding/withdraw"): staff("admin", "finance"),
    # A deposit as finance sees it; settling a stuck card/e-wallet deposit by hand (paid or failed).
    ("GET", "/staff/funding/deposits/{deposit_id:int}"): staff("admin", "finance"),
    ("POST", "/staff/funding/deposits/{deposit_id:int}/paid"): staff("admin", "finance"),
    ("POST", "/staff/funding/deposits/{deposit_id:int}/failed"): staff("admin", "finance"),
    ("GET", "/staff/partners"): staff("admin", "finance", "sales"),
    ("GET", "/staff/marketing"): staff("admin", "sales"),
    ("GET", "/staff/reports"): staff("admin", "compliance", "finance"),
    ("GET", "/staff/audit"): staff("admin", "compliance"),
    # Settings: administrators only.
    ("GET", "/staff/settings"): staff(*ADMIN),
    ("GET", "/staff/settings/jobs"): staff(*ADMIN),
    ("GET", "/staff/settings/outbox"): staff(*ADMIN),
    ("GET", "/staff/settings/outbox/{email_id:int}"): staff(*ADMIN),
    ("GET", "/staff/settings/staff"): staff(*ADMIN),
    ("GET", "/staff/settings/staff/new"): staff(*ADMIN),
    ("POST", "/staff/settings/staff/new"): staff(*ADMIN),
    ("GET", "/staff/settings/staff/{staff_id:int}"): staff(*ADMIN),
    ("POST", "/staff/settings/staff/{staff_id:int}"): staff(*ADMIN),
    ("POST", "/staff/settings/staff/{staff_id:int}/active"): staff(*ADMIN),
    ("POST", "/staff/settings/staff/{staff_id:int}/reset-2fa"): staff(*ADMIN),
    ("GET", "/staff/settings/api-keys"): staff(*ADMIN),
    ("GET", "/staff/settings/api-keys/new"): staff(*ADMIN),
    ("POST", "/staff/settings/api-keys/new"): staff(*ADMIN),
    ("POST", "/staff/settings/api-keys/{key_id:int}/revoke"): staff(*ADMIN),
    ("GET", "/staff/settings/desks"): staff(*ADMIN),
    ("POST", "/staff/settings/desks"): staff(*ADMIN),
    ("POST", "/staff/settings/desks/members"): staff(*ADMIN),
    ("POST", "/staff/settings/desks/members/{member_id:int}"): staff(*ADMIN),
    ("POST", "/staff/settings/desks/{desk_id:int}/active"): staff(*ADMIN),
    ("POST", "/staff/settings/desks/rules"): staff(*ADMIN),
    ("POST", "/staff/settings/desks/rules/remove"): staff(*ADMIN),
    # Client portal: sign-in, registration, verification are open.
    ("GET", "/portal/login"): public(),
    ("POST", "/portal/login"): public(),
    ("POST", "/portal/logout"): public(),
    ("GET", "/portal/register"): public(),
    ("POST", "/portal/register"): public(),
    ("GET", "/portal/forgot"): public(),
    ("POST", "/portal/forgot"): public(),
    ("GET", "/portal/reset/{token:str}"): public(text="expired"),
    ("POST", "/portal/reset/{token:str}"): public(),
    ("GET", "/portal/verify/{token:str}"): public(400),
    # Client portal pages: clients (IBs are clients too).
    ("GET", "/portal/2fa"): portal(),
    ("POST", "/portal/2fa"): portal(),
    ("GET", "/portal/2fa/setup"): portal(),
    ("POST", "/portal/2fa/setup"): portal(),
    ("GET", "/portal"): portal(),
    ("GET", "/portal/messages"): portal(),
    ("GET", "/portal/unread"): portal(),
    ("GET", "/portal/messages/{message_id:int}"): portal(),
    ("GET", "/portal/settings"): portal(),
    ("POST", "/portal/settings/password"): portal(),
    ("POST", "/portal/settings/2fa/disable"): portal(),
    ("POST", "/portal/verify/resend"): portal(),
    # KYC documents: the client's own checklist and uploads; a stored file only to its own client
    # (other clients get a 404, as for a file that does not exist).
    ("GET", "/portal/documents"): portal(),
    ("GET", "/portal/details"): portal(),
    ("POST", "/portal/details"): portal(),
    ("POST", "/portal/documents/upload"): portal(),
    ("GET", "/portal/documents/files/{file_id:int}"): portal(ib=Expect(404), sub_ib=Expect(404)),
    # The appropriateness questionnaire and the company page (entity type, company, directors and
    # owners): each client their own; a person of another client is a 404 (tests/kyc prove it).
    ("GET", "/portal/appropriateness"): portal(),
    ("POST", "/portal/appropriateness"): portal(),
    ("GET", "/portal/company"): portal(),
    ("POST", "/portal/company"): portal(),
    ("POST", "/portal/company/entity"): portal(),
    ("POST", "/portal/company/persons"): portal(),
    ("POST", "/portal/company/persons/{person_id:int}"): portal(),
    ("POST", "/portal/company/persons/{person_id:int}/remove"): portal(),
    # Trading accounts: each client their own; another client's account is a 404 (tests/trading prove it).
    ("GET", "/portal/accounts"): portal(),
    ("GET", "/portal/accounts/new"): portal(),
    ("POST", "/portal/accounts/new"): portal(),
    ("GET", "/portal/accounts/{account_id:int}"): portal(ib=Expect(404), sub_ib=Expect(404)),
    ("POST", "/portal/accounts/{account_id:int}/retry"): portal(),
    ("POST", "/portal/accounts/{account_id:int}/leverage"): portal(),
    ("POST", "/portal/accounts/{account_id:int}/password"): portal(),
    # Funding: every client their own wallet, deposits (card, wire with its receipt, crypto),
    # withdrawals and transfers. Another client's (client_a's below) is a 404, to see or to act on.
    ("GET", "/portal/wallet"): portal(),
    ("GET", "/portal/wallet/history"): portal(),
    ("GET", "/portal/deposit"): portal(),
    ("GET", "/portal/deposit/preview"): portal(),
    ("POST", "/portal/deposit"): portal(),
    ("GET", "/portal/deposits/{deposit_id:int}"): portal(**NOT_THEIRS),
    ("POST", "/portal/deposits/{deposit_id:int}/pay"): portal(**NOT_THEIRS),
    ("GET", "/portal/deposit/wire"): portal(),
    ("POST", "/portal/deposit/wire"): portal(),
    ("GET", "/portal/deposit/wire/{deposit_id:int}"): portal(**NOT_THEIRS),
    ("GET", "/portal/deposit/wire/{deposit_id:int}/receipt"): portal(**NOT_THEIRS),
    ("POST", "/portal/deposit/wire/{deposit_id:int}/receipt"): portal(**NOT_THEIRS),
    ("GET", "/portal/deposit/crypto"): portal(),
    ("GET", "/portal/deposit/crypto/{deposit_id:int}"): portal(**NOT_THEIRS),
    ("GET", "/portal/withdraw"): portal(),
    ("GET", "/portal/withdraw/checks"): portal(),
    ("POST", "/portal/withdraw"): portal(),
    ("GET", "/portal/withdrawals/{withdrawal_id:int}"): portal(**NOT_THEIRS),
    ("POST", "/portal/withdrawals/{withdrawal_id:int}/cancel"): portal(**NOT_THEIRS),
    ("GET", "/portal/transfer"): portal(),
    ("POST", "/portal/transfer"): portal(),
    ("GET", "/portal/transfers/{transfer_id:int}"): portal(**NOT_THEIRS),
    ("POST", "/portal/transfers/{transfer_id:int}/cancel"): portal(**NOT_THEIRS),
    # Partner portal.
    ("GET", "/ib/login"): public(),
    ("POST", "/ib/login"): public(),
    ("POST", "/ib/logout"): public(),
    ("GET", "/ib/forgot"): public(),
    ("POST", "/ib/forgot"): public(),
    ("GET", "/ib/reset/{token:str}"): public(text="expired"),
    ("POST", "/ib/reset/{token:str}"): public(),
    ("GET", "/ib"): partner(),
    ("GET", "/ib/network"): partner(),
}

IGNORED_METHODS = {"OPTIONS", "HEAD"}


def app_routes(app) -> set[tuple[str, str]]:
    """Every (method, path) the application serves over HTTP, except static files and the schema."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        if route.path.startswith("/static") or route.path.startswith("/schema"):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method not in IGNORED_METHODS:
                    found.add((method, route.path))
    return found


# --- real ids for path parameters ---------------------------------------------------------------


def admin_principal(p: Persona) -> Principal:
    return Principal(
        kind="staff",
        id=p.id,
        email=p.email,
        name=p.name,
        session_id=0,
        mfa_passed=True,
        totp_enabled=True,
        roles=frozenset(p.roles),
    )


@pytest.fixture
async def ids(personas) -> dict[str, int]:
    """One message to each client persona (which also queues one e-mail each)."""
    admin = admin_principal(personas["admin"])
    out: dict[str, int] = {}
    for name in ("client_a", "ib", "sub_ib"):
        out[f"message:{name}"] = await client_services.send_message(
            admin,
            personas[name].id,
            f"Hello {name}",
            "Your account is ready.",
            admin.actor("127.0.0.1", "pytest"),
        )
    from app.core import mail

    out["email"] = (await mail.recent())[0]["id"]
    from app.clients.tables import ClientBulkRun

    run = ClientBulkRun(
        staff=personas["admin"].id, action="add_tag", params={"tag": "vip", "selection": {"ids": []}}
    )
    await run.save()
    out["bulk_run"] = run.id
    from app.imports import services as imports

    out["import"] = await imports.upload(
        admin, "leads.csv", b"email,first_name,last_name\nann@example.com,Ann,Lee\n", admin.actor()
    )
    from datetime import UTC, datetime

    from app.kyc.tables import Document, DocumentType

    passport = await DocumentType.select(DocumentType.id).where(DocumentType.code == "passport").first()
    now = datetime.now(UTC)
    document = Document(
        client=personas["client_a"].id,
        doc_type=passport["id"],
        category="identity",
        status="pending",
        created_at=now,
        submitted_at=now,
    )
    await document.save()
    out["document"] = document.id
    from app.kyc import documents as kyc_documents
    from app.kyc.tables import DocumentFile

    photo = b"\xff\xd8\xff\xe0 a stored passport photo"  # served as stored: no decoding on the way out
    kyc_file = DocumentFile(
        document=document.id,
        side="single",
        storage_name=kyc_documents.store().write(photo),
        mime="image/jpeg",
        size=len(photo),
        received_sha256="0" * 64,
        stored_sha256="0" * 64,
        uploaded_at=now,
    )
    await kyc_file.save()
    out["kyc_file"] = kyc_file.id
    out.update(await trading_rows(personas["client_a"].id))
    from decimal import Decimal

    from app.funding.tables import PaymentMethod

    method = PaymentMethod(
        name="Card",
        kind="card",
        provider="simcard",
        currencies="USD",
        min_amount=Decimal(10),
        max_amount=Decimal(5000),
        created_at=now,
        updated_at=now,
    )
    await method.save()
    out["payment_method"] = method.id
    out.update(await funding_rows(personas["client_a"].id, out["account"], personas["admin"].email))
    return out


async def funding_rows(client_id: int, account_id: int, officer: str) -> dict[str, int]:
    """Client_a's money as the services leave it: a card, a wire (with its receipt) and a crypto
    deposit, a withdrawal, a transfer to their account; a bank statement line and a reconciliation run."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from app.core import db
    from app.funding.tables import ReconciliationRun, StatementImport, StatementLine
    from app.kyc import documents as kyc_documents

    out: dict[str, int] = {}
    receipt = kyc_documents.store().write(b"%PDF-1.4 a bank transfer receipt")
    for kind, provider, receipt_path in (
        ("card", "simcard", ""),
        ("wire", "wire", receipt),
        ("crypto", "simchain", ""),
    ):
        row = await db.fetchrow(
            "INSERT INTO funding_deposits (client_id, provider, kind, reference, amount, currency, credit_currency, "
            "status, receipt_path, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, 100, 'USD', 'USD', 'pending', $5, now(), now()) RETURNING id",
            client_id,
            provider,
            kind,
            f"MATRIX{kind.upper()}",
            receipt_path,
        )
        out[f"deposit:{kind}"] = row["id"]
    row = await db.fetchrow(
        "INSERT INTO funding_withdrawals (client_id, amount, requested_amount, currency, status, "
        "destination_label, created_at, updated_at) "
        "VALUES ($1, 40, 40, 'USD', 'requested', 'Visa •••• 4242', now(), now()) RETURNING id",
        client_id,
    )
    out["withdrawal"] = row["id"]
    row = await db.fetchrow(
        "INSERT INTO funding_transfers (kind, client_id, to_account_id, amount, currency, status, created_at, "
        "updated_at) VALUES ('wallet_to_account', $1, $2, 25, 'USD', 'pending', now(), now()) RETURNING id",
        client_id,
        account_id,
    )
    out["transfer"] = row["id"]
    now = datetime.now(UTC)
    statement = StatementImport(
        filename="bank.csv", currency="USD", lines=1, imported_by=officer, created_at=now
    )
    await statement.save()
    line = StatementLine(
        import_id=statement.id,
        line_no=1,
        booked_on="2026-11-24",
        amount=Decimal(100),
        currency="USD",
        reference="MATRIXWIRE",
        bank_id="matrix-1",
    )
    await line.save()
    out["statement_line"] = line.id
    run = ReconciliationRun(started_at=now, finished_at=now, status="ok", triggered_by=officer)
    await run.save()
    out["reconciliation_run"] = run.id
    return out


async def trading_rows(client_id: int) -> dict[str, int]:
    """A trading server (nothing listens there: no page here asks it), a type, and an open account."""
    from datetime import UTC, datetime

    from app.trading import credentials
    from app.trading.tables import AccountType, TradingAccount, TradingServer

    now = datetime.now(UTC)
    server = TradingServer(
        name="Matrix",
        address="127.0.0.1:9",
        manager_login=1000,
        password_enc=credentials.encrypt("Manager#2026", "Matrix"),
        created_at=now,
        updated_at=now,
    )
    await server.save()
    kind = AccountType(
        name="Standard",
        server=server.id,
        group_name="real\\standard-usd",
        currency="USD",
        leverages="30,100",
        default_leverage=30,
        created_at=now,
        updated_at=now,
    )
    await kind.save()
    account = TradingAccount(
        client=client_id,
        server=server.id,
        account_type=kind.id,
        login=500001,
        group_name="real\\standard-usd",
        currency="USD",
        leverage=30,
        status="active",
        created_at=now,
        updated_at=now,
    )
    await account.save()
    return {"server": server.id, "account_type": kind.id, "account": account.id}


def concrete(path: str, persona: str, personas: dict[str, Persona], ids: dict[str, int]) -> str:
    """The template path with real ids: the persona's own where that makes sense."""

    def value(m: re.Match) -> str:
        name = m.group(1)
        if name == "token":
            return BAD_TOKEN
        if name == "code":
            return "IBTEST"  # a real partner code: the click is recorded, then on to registration
        if name == "client_id":
            return str(personas["client_a"].id)
        if name == "staff_id":
            return str(personas["compliance"].id)
        if name == "email_id":
            return str(ids["email"])
        if name == "key_id":
            return "1"
        if name == "run_id":
            return str(ids["reconciliation_run" if "/reconciliation/" in path else "bulk_run"])
        if name == "import_id":
            return str(ids["import"])
        if name == "view_id":
            return "1"
        if name in ("desk_id", "member_id"):
            return "1"
        if name == "task_id":
            return "1"
        if name == "document_id":
            return str(ids["document"])
        if name == "file_id":
            return str(ids["kyc_file"])  # client_a's passport
        if name == "question_id":
            return "1"  # the first seeded appropriateness question
        if name == "person_id":
            return "1"  # refused before any person is looked up; tests/kyc/test_corporate.py decides
        if name == "server_id":
            return str(ids["server"])  # a configured server (id 1 in a fresh database)
        if name == "type_id":
            return str(ids["account_type"])
        if name == "account_id":
            return str(ids["account"])  # client_a's open trading account
        if name == "method_id":
            return str(ids["payment_method"])
        if name == "op_id":
            return "nosuchoperation0"  # refused before any operation is looked up (tests/trading decide)
        if name == "case_id":
            return "1"  # refused before any case is looked up; deciding is tested in tests/screening
        if name == "deposit_id":  # client_a's deposit of the kind the page is about
            kind = "wire" if "/wire/" in path else "crypto" if "/crypto/" in path else "card"
            return str(ids[f"deposit:{kind}"])
        if name == "withdrawal_id":
            return str(ids["withdrawal"])  # client_a's, requested
        if name == "transfer_id":
            return str(ids["transfer"])  # client_a's, wallet to their account
        if name == "line_id":
            return str(ids["statement_line"])
        if name == "chain_tx_id":
            return "1"  # refused before any transaction is looked up (tests/funding decide)
        if name == "provider":
            return "simcard"  # a provider with a webhook secret: the signature is what is missing
        if name == "message_id":
            return str(ids.get(f"message:{persona}", ids["message:client_a"]))
        raise AssertionError(f"no id for path parameter {name!r} in {path}: add one to concrete()")

    return re.sub(r"\{(\w+)(?::\w+)?\}", value, path)


def check(persona: str, method: str, path: str, expected: Expect, r) -> str | None:
    problems = []
    if r.status_code != expected.status:
        problems.append(f"status {r.status_code}")
    if expected.location is not None and r.headers.get("location") != expected.location:
        problems.append(f"location {r.headers.get('location')!r}")
    if expected.text is not None and expected.text not in r.text:
        problems.append(f"no {expected.text!r} in the page")
    if problems:
        return f"{persona:>10} {method} {path}: expected {expected}, got {', '.join(problems)}"
    return None


# --- the tests ----------------------------------------------------------------------------------


async def test_every_route_has_a_policy_line(app):
    served = app_routes(app)
    missing = sorted(served - POLICY.keys())
    stale = sorted(POLICY.keys() - served)
    assert not missing, "routes without a line in POLICY (decide who may use them): " + ", ".join(
        f"{m} {p}" for m, p in missing
    )
    assert not stale, "POLICY lines for routes that no longer exist: " + ", ".join(
        f"{m} {p}" for m, p in stale
    )


@pytest.mark.parametrize("persona", PERSONAS)
async def test_each_persona_gets_exactly_what_the_policy_allows(client, app, personas, ids, persona):
    """Every page requested; every action the policy forbids attempted (with a valid CSRF token)."""
    await sign_in(client, personas[persona])
    token = CSRF_RE.search((await client.get("/portal/login")).text).group(1)
    failures = []
    gets = unsafe = 0
    for method, template in sorted(app_routes(app)):
        rule = POLICY[(method, template)]
        path = concrete(template, persona, personas, ids)
        if method == "GET":
            r = await client.get(path)
            gets += 1
        elif rule.refuses(persona):  # any unsafe method, through the same guards
            r = await client.request(method, path, data={"_csrf_token": token})
            unsafe += 1
        else:
            continue  # allowed actions are exercised by each domain's own tests
        if failure := check(persona, method, path, rule.expect(persona, path), r):
            failures.append(failure)
    assert not failures, "\n" + "\n".join(failures)
    assert gets > 30  # the walk really covers the app
    assert unsafe > 0 or persona == "admin"


async def staff_snapshot() -> list[dict]:
    return await StaffUser.select(
        StaffUser.id, StaffUser.email, StaffUser.roles, StaffUser.is_active, StaffUser.totp_enabled
    ).order_by(StaffUser.id)


async def test_a_non_admin_cannot_manage_staff_users_and_nothing_changes(client, personas):
    before = await staff_snapshot()
    audit_rows = await AuditEvent.count()
    for persona in ("compliance", "finance", "sales", "dealing"):
        await sign_in(client, personas[persona])
        await try_to_manage_staff(client, personas, persona)
    assert await staff_snapshot() == before
    assert await AuditEvent.count() == audit_rows
    assert not await StaffUser.exists().where(StaffUser.email == "mole@staff.test")


async def try_to_manage_staff(client, personas: dict[str, Persona], persona: str) -> None:
    target = personas["sales"].id if persona != "sales" else personas["finance"].id
    own = personas[persona].id
    attempts = [
        (
            "/staff/settings/staff/new",
            {
                "email": "mole@staff.test",
                "name": "Mole",
                "roles": "admin",
                "password": "a-long-enough-password-2026",
            },
        ),
        (f"/staff/settings/staff/{own}", {"name": "Promoted", "roles": ["admin", persona]}),
        (f"/staff/settings/staff/{target}", {"name": "Renamed", "roles": "admin"}),
        (f"/staff/settings/staff/{target}/active", {"active": "0"}),
        (f"/staff/settings/staff/{personas['admin'].id}/active", {"active": "0"}),
        (f"/staff/settings/staff/{personas['admin'].id}/reset-2fa", {}),
    ]
    for url, data in attempts:
        for htmx in (False, True):
            r = await post_form(client, url, data, page="/staff/login", htmx=htmx)
            assert r.status_code == 403, (persona, url, htmx, r.status_code)
            assert "role does not allow" in r.text
            assert "HX-Redirect" not in r.headers


async def test_an_admin_may_use_staff_management(client, personas):
    """The other side of the refusals above: the same POST from an admin does take effect."""
    await sign_in(client, personas["admin"])
    r = await post_form(
        client,
        "/staff/settings/staff/new",
        {
            "email": "newbie@staff.test",
            "name": "Newbie",
            "roles": "sales",
            "password": "a-long-enough-password-2026",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/settings/staff"
    row = await StaffUser.select().where(StaffUser.email == "newbie@staff.test").first()
    assert row["roles"] == ["sales"]


async def test_a_colleague_with_two_roles_enters_the_sections_of_both_and_no_others(client, personas):
    both = await make_staff("deskmix", ["sales", "compliance"])
    await sign_in(client, both)
    for url in (
        "/staff",
        "/staff/clients",
        "/staff/kyc",
        "/staff/audit",
        "/staff/reports",
        "/staff/partners",
        "/staff/marketing",
    ):
        assert (await client.get(url)).status_code == 200, url
    for url in ("/staff/accounts", "/staff/funding", "/staff/settings", "/staff/settings/staff"):
        assert (await client.get(url)).status_code == 403, url


# --- anonymous visitors: to the right login, and back again ------------------------------------


def form_action(html: str) -> str:
    m = re.search(r'<form[^>]*method="post"[^>]*action="([^"]+)"', html)
    assert m, "no POST form on the page"
    return m.group(1).replace("&amp;", "&")


async def submit(client, page_url: str, data: dict):
    """Fill in the form on `page_url` as a browser would: its action, its CSRF token."""
    page = await client.get(page_url)
    assert page.status_code == 200, (page_url, page.status_code)
    token = CSRF_RE.search(page.text).group(1)
    return await client.post(form_action(page.text), data={**data, "_csrf_token": token})


@pytest.mark.parametrize(
    ("original", "login", "who", "landmark"),
    [
        ("/portal/messages", "/portal/login", "client_a", "Hello client_a"),
        ("/portal/messages/{message}", "/portal/login", "client_a", "Your account is ready."),
        ("/ib/network", "/ib/login", "ib", "IBSUBTEST"),
    ],
)
async def test_an_anonymous_visitor_signs_in_and_lands_on_the_page_they_asked_for(
    client, personas, ids, original, login, who, landmark
):
    original = original.replace("{message}", str(ids["message:client_a"]))
    r = await client.get(original)
    assert r.status_code == 303
    assert r.headers["location"] == f"{login}?next={quote(original, safe='')}"
    r = await submit(client, r.headers["location"], {"email": personas[who].email, "password": PASSWORD})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == original
    r = await client.get(original)
    assert r.status_code == 200 and landmark in r.text


async def test_staff_come_back_to_their_page_with_its_query_after_password_and_code(client, personas):
    original = "/staff/audit?action=auth&actor=admin%40staff.test"
    r = await client.get(original)
    assert r.status_code == 303
    assert r.headers["location"] == f"/staff/login?next={quote(original, safe='')}"
    r = await submit(client, r.headers["location"], {"email": "admin@staff.test", "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/2fa?next=")
    r = await submit(client, r.headers["location"], {"code": totp_now()})
    assert r.status_code == 303
    assert r.headers["location"] == original
    r = await client.get(original)
    assert r.status_code == 200 and 'value="admin@staff.test"' in r.text


EVIL = [
    "//evil.example",
    "https://evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "http:evil.example",
]


async def test_a_return_path_to_another_site_lands_on_the_portal_home(client, personas):
    login = {"email": personas["client_a"].email, "password": PASSWORD}
    for evil in EVIL:
        client.cookies.clear()
        r = await client.get("/portal/login", params={"next": evil})
        assert r.status_code == 200
        r = await submit(client, str(r.url), login)
        assert (r.status_code, r.headers["location"]) == (303, "/portal"), evil
        # The same form posted by htmx: the target travels in HX-Redirect, which htmx follows as is.
        client.cookies.clear()
        r = await post_form(client, "/portal/login?" + urlencode({"next": evil}), login, htmx=True)
        assert (r.status_code, r.headers["hx-redirect"]) == (200, "/portal"), evil


# --- the wrong kind of user --------------------------------------------------------------------


async def test_a_client_session_is_refused_in_the_staff_console(client, personas):
    await sign_in(client, personas["client_a"])
    for url in ("/staff", "/staff/clients", "/staff/settings/staff", "/staff/2fa"):
        r = await client.get(url)
        assert r.status_code == 403, url
        assert "for broker staff only" in r.text


async def test_a_staff_session_is_refused_in_the_client_portal(client, personas):
    await sign_in(client, personas["admin"])
    for url in ("/portal", "/portal/messages", "/portal/settings", "/portal/2fa"):
        r = await client.get(url)
        assert r.status_code == 403, url
        assert "staff use the staff console" in r.text


async def test_a_client_without_partner_status_is_told_why_the_partner_portal_is_closed(client, personas):
    await sign_in(client, personas["client_a"])
    for url in ("/ib", "/ib/network"):
        r = await client.get(url)
        assert r.status_code == 403, url
        assert "no partner (IB) status" in r.text
        assert "account manager" in r.text


# --- page and fragment: every htmx endpoint with and without HX-Request --------------------------

FRAGMENTS = [
    # (persona, url, what the shared partial shows in both answers)
    ("admin", "/staff", 'id="stat-clients"'),
    ("compliance", "/staff/audit", "client.message_sent"),
    ("sales", "/staff/clients", "client.a@client.test"),
    ("compliance", "/staff/clients?q=client.b", "client.b@client.test"),  # outside sales' desks
    ("admin", "/staff/settings/jobs", 'id="jobs-queued"'),
    ("admin", "/staff/settings/outbox", "client.a@client.test"),
    ("admin", "/staff/settings/staff", "dealing@staff.test"),
    ("client_a", "/portal/messages", "Hello client_a"),
    ("client_a", "/portal/documents", 'id="card-identity"'),
    ("ib", "/ib/network", "IBSUBTEST"),
]


async def test_an_htmx_request_gets_the_partial_and_a_browser_the_whole_page(client, personas, ids):
    for persona, url, landmark in FRAGMENTS:
        await sign_in(client, personas[persona])
        page = await client.get(url)
        assert page.status_code == 200, url
        assert "<html" in page.text and landmark in page.text, url
        fragment = await client.get(url, headers={"HX-Request": "true"})
        assert fragment.status_code == 200, url
        assert "<html" not in fragment.text and landmark in fragment.text, url
        assert len(fragment.text) < len(page.text), url
        boosted = await client.get(url, headers={"HX-Request": "true", "HX-Boosted": "true"})
        assert "<html" in boosted.text, url  # a boosted link navigates: it needs the page


async def test_the_fragment_obeys_the_same_guard_as_the_page(client, personas, ids):
    """Decided in Python, not in a template: asking for the partial alone shows nothing more."""
    checked = 0
    for _, url, landmark in FRAGMENTS:
        rule = POLICY[("GET", url.split("?")[0])]
        for other in ("dealing", "client_b", "outsider"):
            if not rule.refuses(other):
                continue
            await sign_in(client, personas[other])
            r = await client.get(url, headers={"HX-Request": "true"})
            checked += 1
            assert landmark not in r.text, (other, url)
            if other == "outsider":  # htmx follows HX-Redirect to the login page, with the way back
                assert r.status_code == 200 and r.text == "", url
                assert r.headers["hx-redirect"].startswith(
                    rule.expect(other, url).location.split("?")[0] + "?next="
                ), url
            else:
                assert r.status_code == 403, (other, url)
                assert "<html" in r.text  # the error page, whole
    assert checked >= 15


async def test_resending_the_verification_link_answers_htmx_with_a_partial_and_a_form_post_with_the_dashboard(
    client, personas
):
    c = await make_client("client_c", verified=False)
    await sign_in(client, c)
    fragment = await post_form(client, "/portal/verify/resend", {}, page="/portal", htmx=True)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "We sent a new verification link" in fragment.text
    plain = await post_form(client, "/portal/verify/resend", {}, page="/portal")
    assert plain.status_code == 303
    page = await client.get(plain.headers["location"])
    assert page.status_code == 200
    assert "<html" in page.text and "We sent a new verification link" in page.text
    assert await OutboundEmail.count().where(OutboundEmail.to_addr == c.email) == 2


async def test_sending_a_client_a_message_answers_htmx_with_the_panel_and_a_form_post_with_a_redirect(
    client, personas
):
    await sign_in(client, personas["sales"])
    url = f"/staff/clients/{personas['client_a'].id}/messages"
    page = f"/staff/clients/{personas['client_a'].id}"
    fragment = await post_form(client, url, {"subject": "By htmx", "body": "One"}, page=page, htmx=True)
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "By htmx" in fragment.text and "Message sent." in fragment.text
    plain = await post_form(client, url, {"subject": "By form", "body": "Two"}, page=page)
    assert plain.status_code == 303 and plain.headers["location"] == page
    invalid = await post_form(client, url, {"subject": "", "body": ""}, page=page, htmx=True)
    assert invalid.status_code == 422 and "<html" not in invalid.text and "Enter a subject." in invalid.text
    invalid = await post_form(client, url, {"subject": "", "body": ""}, page=page)
    assert invalid.status_code == 422 and "<html" in invalid.text and "Enter a subject." in invalid.text


async def test_a_refused_staff_status_change_answers_htmx_with_the_table_and_a_form_post_with_the_page(
    client, personas
):
    await sign_in(client, personas["admin"])
    url = f"/staff/settings/staff/{personas['admin'].id}/active"
    fragment = await post_form(client, url, {"active": "0"}, page="/staff/settings/staff", htmx=True)
    assert fragment.status_code == 422
    assert "<html" not in fragment.text and "You cannot deactivate yourself." in fragment.text
    plain = await post_form(client, url, {"active": "0"}, page="/staff/settings/staff")
    assert plain.status_code == 422
    assert "<html" in plain.text and "You cannot deactivate yourself." in plain.text
