"""Matching: normalisation, word order, aliases, scripts, date of birth and nationality, the
threshold, and blocking (only names sharing keys are ever scored). Pure functions: no database."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.screening import loaders
from app.screening.matching import (
    DOB_MISMATCH,
    DOB_SAME_DATE,
    DOB_SAME_YEAR,
    NAT_MATCH,
    NAT_MISMATCH,
    RESIDENCE_MATCH,
    IndexedEntry,
    ListedDob,
    ListIndex,
    NameForm,
    Subject,
    dob_effect,
    name_score,
    nationality_effect,
    normalise,
)

SAMPLES = Path(__file__).resolve().parents[2] / "app" / "screening" / "samples"


def index_of(*names: str) -> ListIndex:
    """The match index over sample releases, as the service builds it from the database."""
    entries: list[IndexedEntry] = []
    all_names: list[list[str]] = []
    for name in names:
        parsed = loaders.parse(loaders.read_paths([SAMPLES / name]))
        for e in parsed.entries:
            entries.append(
                IndexedEntry(
                    id=len(entries) + 1,
                    list_id=1,
                    source=parsed.source,
                    version=parsed.version,
                    external_id=e.external_id,
                    kind=e.kind,
                    primary_name=e.primary_name,
                    programmes=e.programmes,
                    dobs=tuple(d for d in (ListedDob.parse(x) for x in e.dates_of_birth) if d),
                    nationalities=frozenset(e.nationalities),
                    fingerprint=e.external_id,
                )
            )
            all_names.append([e.primary_name, *e.aliases])
    return ListIndex.build(entries, all_names)


@pytest.fixture(scope="module")
def index() -> ListIndex:
    return index_of("ofac-csv/sdn.csv", "consolidated.xml", "eu-sanctions.xml")


def hits(index: ListIndex, subject: Subject, threshold: float = 85) -> dict[str, float]:
    return {h.entry.external_id: h.score for h in index.screen(subject, threshold)}


# --- normalisation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("HALVORSEN-MÜLLER, Katrin", "halvorsen muller katrin"),  # diacritics, punctuation, case
        ("Mirela Ionescu-Tănase", "mirela ionescu tanase"),
        ("Ólafur  Þórðarson", "olafur thordarson"),  # transliterated letters, spaces collapsed
        ("Владимир Путин", "vladimir putin"),  # Cyrillic
        ("Ольга Иванова", "olga ivanova"),  # the soft sign's apostrophe dropped
        ("محمد علي", "mhmd ly"),  # Arabic: consonants (the script writes no short vowels)
        ("الحداوي", "hdwy"),  # the fused Arabic article dropped
        ("AL-QADIRI, Yousef", "qadiri yousef"),  # and the Latin one
        ("Mr. John O'Brien", "john obrien"),  # honorific and apostrophe
        ("Sheikh Tareq Mansour", "tareq mansour"),
    ],
)
def test_it_normalises_names_the_same_way_on_both_sides(raw, expected):
    assert normalise(raw) == expected


def test_honorifics_are_kept_in_company_names_and_a_name_of_honorifics_alone_survives():
    assert normalise("Lord Howe Shipping", person=False) == "lord howe shipping"
    assert normalise("Dr Mr", person=True) == "dr mr"


def test_word_order_does_not_matter():
    a, b = NameForm.of("ZORVANOV, Dmitri Petrovich"), NameForm.of("Dmitri Petrovich Zorvanov")
    assert name_score(a, b) == (100.0, "token_sort")


def test_a_shorter_name_contained_in_the_listed_one_scores_high_but_not_full():
    score, method = name_score(NameForm.of("Dmitry Zorvanov"), NameForm.of("ZORVANOV, Dmitri Petrovich"))
    assert method == "token_alignment" and 85 <= score < 95


def test_a_name_written_with_other_spaces_matches():
    assert name_score(NameForm.of("Abdulrahman Khalid"), NameForm.of("Abdul Rahman Khalid")) == (
        100.0,
        "joined",
    )


def test_a_shared_surname_with_another_first_name_stays_below_the_threshold():
    score, _ = name_score(NameForm.of("Amina Driadoyuov"), NameForm.of("AMA JOHN DRIADOYUOV"))
    assert score < 85


def test_an_arabic_script_name_is_compared_by_its_consonants():
    score, method = name_score(NameForm.of("يوسف هارون قادري"), NameForm.of("QADIRI, Yusuf Harun"))
    assert method == "consonant_skeleton" and score >= 90


def test_different_people_with_a_shared_surname_do_not_match():
    score, _ = name_score(NameForm.of("Peter Zorvanov"), NameForm.of("ZORVANOV, Dmitri Petrovich"))
    assert score < 80  # below the default threshold: only a matching birth date and nationality would lift it


# --- screening against an index ------------------------------------------------------------------


def test_it_matches_every_alias_and_says_which_one(index):
    [hit] = index.screen(Subject("Dmitry Zorvanoff"), 85)
    assert hit.entry.external_id == "90101"
    x = hit.explanation
    assert x["alias"] == "ZORVANOFF, Dmitry" and not x["alias_is_primary"]
    assert x["alias_normalised"] == "zorvanoff dmitry" and x["subject"]["normalised"] == "dmitry zorvanoff"
    assert x["name_score"] == 100.0 and x["score"] == 100.0 and x["threshold"] == 85


def test_a_cyrillic_client_name_matches_the_listed_latin_and_original_script_names(index):
    assert "KPi.902" in hits(index, Subject("Аркадий Белозеров"))
    assert "KPi.902" in hits(index, Subject("Arkadiy Belozerov"))


def test_an_arabic_script_client_name_matches_a_latin_only_listing_by_its_consonants(index):
    found = index.screen(Subject("يوسف هارون قادري"), 85)
    assert {h.entry.external_id for h in found} == {"90102", "EU.9003.33"}
    assert {h.explanation["method"] for h in found} == {"consonant_skeleton"}


def test_an_arabic_script_client_name_matches_the_listed_original_script_name(index):
    found = index.screen(Subject("طارق الحداوي"), 85)
    assert [h.entry.external_id for h in found] == ["QDi.901"]
    assert found[0].explanation["alias"] == "طارق منصور الحداوي"


def test_a_diacritic_or_its_absence_changes_nothing(index):
    assert hits(index, Subject("Katrin Halvorsen-Muller")) == {"90105": 100.0}
    assert hits(index, Subject("Mirela Ionescu Tanase")) == {"EU.9001.11": 100.0}


def test_an_entry_listed_by_two_sources_is_two_hits(index):
    assert set(hits(index, Subject("Yusuf Harun Qadiri"))) == {"90102", "EU.9003.33"}


def test_people_are_not_matched_with_companies_or_vessels_and_companies_only_with_companies(index):
    assert hits(index, Subject("Meridian Tanker Services LLC")) == {}
    assert hits(index, Subject("Northern Gale", kind="entity")) == {}  # a vessel
    assert set(hits(index, Subject("Meridian Tanker Services", kind="entity"))) == {"90103"}
    assert set(hits(index, Subject("Crescent Horizon Charity", kind="entity"))) == {"QDe.903"}


# --- date of birth and nationality ---------------------------------------------------------------

LISTED = (ListedDob.parse("1971-03-14"), ListedDob.parse("1972"), ListedDob.parse("1960..1962"))


@pytest.mark.parametrize(
    "dob, listed, effect, note",
    [
        ("1971-03-14", LISTED[:1], DOB_SAME_DATE, "same date"),
        ("1972-07-01", LISTED[:2], DOB_SAME_YEAR, "same year"),
        ("1961", LISTED[2:], DOB_SAME_YEAR, "same year"),  # inside a listed range
        ("1963-01-01", LISTED[2:], 0, "within 1 year"),  # near: listed dates are approximate
        ("1990-05-05", LISTED[:2], DOB_MISMATCH, "18 years"),
        (None, LISTED[:1], 0, "no date of birth to compare"),
        ("1990-05-05", (), 0, "the list gives no date of birth"),
    ],
)
def test_date_of_birth_raises_lowers_or_leaves_the_score(dob, listed, effect, note):
    got, text = dob_effect(dob, listed)
    assert got == effect and note in text


@pytest.mark.parametrize(
    "nationalities, country, effect",
    [
        (("RU",), "", NAT_MATCH),
        (("DE",), "", NAT_MISMATCH),
        ((), "RU", RESIDENCE_MATCH),  # residence: a weak hint, which only raises
        ((), "DE", 0),
        ((), "", 0),
    ],
)
def test_nationality_and_residence_move_the_score(nationalities, country, effect):
    assert nationality_effect(nationalities, country, frozenset({"RU"}))[0] == effect


def test_a_matching_birth_date_and_nationality_lift_a_near_name_over_the_threshold(index):
    near = Subject("Dmitry Zorvanov")
    plain = hits(index, near, 95)
    assert plain == {}  # the name alone is below 95
    lifted = index.screen(Subject("Dmitry Zorvanov", dob="1971-03-14", nationalities=("RU",)), 95)
    assert [h.entry.external_id for h in lifted] == ["90101"]
    x = lifted[0].explanation
    assert x["dob"]["effect"] == DOB_SAME_DATE and x["nationality"]["effect"] == NAT_MATCH
    assert x["score"] == min(100.0, round(x["name_score"] + DOB_SAME_DATE + NAT_MATCH, 1))


def test_a_clear_birth_date_mismatch_and_another_nationality_clear_a_name_match(index):
    assert "90101" in hits(index, Subject("Dmitri Zorvanov"))
    assert hits(index, Subject("Dmitri Zorvanov", dob="1995-01-01", nationalities=("DE",))) == {}


def test_the_threshold_decides(index):
    subject = Subject("Dmitry Zorvanov")
    score = hits(index, subject, 50)["90101"]
    assert "90101" in hits(index, subject, score)
    assert "90101" not in hits(index, subject, score + 0.1)


# --- blocking -------------------------------------------------------------------------------------


def test_only_names_sharing_blocking_keys_are_scored():
    index = index_of("ofac-csv/sdn.csv", "consolidated.xml", "eu-sanctions.xml")
    before = index.stats.pairs_scored
    index.screen(Subject("Anna Schmidt"), 85)  # shares no two keys with any listed name
    assert index.stats.pairs_scored == before
    index.screen(Subject("Dmitri Zorvanov"), 85)
    scored = index.stats.pairs_scored - before
    assert 1 <= scored <= 3  # the entry's own names, not the whole list
    index.screen(Subject("Dmitri Zorvanov"), 85)  # the same name again: remembered
    assert index.stats.pairs_scored - before == scored and index.stats.memo_hits >= 1


def test_transliteration_variants_share_blocking_keys():
    for a, b in (("Qaddafi", "Gadhafi"), ("Mohammed", "Muhammad"), ("Osama", "Usama"), ("Schmidt", "Smith")):
        assert NameForm.of(a).keys == NameForm.of(b).keys, (a, b)


def test_the_threshold_setting_is_parsed_strictly(tmp_path):
    from app.settings import SettingsError, load_settings

    env = {"SECRET_KEY": "k" * 40, "FXCRM_VAR_DIR": str(tmp_path)}
    assert load_settings(env).screening_threshold == 85
    assert load_settings({**env, "SCREENING_THRESHOLD": "92"}).screening_threshold == 92
    for bad in ("abc", "49", "101", "85.5"):
        with pytest.raises(SettingsError, match="SCREENING_THRESHOLD"):
            load_settings({**env, "SCREENING_THRESHOLD": bad})
