"""Fuzzy, explainable name matching against sanctions entries, with blocking so it scales.

Names are normalised the same way on both sides: Unicode compatibility forms folded, any script
transliterated to Latin (anyascii: Владимир → Vladimir, محمد → mhmd), diacritics gone, case folded,
apostrophes dropped, other punctuation a space, honorifics removed, spaces collapsed. Word order is
ignored (tokens are compared sorted), and every alias of an entry is a name of its own.

The name score is the best of: the ratio of the sorted tokens (typos, transliteration variants);
the token alignment, each word of the shorter name paired with its most similar word of the
longer one, averaged with each word weighted by how rare it is among the listed names (a shared
"Ali" or "Mohammed" is weaker evidence than a shared rare surname), less 5 points per word the
longer name has beyond the shorter (a client who gives
"Dmitry Zorvanov" for the listed "Zorvanov, Dmitri Petrovich"); the ratio of the names written
without spaces, when they have different numbers of words ("Abdulrahman" and "Abdul Rahman"); and, when
either name was written in an abjad script (Arabic, Hebrew), which writes no short vowels, the
ratio of the consonant skeletons less 5 (محمد علي against Mohammed Ali). The Arabic article
("al-", fused or apart) is dropped, as the lists write it either way. Date of birth and nationality
then move it: the same date raises it by 10, the same year by 5, a clear mismatch lowers it by 15;
a shared nationality raises it by 5 and a different one lowers it by 10, while the country of
residence (a weak hint) only raises it, by 3. Each hit carries all of that as its explanation.

Blocking: every token has a coarse phonetic key (its consonant classes, Soundex-like, with the
first letter coded too, so Qaddafi, Gaddafi and Kadhafi share one). A name is indexed under each
pair of its keys, and a subject is compared only with the names that share a pair of keys with
it (names of one word: by that word's key). A matching name shares at least two words with the
subject up to spelling, so the true candidates are always among them; the rest of the list never is.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from anyascii import anyascii
from rapidfuzz import fuzz

HONORIFICS = frozenset(
    "mr mrs ms miss mx dr prof sir dame lord lady sheikh shaikh shaykh sayyid haji hajji hajj mullah "
    "maulana mawlawi maulvi".split()
)
SUBSET_PENALTY = 5  # per word the longer name has beyond the shorter, in the token alignment
DOB_SAME_DATE, DOB_SAME_YEAR, DOB_SAME_YEAR_OTHER_DAY, DOB_MISMATCH = 10, 5, 2, -15
DOB_NEAR_YEARS = 2  # listed dates are often approximate: within this, no effect either way
NAT_MATCH, NAT_MISMATCH, RESIDENCE_MATCH = 5, -10, 3
MAX_BONUS = DOB_SAME_DATE + NAT_MATCH  # a name this far below the threshold cannot become a hit
MAX_KEY_TOKENS = 8  # words of a long name used for blocking keys
MEMO_MAX = 300_000

_APOSTROPHES = str.maketrans("", "", "'’‘`´ʼʻ\"")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_ARABIC_ARTICLE = re.compile(r"(?<![\u0600-\u06FF])\u0627\u0644(?=[\u0600-\u06FF]{2,})")
ARTICLES = frozenset({"al", "el"})  # the Arabic article, written apart ("Al-Haddawi") or fused (الحداوي)
ABJAD_PENALTY = 5  # a comparison without vowels is weaker evidence
_ABJAD = re.compile(r"[\u0590-\u05FF\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF\uFB1D-\uFDFF\uFE70-\uFEFF]")
_VOWELS = str.maketrans("", "", "aeiouyw")
_CODES = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}


# --- normalisation ------------------------------------------------------------------------------


def normalise(name: str, *, person: bool = True) -> str:
    """Lower-case ASCII words separated by single spaces; honorifics dropped for people."""
    text = _ARABIC_ARTICLE.sub("", unicodedata.normalize("NFKC", name))
    text = anyascii(text).casefold().translate(_APOSTROPHES)
    tokens = _NON_ALNUM.sub(" ", text).split()
    kept = [t for t in tokens if t not in ARTICLES and not (person and t in HONORIFICS)]
    return " ".join(kept or tokens)


def phonetic_key(token: str) -> str:
    """Consonant classes of a word, vowels and h/w/y ignored, repeats collapsed, at most 4."""
    out: list[str] = []
    last = ""
    for ch in token:
        code = _CODES.get(ch)
        if code is None:
            if ch.isdigit():
                code = ch
            else:
                continue
        if code != last:
            out.append(code)
            last = code
        if len(out) == 4:
            break
    return "".join(out) or "_" + token[:3]


def skeleton(tokens: Iterable[str]) -> tuple[str, ...]:
    """Words without vowels (and w/y, which abjads use for long vowels), doubled letters single."""
    words = []
    for t in tokens:
        s = re.sub(r"(.)\1+", r"\1", t.translate(_VOWELS))
        if s:
            words.append(s)
    return tuple(words)


@dataclass(slots=True)
class NameForm:
    raw: str
    norm: str
    sorted: str
    tokens: tuple[str, ...]
    keys: tuple[str, ...]  # distinct phonetic keys, in word order
    skeleton: tuple[str, ...]
    abjad: bool

    @classmethod
    def of(cls, raw: str, *, person: bool = True) -> NameForm:
        norm = normalise(raw, person=person)
        tokens = tuple(norm.split())
        keys = tuple(dict.fromkeys(phonetic_key(t) for t in tokens[:MAX_KEY_TOKENS] if t))
        return cls(
            raw=raw,
            norm=norm,
            sorted=" ".join(sorted(tokens)),
            tokens=tokens,
            keys=keys,
            skeleton=skeleton(tokens),
            abjad=bool(_ABJAD.search(raw)),
        )


Weight = Callable[[str], float]


def aligned(a: tuple[str, ...], b: tuple[str, ...], weight: Weight | None = None) -> float:
    """Each word of the shorter name against its best remaining partner in the longer one,
    averaged (by `weight` of the shorter name's words, when given)."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    if not short:
        return 0.0
    free = list(long)
    total = weights = 0.0
    for s in sorted(short, key=len, reverse=True):
        best_i, best = 0, -1.0
        for i, t in enumerate(free):
            v = fuzz.ratio(s, t)
            if v > best:
                best_i, best = i, v
        free.pop(best_i)
        w = weight(s) if weight is not None else 1.0
        total += best * w
        weights += w
    return total / weights - SUBSET_PENALTY * (len(long) - len(short))


def name_score(a: NameForm, b: NameForm, weight: Weight | None = None) -> tuple[float, str]:
    """(0–100, which comparison gave it). `weight`: how much a word counts in the alignment."""
    best, method = fuzz.ratio(a.sorted, b.sorted), "token_sort"
    if best < 100 and len(a.tokens) >= 2 and len(b.tokens) >= 2:
        alignment = aligned(a.tokens, b.tokens, weight)
        if alignment > best:
            best, method = alignment, "token_alignment"
    if best < 100 and len(a.tokens) != len(b.tokens):
        joined = fuzz.ratio(a.norm.replace(" ", ""), b.norm.replace(" ", ""))
        if joined > best:
            best, method = joined, "joined"
    if (a.abjad or b.abjad) and best < 100 and a.skeleton and b.skeleton:
        skel = fuzz.ratio(" ".join(sorted(a.skeleton)), " ".join(sorted(b.skeleton)))
        if len(a.skeleton) >= 2 and len(b.skeleton) >= 2:
            skel = max(skel, aligned(a.skeleton, b.skeleton))
        skel -= ABJAD_PENALTY
        if skel > best:
            best, method = skel, "consonant_skeleton"
    return round(best, 1), method


# --- dates of birth and nationality --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListedDob:
    text: str
    start: int
    end: int
    date: str | None  # YYYY-MM-DD when the list gives the full date

    @classmethod
    def parse(cls, value: str) -> ListedDob | None:
        if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
            return cls(value, int(value[:4]), int(value[:4]), value)
        if m := re.fullmatch(r"(\d{4})\.\.(\d{4})", value):
            return cls(value, int(m.group(1)), int(m.group(2)), None)
        if re.fullmatch(r"\d{4}", value):
            return cls(value, int(value), int(value), None)
        return None


def dob_effect(subject_dob: str | None, listed: Sequence[ListedDob]) -> tuple[int, str]:
    if not subject_dob or not listed:
        return 0, "no date of birth to compare" if listed else "the list gives no date of birth"
    year = int(subject_dob[:4])
    full = subject_dob if len(subject_dob) == 10 else None
    best: tuple[int, str] | None = None
    nearest = min(
        0 if d.start <= year <= d.end else min(abs(year - d.start), abs(year - d.end)) for d in listed
    )
    for d in listed:
        if full and d.date == full:
            return DOB_SAME_DATE, f"same date of birth ({full})"
        if d.start <= year <= d.end:
            if d.date and full:
                candidate = (DOB_SAME_YEAR_OTHER_DAY, f"same year of birth, another day (listed {d.text})")
            else:
                candidate = (DOB_SAME_YEAR, f"same year of birth (listed {d.text})")
            if best is None or candidate[0] > best[0]:
                best = candidate
    if best:
        return best
    if nearest <= DOB_NEAR_YEARS:
        return 0, f"born within {nearest} year(s) of a listed date ({', '.join(d.text for d in listed)})"
    return DOB_MISMATCH, f"born {nearest} years from every listed date ({', '.join(d.text for d in listed)})"


def nationality_effect(nationalities: Sequence[str], country: str, listed: frozenset[str]) -> tuple[int, str]:
    if not listed:
        return 0, "the list gives no nationality"
    if nationalities:
        shared = sorted(set(nationalities) & listed)
        if shared:
            return NAT_MATCH, f"shared nationality ({', '.join(shared)})"
        return (
            NAT_MISMATCH,
            f"different nationality ({', '.join(nationalities)} vs {', '.join(sorted(listed))})",
        )
    if country:
        if country in listed:
            return RESIDENCE_MATCH, f"country of residence {country} is a listed nationality"
        return 0, f"country of residence {country} is not a listed nationality (no effect)"
    return 0, "no nationality to compare"


# --- the index ----------------------------------------------------------------------------------


@dataclass(slots=True)
class IndexedEntry:
    id: int
    list_id: int
    source: str
    version: str
    external_id: str
    kind: str
    primary_name: str
    programmes: list[str]
    dobs: tuple[ListedDob, ...]
    nationalities: frozenset[str]
    fingerprint: str  # what the entry says that screening uses: a changed entry is a new question

    def summary(self) -> dict[str, Any]:
        return {
            "list": self.source,
            "list_version": self.version,
            "external_id": self.external_id,
            "primary_name": self.primary_name,
            "kind": self.kind,
            "programmes": self.programmes,
            "dates_of_birth": [d.text for d in self.dobs],
            "nationalities": sorted(self.nationalities),
        }


@dataclass(frozen=True)
class Subject:
    """Whom we screen: a client, a director, a beneficial owner."""

    name: str
    kind: str = "person"  # person | entity
    dob: str | None = None  # YYYY-MM-DD, or YYYY when only the year is known
    nationalities: tuple[str, ...] = ()  # ISO alpha-2, as declared (strong)
    country: str = ""  # country of residence: a weak nationality hint


@dataclass
class Hit:
    entry: IndexedEntry
    score: float
    explanation: dict[str, Any]


@dataclass
class Stats:
    pairs_scored: int = 0
    memo_hits: int = 0


def _group(kind: str) -> str | None:
    """Which entries a subject of this kind is compared with (vessels and aircraft: nobody)."""
    return {"person": "p", "entity": "e"}.get(kind)


@dataclass
class ListIndex:
    """The active entries, their names and the blocking keys, built once per set of list versions."""

    entries: list[IndexedEntry]
    forms: list[NameForm] = field(default_factory=list)
    form_entry: list[int] = field(default_factory=list)
    pairs: dict[str, list[int]] = field(default_factory=dict)
    singles: dict[str, list[int]] = field(default_factory=dict)
    twos: dict[str, list[int]] = field(default_factory=dict)
    token_counts: Counter[str] = field(default_factory=Counter)
    stats: Stats = field(default_factory=Stats)
    _memo: dict[tuple[str, str], list[tuple[int, float, str]]] = field(default_factory=dict)

    @classmethod
    def build(cls, entries: list[IndexedEntry], names: list[list[str]]) -> ListIndex:
        """`names[i]`: entry i's primary name first, then its aliases."""
        index = cls(entries=entries)
        for pos, (entry, entry_names) in enumerate(zip(entries, names, strict=True)):
            group = _group(entry.kind)
            if group is None:
                continue
            seen: set[str] = set()
            for raw in entry_names:
                form = NameForm.of(raw, person=entry.kind == "person")
                if not form.tokens or form.norm in seen:
                    continue
                seen.add(form.norm)
                fid = len(index.forms)
                index.token_counts.update(set(form.tokens))
                index.forms.append(form)
                index.form_entry.append(pos)
                index._add(group, form.keys, fid)
        return index

    def _add(self, group: str, keys: tuple[str, ...], fid: int) -> None:
        if len(keys) == 1:
            self.singles.setdefault(f"{group}{keys[0]}", []).append(fid)
            return
        if len(keys) == 2:
            for k in keys:
                self.twos.setdefault(f"{group}{k}", []).append(fid)
        for a, b in combinations(sorted(keys), 2):
            self.pairs.setdefault(f"{group}{a}|{b}", []).append(fid)

    def weight(self, token: str) -> float:
        """Inverse document frequency among the listed names: rare words are stronger evidence."""
        return 1.0 + math.log((len(self.forms) + 1) / (self.token_counts.get(token, 0) + 1))

    def candidates(self, group: str, keys: tuple[str, ...]) -> set[int]:
        found: set[int] = set()
        if len(keys) >= 2:
            for a, b in combinations(sorted(keys), 2):
                found.update(self.pairs.get(f"{group}{a}|{b}", ()))
        else:
            for k in keys:
                found.update(self.twos.get(f"{group}{k}", ()))
        for k in keys:
            found.update(self.singles.get(f"{group}{k}", ()))
        return found

    def _name_matches(self, group: str, form: NameForm, floor: float) -> list[tuple[int, float, str]]:
        """(name id, name score, method) of every candidate name scoring at least `floor`."""
        memo_key = (group, form.norm if not form.abjad else "\x00" + form.norm)
        cached = self._memo.get(memo_key)
        if cached is not None:
            self.stats.memo_hits += 1
            return cached
        out: list[tuple[int, float, str]] = []
        for fid in self.candidates(group, form.keys):
            self.stats.pairs_scored += 1
            score, method = name_score(form, self.forms[fid], self.weight)
            if score >= floor:
                out.append((fid, score, method))
        if len(self._memo) >= MEMO_MAX:
            self._memo.clear()
        self._memo[memo_key] = out
        return out

    def screen(self, subject: Subject, threshold: float) -> list[Hit]:
        """Every entry whose best name, after date of birth and nationality, reaches the threshold."""
        group = _group(subject.kind)
        form = NameForm.of(subject.name, person=subject.kind == "person")
        if group is None or not form.tokens:
            return []
        floor = threshold - MAX_BONUS
        best: dict[int, Hit] = {}
        for fid, name_sc, method in self._name_matches(group, form, floor):
            pos = self.form_entry[fid]
            entry = self.entries[pos]
            dob_fx, dob_note = dob_effect(subject.dob, entry.dobs)
            nat_fx, nat_note = nationality_effect(subject.nationalities, subject.country, entry.nationalities)
            score = round(max(0.0, min(100.0, name_sc + dob_fx + nat_fx)), 1)
            if score < threshold or (pos in best and best[pos].score >= score):
                continue
            alias = self.forms[fid]
            best[pos] = Hit(
                entry=entry,
                score=score,
                explanation={
                    "subject": {
                        "name": subject.name,
                        "normalised": form.norm,
                        "date_of_birth": subject.dob,
                        "nationalities": list(subject.nationalities),
                        "country": subject.country,
                    },
                    "entry": entry.summary(),
                    "alias": alias.raw,
                    "alias_normalised": alias.norm,
                    "alias_is_primary": alias.raw == entry.primary_name,
                    "method": method,
                    "name_score": name_sc,
                    "dob": {"effect": dob_fx, "note": dob_note},
                    "nationality": {"effect": nat_fx, "note": nat_note},
                    "score": score,
                    "threshold": threshold,
                },
            )
        return sorted(best.values(), key=lambda h: -h.score)
