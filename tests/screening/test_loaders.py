"""The official list formats, read from the synthetic samples shipped in app/screening/samples,
and the files we refuse (with a message a person understands, before anything is stored)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from app.screening import loaders
from app.screening.loaders import ListFileError

SAMPLES = Path(__file__).resolve().parents[2] / "app" / "screening" / "samples"


def read(*names: str) -> loaders.Files:
    return loaders.read_paths([SAMPLES / n for n in names])


def by_id(parsed: loaders.ParsedList) -> dict[str, loaders.ParsedEntry]:
    return {e.external_id: e for e in parsed.entries}


def test_it_reads_the_ofac_csv_trio_with_aliases_and_remarks():
    files = read("ofac-csv/sdn.csv")
    assert set(files) == {"sdn.csv", "alt.csv", "add.csv"}  # picked up from beside sdn.csv
    parsed = loaders.parse(files)
    assert (parsed.source, parsed.format, parsed.version, parsed.published_at) == (
        "ofac",
        "ofac-csv",
        "",
        None,
    )
    entries = by_id(parsed)
    assert len(entries) == 5
    z = entries["90101"]
    assert z.kind == "person" and z.primary_name == "ZORVANOV, Dmitri Petrovich"
    assert z.aliases == [
        "ZORVANOV, Dmitriy Petrovich",
        "ZORVANOFF, Dmitry",
    ]  # alt.csv, then the remarks' weak a.k.a.
    assert z.dates_of_birth == ["1971-03-14", "1972"]
    assert z.nationalities == ["RU"]
    assert z.programmes == ["RUSSIA-EO14024", "UKRAINE-EO13662"]
    assert entries["90102"].dates_of_birth == ["1968"]  # "circa 1968"
    assert entries["90103"].kind == "entity"  # "-0- " type
    assert entries["90104"].kind == "vessel"
    assert entries["90105"].primary_name == "HALVORSEN-MÜLLER, Katrin"  # UTF-8 kept


def test_it_reads_the_ofac_xml_with_its_publication_date():
    parsed = loaders.parse(read("sdn.xml"))
    assert (parsed.source, parsed.format, parsed.version) == ("ofac", "ofac-xml", "2026-11-20")
    z = by_id(parsed)["90101"]
    assert z.primary_name == "ZORVANOV, Dmitri Petrovich"
    assert "ZORVANOFF, Dmitry" in z.aliases
    assert z.dates_of_birth == ["1971-03-14", "1972"] and z.nationalities == ["RU"]
    assert by_id(parsed)["90102"].nationalities == ["SY"]


def test_it_reads_the_classic_ofac_namespace_too():
    data = (
        (SAMPLES / "sdn.xml")
        .read_bytes()
        .replace(
            b"https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/XML",
            b"http://tempuri.org/sdnList.xsd",
        )
    )
    parsed = loaders.parse({"sdn.xml": data})
    assert parsed.format == "ofac-xml" and len(parsed.entries) == 4


def test_it_reads_the_un_consolidated_list():
    parsed = loaders.parse(read("consolidated.xml"))
    assert (parsed.source, parsed.format) == ("un", "un-xml")
    assert parsed.published_at is not None and parsed.published_at.year == 2026
    entries = by_id(parsed)
    t = entries["QDi.901"]
    assert t.primary_name == "TAREQ MANSOUR AL-HADDAWI"  # FIRST_NAME … THIRD_NAME
    assert t.aliases == ["طارق منصور الحداوي", "Tariq Mansur al-Hadawi", "Abu Mansour"]
    assert t.dates_of_birth == ["1966-03-05"] and t.nationalities == ["IQ"] and t.programmes == ["Al-Qaida"]
    b = entries["KPi.902"]
    assert b.dates_of_birth == ["1960..1962"] and b.nationalities == ["RU"]  # BETWEEN; "Russian Federation"
    assert entries["QDe.903"].kind == "entity" and entries["QDe.903"].aliases == ["Crescent Horizon Charity"]


def test_it_reads_the_eu_list_as_xml_and_as_csv_alike():
    xml, csv = loaders.parse(read("eu-sanctions.xml")), loaders.parse(read("eu-sanctions.csv"))
    assert (xml.format, csv.format) == ("eu-xml", "eu-csv")
    assert xml.published_at is not None and csv.published_at is not None
    assert xml.published_at.date() == csv.published_at.date().replace(day=19)  # 19/11/2026 is day first
    for parsed in (xml, csv):
        entries = by_id(parsed)
        m = entries["EU.9001.11"]
        assert (m.kind, m.primary_name) == ("person", "Mirela Ionescu-Tănase")
        assert m.aliases == ["Мирела Ионеску-Тэнасе"]
        assert m.dates_of_birth == ["1979-11-23"] and m.nationalities == ["MD"] and m.programmes == ["UKR"]
        assert entries["EU.9002.22"].kind == "entity" and entries["EU.9002.22"].nationalities == []  # "00"
        assert entries["EU.9003.33"].primary_name == "Yusuf Harun Qadiri"  # first/middle/last joined
        assert entries["EU.9003.33"].dates_of_birth == ["1968"]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("ofac-csv/sdn.csv", "ofac-csv"),
        ("sdn.xml", "ofac-xml"),
        ("consolidated.xml", "un-xml"),
        ("eu-sanctions.xml", "eu-xml"),
        ("eu-sanctions.csv", "eu-csv"),
    ],
)
def test_it_detects_each_format_from_the_content(name, expected):
    data = (SAMPLES / name).read_bytes()
    assert loaders.detect({"upload.bin": data}) == expected


def test_a_zip_of_the_ofac_trio_is_one_release_with_the_same_fingerprint():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n in ("sdn.csv", "alt.csv", "add.csv"):
            z.write(SAMPLES / "ofac-csv" / n, f"release/{n.upper()}")
    files = loaders.read_upload("sdn.zip", buf.getvalue())
    assert loaders.detect(files) == "ofac-csv"
    assert loaders.fingerprint(files) == loaders.fingerprint(read("ofac-csv/sdn.csv"))


# --- bad files -------------------------------------------------------------------------------------

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<sdnList><sdnEntry><uid>1</uid><lastName>&lol3;</lastName></sdnEntry></sdnList>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE export [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<export generationDate="2026-01-01"><sanctionEntity logicalId="1"><nameAlias wholeName="&xxe;"/></sanctionEntity></export>"""
LATE_DOCTYPE = b"<CONSOLIDATED_LIST>" + b" " * 70000 + b"<!DOCTYPE x []><INDIVIDUALS/></CONSOLIDATED_LIST>"


@pytest.mark.parametrize(
    "files, fmt, message",
    [
        ({"list.xml": b""}, None, "empty"),
        ({"list.xml": b"   \n"}, None, "empty"),
        ({"list.xml": BOMB}, None, "DOCTYPE"),
        ({"list.xml": EXTERNAL}, None, "DOCTYPE"),
        ({"list.xml": LATE_DOCTYPE}, None, "not well-formed"),
        ({"list.xml": b"<sdnList><sdnEntry><uid>1</uid><lastName>X"}, None, "not well-formed"),
        ({"list.xml": b"<rss><channel/></rss>"}, None, "not a list we read"),
        ({"list.xml": b"<Sanctions xmlns='x'/>"}, None, "advanced XML format"),
        (
            {"list.xml": b'<?xml version="1.0"?><export generationDate="2026-01-01"></export>'},
            None,
            "no entries",
        ),
        ({"photo.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 100}, None, "binary data"),
        ({"notes.csv": b"name,amount\nAlice,3\n"}, None, "not a sanctions list"),
        ({"sdn.csv": b'1,"A B","individual"\r\n'}, None, "expected 12 fields"),
        (
            {"sdn.csv": b"ent_num,SDN_Name,SDN_Type,Program,Title,a,b,c,d,e,f,Remarks\r\n"},
            None,
            "no header row",
        ),
        (
            {
                "sdn.xml": b"<sdnList><publshInformation><Publish_Date>01/02/2026</Publish_Date>"
                b"<Record_Count>3</Record_Count></publshInformation><sdnEntry><uid>1</uid>"
                b"<lastName>X</lastName></sdnEntry></sdnList>"
            },
            None,
            "incomplete",
        ),
        ({"a.xml": (SAMPLES / "sdn.xml").read_bytes()}, "un-xml", "You said"),
    ],
)
def test_a_bad_file_is_refused_with_a_clear_message(files, fmt, message):
    with pytest.raises(ListFileError) as exc:
        loaders.parse(files, fmt)
    assert message in str(exc.value)


def test_a_zip_bomb_or_an_encrypted_zip_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(loaders.MAX_ZIP_MEMBERS + 1):
            z.writestr(f"f{i}.csv", "x")
    with pytest.raises(ListFileError, match="one list release"):
        loaders.read_upload("many.zip", buf.getvalue())
    with pytest.raises(ListFileError, match="not a readable zip"):
        loaders.read_upload("broken.zip", b"PK\x03\x04garbage")
