"""The client's verification as they see it: the level they hold, what it lets them do, the one
next step that unlocks more, and a card per required document with what to do about it.

Built from `documents.checklist_for` only (no queries of its own), so the documents page, its live
updates and the dashboard banner always say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.core.auth.principal import Principal
from app.kyc import documents, reasons
from app.kyc.levels import CATEGORY_LABELS, RIGHT_LABELS
from app.kyc.tables import RIGHTS
from app.settings import get_settings

CARD_TITLES = {
    "identity": "Identity document",
    "address": "Proof of address",
    "selfie": "Selfie",
    "source_of_funds": "Source of funds",
    "corporate": "Company documents",
}
# status -> (badge text, badge colour)
BADGES = {
    "missing": ("Missing", "grey"),
    "uploaded": ("Uploaded — waiting for the other side", "blue"),
    "in_review": ("In review", "blue"),
    "approved": ("Approved", "green"),
    "rejected": ("Rejected", "red"),
    "reupload_requested": ("Re-upload requested", "amber"),
    "expiring": ("Expiring", "amber"),
    "expired": ("Expired", "red"),
}
SIDE_LABELS = {"front": "Front", "back": "Back", "single": "Photo or scan"}
DONE = ("approved", "expiring")  # the category counts towards the level


@dataclass(frozen=True)
class UploadError:
    """A refused upload, shown beside the side it was meant for (or on the card)."""

    type_code: str
    side: str
    message: str


@dataclass(frozen=True)
class Card:
    category: str
    title: str
    needed_for: str
    status: str
    document: dict[str, Any] | None
    types: list[dict[str, Any]]  # the types offered for upload now (empty: nothing to upload)
    chosen: str  # the type whose upload controls show first
    folded: bool  # upload controls behind "upload a newer document" (the category is done)
    note: str = ""
    error: UploadError | None = None

    @property
    def badge(self) -> tuple[str, str]:
        return BADGES.get(self.status, (self.status, "grey"))

    @property
    def message(self) -> str:
        """Why the document was turned down, in the client's language (stored with the decision)."""
        doc = self.document
        if not doc or self.status not in ("rejected", "reupload_requested"):
            return ""
        if doc["client_message"]:
            return str(doc["client_message"])
        reason = reasons.BY_CODE.get(doc["reason_code"])
        return reason.messages["en"] if reason else ""

    @staticmethod
    def side_label(side: str) -> str:
        return SIDE_LABELS.get(side, side)

    def sides(self, doc_type: dict[str, Any]) -> list[dict[str, Any]]:
        """Each side of `doc_type` with the file already sent for it (while it can still change)."""
        files: dict[str, Any] = {}
        doc = self.document
        if doc and doc["type_code"] == doc_type["code"] and doc["status"] in ("draft", "pending"):
            files = doc["files"]
        out = []
        for side in documents.sides_of(doc_type):
            error = None
            if self.error and self.error.type_code == doc_type["code"] and self.error.side == side:
                error = self.error.message
            out.append({"side": side, "label": SIDE_LABELS[side], "file": files.get(side), "error": error})
        return out

    @property
    def card_error(self) -> str | None:
        """An error no side form shows (an unknown type or side)."""
        if self.error is None:
            return None
        for t in self.types:
            if t["code"] == self.error.type_code and self.error.side in documents.sides_of(t):
                return None
        return self.error.message

    @property
    def shown_files(self) -> list[dict[str, Any]]:
        """The files to show as the document's summary (when no side form shows them)."""
        doc = self.document
        if not doc or doc["status"] in ("draft", "pending", "rejected", "reupload_requested"):
            return []
        order = {"front": 0, "back": 1, "single": 2}
        return sorted(doc["files"].values(), key=lambda f: order.get(f["side"], 3))


@dataclass(frozen=True)
class Standing:
    level: int
    level_name: str
    can: list[str]
    next_step: str | None  # None: nothing more to do
    action_card: str | None = None  # the card to go to for the next step
    questionnaire: bool = False  # the next level also waits for the appropriateness questionnaire


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount:,.0f} {currency}" if amount == amount.to_integral() else f"{amount:,.2f} {currency}"


def standing_of(checklist: dict[str, Any]) -> Standing:
    rights = checklist["rights"]
    status = {r.category: r.status for r in checklist["requirements"]}
    can = [RIGHT_LABELS[r] for r in RIGHTS if r in rights.rights]
    higher = [lv for lv in checklist["ladder"] if lv["rank"] > rights.level]
    if not higher:
        return Standing(rights.level, rights.level_name, can, None)
    target = higher[0]
    gained = []
    for right in RIGHTS:
        if right in target["rights"] and right not in rights.rights:
            label = RIGHT_LABELS[right]
            if right == "deposits" and target["deposit_limit"] is not None:
                label += f" up to {_money(target['deposit_limit'], target['deposit_limit_currency'])}"
            gained.append(label)
    if "deposits" in rights.rights and rights.deposit_limit is not None and target["deposit_limit"] is None:
        gained.append("deposit without a limit")
    to_do: list[str] = []
    reviewing: list[str] = []
    first_card = None
    for category in target["required_categories"]:
        s = status.get(category, "missing")
        if s in DONE:
            continue
        label = CATEGORY_LABELS.get(category, category)
        if s == "in_review":
            reviewing.append(CARD_TITLES.get(category, category).lower())
            continue
        to_do.append(("finish uploading " if s == "uploaded" else "upload ") + label)
        first_card = first_card or category
    profile = checklist["profile"]
    questionnaire = bool(target["requires_appropriateness"] and profile["appropriateness_at"] is None)
    if questionnaire:
        to_do.append("complete the appropriateness questionnaire")
    unlock = f" to {_join(gained)}" if gained else ""
    if to_do:
        step = f"Next: {', then '.join(to_do)}{unlock}."
        return Standing(rights.level, rights.level_name, can, step, first_card, questionnaire)
    if reviewing:
        once = f"; once it is approved you can {_join(gained)}" if gained else ""
        step = f"Next: we are reviewing your {_join(reviewing)}{once}."
        return Standing(rights.level, rights.level_name, can, step)
    step = f"Next: your documents are approved; your level {target['rank']} rights follow shortly."
    return Standing(rights.level, rights.level_name, can, step)


def cards_of(checklist: dict[str, Any], chosen: str = "", error: UploadError | None = None) -> list[Card]:
    """A card per required category; `chosen` is the type just used (its controls stay open), and
    `error` goes to the card of its type (the first card when no card has that type)."""
    status = {r.category: r.status for r in checklist["requirements"]}
    requirements = checklist["requirements"]
    error_category = None
    if error is not None and requirements:
        error_category = next(
            (r.category for r in requirements if any(t["code"] == error.type_code for t in r.types)),
            requirements[0].category,
        )
    cards = []
    for req in requirements:
        doc = req.document
        types = list(req.types)
        if req.status == "in_review" and doc is not None:
            # Waiting in the queue, its photos may still be replaced; once a reviewer has it, not.
            types = [t for t in types if t["code"] == doc["type_code"]] if doc["status"] == "pending" else []
        codes = [t["code"] for t in types]
        candidates = (chosen, doc["type_code"] if doc else "")
        pick = next((c for c in candidates if c in codes), codes[0] if codes else "")
        note = ""
        if (
            req.category == "address"
            and req.status not in DONE
            and status.get("identity", "approved") not in DONE
        ):
            note = "You can upload it now; we review it once your identity document is approved."
        cards.append(
            Card(
                category=req.category,
                title=CARD_TITLES.get(req.category, req.category),
                needed_for=req.needed_for,
                status=req.status,
                document=doc,
                types=types,
                chosen=pick,
                folded=req.status == "approved",
                note=note,
                error=error if req.category == error_category else None,
            )
        )
    return cards


async def page_for(p: Principal, chosen: str = "", error: UploadError | None = None) -> dict[str, Any]:
    """Everything the documents page (and each of its cards) shows to this client."""
    checklist = await documents.checklist_for(p)
    cards = cards_of(checklist, chosen, error)
    return {
        "standing": standing_of(checklist),
        "cards": cards,
        "max_upload_bytes": get_settings().kyc.max_upload_bytes,
        # the company page: to declare the company, or to say it is one (before any document)
        "entity_type": checklist["profile"]["entity_type"],
        "nothing_sent": all(c.document is None for c in cards),
    }
