"""The compliance console: open cases with their explanation, decisions, lists and uploads, the
progress bar; each htmx endpoint with and without HX-Request; other desks refused."""

from __future__ import annotations

import pytest

from app.core.live import Event, render_for
from app.screening import lists, services
from app.screening.tables import ComplianceBlock, ListUpload, ScreeningCase
from tests.conftest import csrf_token, post_form
from tests.personas import sign_in
from tests.screening.helpers import SAMPLES, SYSTEM, FakeQueue, as_principal, load_sample, new_client

HX = {"HX-Request": "true"}
PAGE = "/staff/kyc/screening"


@pytest.fixture
def queue(monkeypatch) -> FakeQueue:
    from app.core import jobs

    fake = FakeQueue()
    monkeypatch.setattr(jobs, "_queue", fake)
    return fake


@pytest.fixture
async def case(database, personas, queue) -> tuple[int, int]:
    """(client id, case id): Dmitri Zorvanov, a near match of OFAC entry 90101."""
    await load_sample("ofac-csv/sdn.csv")
    client_id = await new_client("Dmitri", "Zorvanov")
    [case_id] = (await services.screen_client(client_id, SYSTEM)).case_ids
    return client_id, case_id


@pytest.mark.parametrize("who", ["compliance", "admin"])
async def test_the_cases_page_shows_open_cases_with_their_explanation(client, personas, case, who):
    client_id, case_id = case
    await sign_in(client, personas[who])
    r = await client.get(PAGE)
    assert r.status_code == 200 and "<html" in r.text
    assert f'id="case-{case_id}"' in r.text and "ZORVANOV, Dmitri Petrovich" in r.text
    assert "Why it matched" in r.text and "dmitri zorvanov" in r.text and "token alignment" in r.text
    assert 'id="screening-progress"' in r.text and f'href="/staff/clients/{client_id}"' in r.text
    fragment = await client.get(PAGE, headers=HX)
    assert (
        fragment.status_code == 200
        and "<html" not in fragment.text
        and f'id="case-{case_id}"' in fragment.text
    )


async def test_the_cases_page_filters_by_client(client, personas, case):
    client_id, case_id = case
    await sign_in(client, personas["compliance"])
    assert f'id="case-{case_id}"' in (await client.get(f"{PAGE}?client={client_id}")).text
    other = await client.get(f"{PAGE}?client={client_id + 1000}", headers=HX)
    assert f'id="case-{case_id}"' not in other.text and "No open case for this client" in other.text


@pytest.mark.parametrize("who", ["sales", "finance", "dealing"])
async def test_other_desks_are_refused_every_screening_page(client, personas, case, who):
    _, case_id = case
    await sign_in(client, personas[who])
    for url in (PAGE, f"{PAGE}/lists", f"{PAGE}/progress"):
        for headers in ({}, HX):
            assert (await client.get(url, headers=headers)).status_code == 403, url
    token = await csrf_token(client, "/staff/clients")
    r = await client.post(
        f"{PAGE}/cases/{case_id}/decide",
        data={"decision": "false_positive", "reason": "x", "_csrf_token": token},
    )
    assert r.status_code == 403
    assert (await ScreeningCase.select(ScreeningCase.status).first())["status"] == "open"


async def test_deciding_a_false_positive_with_htmx_swaps_the_case(client, personas, case):
    _, case_id = case
    await sign_in(client, personas["compliance"])
    url = f"{PAGE}/cases/{case_id}/decide"
    r = await post_form(client, url, {"decision": "false_positive", "reason": ""}, page=PAGE, htmx=True)
    assert r.status_code == 422 and "<html" not in r.text
    assert "Say why this is not the listed person" in r.text and f'id="case-{case_id}"' in r.text
    r = await post_form(
        client, url, {"decision": "false_positive", "reason": "Born 1994."}, page=PAGE, htmx=True
    )
    assert r.status_code == 200 and "<html" not in r.text
    assert "False positive" in r.text and "Born 1994." in r.text and "Record decision" not in r.text


async def test_deciding_a_true_match_without_htmx_redirects_and_blocks(client, personas, case):
    client_id, case_id = case
    await sign_in(client, personas["admin"])
    url = f"{PAGE}/cases/{case_id}/decide"
    r = await post_form(client, url, {"decision": "nonsense"}, page=PAGE)
    assert r.status_code == 422 and "<html" in r.text and "Choose “true match” or “false positive”" in r.text
    r = await post_form(client, url, {"decision": "true_match", "reason": "Same passport."}, page=PAGE)
    assert r.status_code == 303 and r.headers["location"] == PAGE
    assert await ComplianceBlock.count().where(ComplianceBlock.client == client_id) == 1
    page = await client.get(PAGE)
    assert f'id="case-{case_id}"' not in page.text.split("Recently decided")[0]  # no longer open
    assert "Same passport." in page.text.split("Recently decided")[1]


async def test_the_progress_bar_alone_for_htmx_and_the_page_for_a_browser(client, personas, case):
    await sign_in(client, personas["compliance"])
    fragment = await client.get(f"{PAGE}/progress", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'id="screening-progress"' in fragment.text and "Re-screening of every client" in fragment.text
    page = await client.get(f"{PAGE}/progress")
    assert page.status_code == 200 and "<html" in page.text and "Open cases" in page.text


async def test_the_lists_page_shows_releases_and_the_upload_form(client, personas, case):
    await sign_in(client, personas["compliance"])
    page = await client.get(f"{PAGE}/lists")
    assert page.status_code == 200 and "<html" in page.text
    assert (
        "OFAC SDN (US)" in page.text
        and 'enctype="multipart/form-data"' in page.text
        and ">active<" in page.text
    )
    fragment = await client.get(f"{PAGE}/lists", headers=HX)
    assert fragment.status_code == 200 and "<html" not in fragment.text and "Loaded releases" in fragment.text


async def upload(client, data: bytes, filename: str, fmt: str = "", htmx: bool = False):
    token = await csrf_token(client, f"{PAGE}/lists")
    return await client.post(
        f"{PAGE}/lists",
        data={"format": fmt, "_csrf_token": token},
        files={"file": (filename, data, "application/octet-stream")},
        headers=HX if htmx else {},
    )


async def test_uploading_a_list_queues_its_load(client, personas, queue):
    await sign_in(client, personas["compliance"])
    r = await upload(client, (SAMPLES / "consolidated.xml").read_bytes(), "consolidated.xml")
    assert r.status_code == 303 and r.headers["location"] == f"{PAGE}/lists"
    [call] = queue.calls("screening_load_upload")
    assert await lists.process_upload(call["upload_id"]) == "loaded"
    r = await upload(client, (SAMPLES / "sdn.xml").read_bytes(), "sdn.xml", htmx=True)
    assert r.status_code == 200 and r.headers["hx-redirect"] == f"{PAGE}/lists"
    page = await client.get(f"{PAGE}/lists")
    assert (
        "UN Security Council" in page.text and "queued" in page.text and 'hx-trigger="every 3s"' in page.text
    )


@pytest.mark.parametrize(
    "data, filename, fmt, message",
    [
        (b"", "empty.xml", "", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "list.xml", "", "binary data"),
        (b"<!DOCTYPE x [<!ENTITY a 'b'>]><sdnList/>", "sdn.xml", "", "DOCTYPE"),
        ((SAMPLES / "sdn.xml").read_bytes(), "sdn.xml", "un-xml", "not UN Security Council"),
    ],
)
async def test_a_bad_upload_is_refused_at_once_with_the_form_kept(
    client, personas, queue, data, filename, fmt, message
):
    await sign_in(client, personas["admin"])
    for htmx in (False, True):
        r = await upload(client, data, filename, fmt, htmx=htmx)
        assert r.status_code == 422 and message in r.text
        assert ("<html" in r.text) is not htmx
    assert await ListUpload.count() == 0 and queue.sent == []


async def test_the_progress_bar_and_case_count_are_pushed_to_compliance_only(app, personas, case):
    officer, sales = as_principal(personas["compliance"]), as_principal(personas["sales"])
    progress = Event("staff:role:compliance", "screening.progress", {"run_id": 1})
    [html] = await render_for(officer, progress)
    assert 'id="screening-progress"' in html and 'hx-swap-oob="true"' in html
    assert await render_for(sales, progress) == []
    assert await render_for(officer, Event("staff:role:sales", "screening.progress", {})) == []
    [count] = await render_for(
        officer, Event("staff:role:compliance", "screening.cases_changed", {"count": 1})
    )
    assert 'id="screening-open-count"' in count and ">1<" in count
