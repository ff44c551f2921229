"""The import in the browser: upload, the mapping page and its live preview, start (enqueued after
commit), the progress bar live and polled, and the rejected rows as a download."""

from __future__ import annotations

import asyncio
import re

from app.core import db
from app.core.live import Event, hub, render_for
from app.imports import jobs as import_jobs
from app.imports import runner, services
from tests.conftest import csrf_token, post_form
from tests.imports.conftest import MAPPING, csv_bytes, person
from tests.personas import sign_in

PAGE = "/staff/clients/import"


async def upload(client, data: bytes, filename: str = "leads.csv", **fields: str):
    token = await csrf_token(client, PAGE)
    return await client.post(
        PAGE,
        data={"_csrf_token": token, "encoding": "utf-8", "delimiter": "", **fields},
        files={"file": (filename, data, "text/csv")},
    )


def run_id_of(r) -> int:
    m = re.fullmatch(r"/staff/clients/import/(\d+)", r.headers.get("location", ""))
    assert m, (r.status_code, r.text[:300])
    return int(m.group(1))


async def test_an_agent_uploads_maps_previews_and_starts_an_import(client, personas, queue):
    await sign_in(client, personas["sales"])
    page = await client.get(PAGE)
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
    assert "Windows-1252" in page.text and "never guess" in page.text
    lines = [person(1).replace(",", ";"), person(2, email="=cmd|' /C calc'!A0").replace(",", ";")]
    r = await upload(client, csv_bytes(*lines).replace(b",", b";"), filename="../../etc/My Leads.csv")
    run_id = run_id_of(r)
    assert (await services.load_run(run_id))["filename"] == "My Leads.csv"

    page = await client.get(f"{PAGE}/{run_id}")
    assert page.status_code == 200 and "<html" in page.text
    assert "delimiter: <strong>semicolon</strong>" in page.text
    assert (
        '<option value="email" selected>' in page.text and '<option value="last_name" selected>' in page.text
    )
    assert 'id="import-bad-count"' in page.text and "1 of the first 2 rows has a problem" in page.text

    desk = next(
        v for v, label in await services.assign_choices(_p(personas["sales"])) if label.endswith("pool")
    )
    form = {**MAPPING, "mode": "create", "assign": desk}
    fragment = await post_form(client, f"{PAGE}/{run_id}/preview", form, page=f"{PAGE}/{run_id}", htmx=True)
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "1 of the first 2 rows has a problem" in fragment.text and 'class="cell-invalid"' in fragment.text
    whole = await post_form(client, f"{PAGE}/{run_id}/preview", form, page=f"{PAGE}/{run_id}")
    assert whole.status_code == 200 and "<html" in whole.text and 'id="import-preview"' in whole.text

    missing = {**form, "col_0": ""}
    refused = await post_form(client, f"{PAGE}/{run_id}/start", missing, page=f"{PAGE}/{run_id}", htmx=True)
    assert (
        refused.status_code == 422
        and "<html" not in refused.text
        and "Map a column to E-mail" in refused.text
    )
    refused = await post_form(client, f"{PAGE}/{run_id}/start", missing, page=f"{PAGE}/{run_id}")
    assert refused.status_code == 422 and "<html" in refused.text and "Map a column to E-mail" in refused.text
    assert (await services.load_run(run_id))["status"] == "uploaded"

    r = await post_form(client, f"{PAGE}/{run_id}/start", form, page=f"{PAGE}/{run_id}")
    assert r.status_code == 303 and run_id_of(r) == run_id
    job = await queue.job(f"client-import:{run_id}")
    assert job is not None and job.function == "run_client_import" and job.kwargs == {"run_id": run_id}
    assert job.timeout == 3600 and job.heartbeat == 300
    assert (
        await db.fetch("SELECT id FROM clients WHERE email = 'person1@import.test'") == []
    )  # not in the request
    page = await client.get(f"{PAGE}/{run_id}")
    assert "Waiting for a worker" in page.text and 'hx-trigger="every 5s"' in page.text

    listening = hub.subscribe({f"staff:user:{personas['sales'].id}"})
    try:
        assert await import_jobs.run_client_import({}, run_id=run_id) == "finished"
        events = [await asyncio.wait_for(listening.get(), timeout=5) for _ in range(2)]  # a batch, the end
    finally:
        hub.unsubscribe(listening)
    assert {(e.type, e.ids["run_id"]) for e in events} == {("import.progress", run_id)}
    html = "".join(await render_for(_p(personas["sales"]), events[-1]))
    assert f'id="import-progress-{run_id}"' in html and 'hx-swap-oob="true"' in html
    assert "Finished" in html and "every 5s" not in html and "rejected.csv" in html

    polled = await client.get(f"{PAGE}/{run_id}/progress", headers={"HX-Request": "true"})
    assert (
        polled.status_code == 200 and "<html" not in polled.text and 'id="import-created">1<' in polled.text
    )
    whole = await client.get(f"{PAGE}/{run_id}/progress")
    assert "<html" in whole.text and 'id="import-rejections"' in whole.text

    report = await client.get(f"{PAGE}/{run_id}/rejected.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    assert report.headers["content-disposition"] == 'attachment; filename="My_Leads-rejected-rows.csv"'
    assert report.content.startswith(b"\xef\xbb\xbf")
    lines = report.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "line,email,first_name,last_name,phone,country,language,reason"
    assert lines[1].startswith("3,'=cmd|' /C calc'!A0,Ann2,Lee,'+4915123456002,DE,de,")  # formulas defused
    assert "valid e-mail" in lines[1]
    # The agent sees the new client: it went to their desk's pool.
    listing = await client.get("/staff/clients?q=person1%40import.test")
    assert "person1@import.test" in listing.text


def _p(persona):
    from tests.imports.conftest import as_principal

    return as_principal(persona)


async def test_a_file_that_cannot_be_read_is_refused_on_the_page_with_the_reason(client, personas):
    await sign_in(client, personas["admin"])
    r = await upload(client, csv_bytes(person(1, last_name="Müller")).decode().encode("cp1252"))
    assert r.status_code == 422 and "<html" in r.text
    assert "not valid UTF-8" in r.text and "line 2" in r.text
    r = await upload(client, b"", filename="empty.csv")
    assert r.status_code == 422 and "The file is empty." in r.text
    token = await csrf_token(client, PAGE)
    r = await client.post(PAGE, data={"_csrf_token": token, "encoding": "utf-8"})
    assert r.status_code == 422 and "Choose a CSV file" in r.text
    assert await db.fetch("SELECT id FROM client_imports") == []


async def test_an_upload_without_a_csrf_token_is_refused(client, personas):
    await sign_in(client, personas["admin"])
    await client.get(PAGE)
    r = await client.post(PAGE, files={"file": ("x.csv", csv_bytes(person(1)), "text/csv")})
    assert r.status_code == 403
    assert await db.fetch("SELECT id FROM client_imports") == []


async def test_someone_elses_import_is_a_404_and_the_renderer_stays_silent_for_them(client, personas):
    sales = _p(personas["sales"])
    run_id = await services.upload(sales, "x.csv", csv_bytes(person(1)), sales.actor())
    from tests.personas import make_staff

    other = await make_staff("sales2", ["sales"])
    await sign_in(client, other)
    for url in (f"{PAGE}/{run_id}", f"{PAGE}/{run_id}/progress", f"{PAGE}/{run_id}/rejected.csv"):
        assert (await client.get(url)).status_code == 404, url
    r = await post_form(client, f"{PAGE}/{run_id}/start", {**MAPPING, "mode": "create"}, page=PAGE)
    assert r.status_code == 404 and (await services.load_run(run_id))["status"] == "uploaded"
    own = Event(f"staff:user:{sales.id}", "import.progress", {"run_id": run_id})
    assert len(await render_for(sales, own)) == 1
    assert await render_for(_p(other), own) == []  # not their topic
    forged = Event(f"staff:user:{other.id}", "import.progress", {"run_id": run_id})
    assert await render_for(_p(other), forged) == []  # their topic, someone else's run
    compliance = _p(personas["compliance"])
    assert (
        await render_for(
            compliance, Event(f"staff:user:{compliance.id}", "import.progress", {"run_id": run_id})
        )
        == []
    )


async def test_the_job_ends_the_run_on_its_last_failed_attempt_and_notes_earlier_ones(personas, monkeypatch):
    admin = _p(personas["admin"])
    run_id = await services.upload(admin, "x.csv", csv_bytes(person(1)), admin.actor())
    await services.start(admin, run_id, {**MAPPING, "mode": "create", "assign": ""}, admin.actor())

    async def broken(*args, **kwargs):
        raise ConnectionError("database went away")

    monkeypatch.setattr(runner, "_batch", broken)

    class Job:
        attempts, retries = 1, 5

        async def update(self) -> None:
            pass

    job = Job()
    try:
        await import_jobs.run_client_import({"job": job}, run_id=run_id)
    except ConnectionError:
        pass
    run = await services.load_run(run_id)
    assert run["status"] == "running" and "will be retried" in run["error"]
    job.attempts = 5
    try:
        await import_jobs.run_client_import({"job": job}, run_id=run_id)
    except ConnectionError:
        pass
    run = await services.load_run(run_id)
    assert run["status"] == "failed" and "database went away" in run["error"]


async def test_the_sweep_requeues_an_import_whose_job_was_lost(personas, queue):
    admin = _p(personas["admin"])
    run_id = await services.upload(admin, "x.csv", csv_bytes(person(1)), admin.actor())
    await services.start(admin, run_id, {**MAPPING, "mode": "create", "assign": ""}, admin.actor())
    await db.fetch("DELETE FROM saq_jobs WHERE key = {}", f"client-import:{run_id}")  # the enqueue was lost
    assert await import_jobs.sweep_client_imports({}) == 1
    job = await queue.job(f"client-import:{run_id}")
    assert job is not None and job.kwargs == {"run_id": run_id}
    await import_jobs.sweep_client_imports({})  # the job is still queued: no second one
    rows = await db.fetch("SELECT count(*) AS n FROM saq_jobs WHERE key = {}", f"client-import:{run_id}")
    assert rows[0]["n"] == 1


async def test_a_file_of_several_megabytes_is_accepted_beyond_the_usual_form_limit(
    client, personas, settings
):
    await sign_in(client, personas["admin"])
    data = csv_bytes(*(person(i) for i in range(40_000)))
    assert len(data) > 2 * settings.security.max_form_bytes
    r = await upload(client, data)
    run = await services.load_run(run_id_of(r))
    assert run["total_rows"] == 40_000 and run["size"] == len(data)


async def test_only_the_uploader_starts_an_import_an_admin_may_only_look(client, personas):
    sales = _p(personas["sales"])
    run_id = await services.upload(sales, "x.csv", csv_bytes(person(1)), sales.actor())
    await sign_in(client, personas["admin"])
    assert (await client.get(f"{PAGE}/{run_id}")).status_code == 200
    r = await post_form(
        client, f"{PAGE}/{run_id}/start", {**MAPPING, "mode": "create", "assign": ""}, page=PAGE
    )
    assert r.status_code == 403 and "Only the colleague who uploaded" in r.text
    assert (await services.load_run(run_id))["status"] == "uploaded"
