"""Why a document was turned down: a fixed list of reason codes, each with the message the client
reads in their own language (the `language` on their client record; English when we have none).

The list is fixed on purpose: reasons are counted in reports and must mean the same thing every
time. What a code cannot say goes in the reviewer's optional note, shown to the client under
the message. "other" needs that note, since on its own it tells the client nothing useful.
"""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGES = ("en", "de", "es", "fr", "ar")


@dataclass(frozen=True)
class Reason:
    code: str
    label: str  # what the reviewer picks from (English: the console is in English)
    messages: dict[str, str]  # language -> what the client reads
    note_required: bool = False


REASONS: tuple[Reason, ...] = (
    Reason(
        "blurred",
        "Blurred or out of focus",
        {
            "en": "The photo is blurred. Please take a new, sharp photo in good light.",
            "de": "Das Foto ist unscharf. Bitte machen Sie ein neues, scharfes Foto bei guter Beleuchtung.",
            "es": "La foto está borrosa. Por favor, haga una foto nueva y nítida con buena luz.",
            "fr": "La photo est floue. Veuillez prendre une nouvelle photo nette, avec un bon éclairage.",
            "ar": "الصورة غير واضحة. يرجى التقاط صورة جديدة واضحة في إضاءة جيدة.",
        },
    ),
    Reason(
        "cropped",
        "Cropped: part of the document is cut off",
        {
            "en": "Part of the document is cut off. Please make sure all four corners are visible.",
            "de": "Ein Teil des Dokuments ist abgeschnitten. Bitte achten Sie darauf, dass alle vier Ecken sichtbar sind.",
            "es": "Parte del documento está cortada. Asegúrese de que se vean las cuatro esquinas.",
            "fr": "Une partie du document est coupée. Veillez à ce que les quatre coins soient visibles.",
            "ar": "جزء من المستند مقطوع. يرجى التأكد من ظهور الزوايا الأربع كاملة.",
        },
    ),
    Reason(
        "unreadable",
        "Unreadable (glare, shadows, low resolution)",
        {
            "en": "We cannot read the document. Please avoid glare and shadows and upload a clearer photo or scan.",
            "de": "Wir können das Dokument nicht lesen. Bitte vermeiden Sie Spiegelungen und Schatten und laden Sie ein deutlicheres Foto oder einen Scan hoch.",
            "es": "No podemos leer el documento. Evite reflejos y sombras y suba una foto o un escaneo más claro.",
            "fr": "Nous ne pouvons pas lire le document. Évitez les reflets et les ombres et téléversez une photo ou un scan plus net.",
            "ar": "لا يمكننا قراءة المستند. يرجى تجنب الانعكاسات والظلال وتحميل صورة أو نسخة ممسوحة أوضح.",
        },
    ),
    Reason(
        "expired",
        "Expired document",
        {
            "en": "The document has expired. Please upload a document that is still valid.",
            "de": "Das Dokument ist abgelaufen. Bitte laden Sie ein gültiges Dokument hoch.",
            "es": "El documento ha caducado. Por favor, suba un documento vigente.",
            "fr": "Le document a expiré. Veuillez téléverser un document en cours de validité.",
            "ar": "انتهت صلاحية المستند. يرجى تحميل مستند ساري المفعول.",
        },
    ),
    Reason(
        "not_matching_name",
        "Name does not match the account",
        {
            "en": "The name on the document does not match the name on your account.",
            "de": "Der Name auf dem Dokument stimmt nicht mit dem Namen in Ihrem Konto überein.",
            "es": "El nombre del documento no coincide con el nombre de su cuenta.",
            "fr": "Le nom figurant sur le document ne correspond pas au nom de votre compte.",
            "ar": "الاسم الموجود على المستند لا يطابق الاسم المسجل في حسابك.",
        },
    ),
    Reason(
        "not_matching_address",
        "Address does not match the declared address",
        {
            "en": "The address on the document does not match the address you gave us.",
            "de": "Die Adresse auf dem Dokument stimmt nicht mit der von Ihnen angegebenen Adresse überein.",
            "es": "La dirección del documento no coincide con la dirección que nos indicó.",
            "fr": "L'adresse figurant sur le document ne correspond pas à celle que vous nous avez indiquée.",
            "ar": "العنوان الموجود على المستند لا يطابق العنوان الذي قدمته لنا.",
        },
    ),
    Reason(
        "older_than_3_months",
        "Older than 3 months (proof of address)",
        {
            "en": "The document is older than 3 months. Please upload one issued within the last 3 months.",
            "de": "Das Dokument ist älter als 3 Monate. Bitte laden Sie ein Dokument hoch, das in den letzten 3 Monaten ausgestellt wurde.",
            "es": "El documento tiene más de 3 meses. Por favor, suba uno emitido en los últimos 3 meses.",
            "fr": "Le document date de plus de 3 mois. Veuillez téléverser un document émis au cours des 3 derniers mois.",
            "ar": "تاريخ المستند أقدم من 3 أشهر. يرجى تحميل مستند صادر خلال الأشهر الثلاثة الأخيرة.",
        },
    ),
    Reason(
        "wrong_type",
        "Wrong type of document",
        {
            "en": "This is not the kind of document we asked for. Please upload one of the accepted documents.",
            "de": "Dies ist nicht die Art von Dokument, die wir angefordert haben. Bitte laden Sie eines der akzeptierten Dokumente hoch.",
            "es": "Este no es el tipo de documento que solicitamos. Por favor, suba uno de los documentos aceptados.",
            "fr": "Ce n'est pas le type de document demandé. Veuillez téléverser l'un des documents acceptés.",
            "ar": "هذا ليس نوع المستند المطلوب. يرجى تحميل أحد المستندات المقبولة.",
        },
    ),
    Reason(
        "other",
        "Other (explain in the note)",
        {
            "en": "We could not accept this document.",
            "de": "Wir konnten dieses Dokument nicht akzeptieren.",
            "es": "No hemos podido aceptar este documento.",
            "fr": "Nous n'avons pas pu accepter ce document.",
            "ar": "لم نتمكن من قبول هذا المستند.",
        },
        note_required=True,
    ),
)
BY_CODE = {r.code: r for r in REASONS}
assert all(set(r.messages) == set(LANGUAGES) for r in REASONS), "every reason in every language"


def language_of(tag: str | None) -> str:
    """The language we write to a client in: their tag's primary subtag if we have it, else English."""
    primary = (tag or "").replace("_", "-").split("-")[0].strip().lower()
    return primary if primary in LANGUAGES else "en"


def client_message(code: str, language: str | None, note: str = "") -> str:
    """What the client reads: the reason in their language, then the reviewer's note, if any."""
    message = BY_CODE[code].messages[language_of(language)]
    note = note.strip()
    return f"{message}\n\n{note}" if note else message


CATEGORY_NOUNS: dict[str, dict[str, str]] = {
    "en": {
        "identity": "identity document",
        "address": "proof of address",
        "selfie": "selfie",
        "source_of_funds": "proof of source of funds",
        "corporate": "company document",
    },
    "de": {
        "identity": "Ausweisdokument",
        "address": "Adressnachweis",
        "selfie": "Selfie",
        "source_of_funds": "Nachweis der Mittelherkunft",
        "corporate": "Unternehmensdokument",
    },
    "es": {
        "identity": "documento de identidad",
        "address": "comprobante de domicilio",
        "selfie": "selfie",
        "source_of_funds": "justificante del origen de los fondos",
        "corporate": "documento de la empresa",
    },
    "fr": {
        "identity": "pièce d'identité",
        "address": "justificatif de domicile",
        "selfie": "selfie",
        "source_of_funds": "justificatif de l'origine des fonds",
        "corporate": "document de la société",
    },
    "ar": {
        "identity": "وثيقة الهوية",
        "address": "إثبات العنوان",
        "selfie": "الصورة الذاتية",
        "source_of_funds": "إثبات مصدر الأموال",
        "corporate": "مستند الشركة",
    },
}


def category_noun(category: str, language: str | None) -> str:
    """The kind of document in the client's language, for e-mails ("proof of address", "Adressnachweis")."""
    nouns = CATEGORY_NOUNS[language_of(language)]
    return nouns.get(category, CATEGORY_NOUNS["en"].get(category, category))
