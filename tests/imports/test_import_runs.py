"""Running an import: good rows become clients with their whole history, bad ones are reported
with reasons, each batch commits whole, and a retried or doubled run never creates anyone twice."""

from __future__ import annotations

import asyncio
import json

import pytest

from app.clients import services as client_services
from app.clients.filters import ClientFilters
from app.core import audit, db
from app.core.errors import FormErrors
from app.imports import runner, services
from app.staff.tables import StaffUser
from tests.imports.conftest import MAPPING, actions, csv_bytes, imported, person


async def count(sql: str, *args) -> int:
    return (await db.fetch(sql, *args))[0]["n"]


async def test_good_rows_are_imported_with_their_history_and_bad_ones_reported_with_reasons(staff):
    lines = []
    bad = {}
    for i in range(1, 101):
        if i % 10 == 3:  # 10 % of the rows, each with one problem
            kind = ("email", "phone", "country", "first_name", "language")[(i // 10) % 5]
            value = {
                "email": "nobody-at-all",
                "phone": "12",
                "country": "Atlantis",
                "first_name": "",
                "language": "xx",
            }[kind]
            lines.append(person(i, **{kind: value}))
            bad[i + 1] = kind
        else:
            lines.append(person(i))
    run = await imported(staff["admin"], csv_bytes(*lines))
    assert (run["status"], run["created"], run["rejected"], run["position"]) == ("finished", 90, 10, 100)

    created = await db.fetch(
        "SELECT id, email, stage, phone, country, language FROM clients WHERE email LIKE '%@import.test'"
    )
    assert len(created) == 90 and {c["stage"] for c in created} == {"lead"}
    assert {c["country"] for c in created} == {"DE"} and all(c["phone"].startswith("+49") for c in created)
    ids = [c["id"] for c in created]
    # Each created client has exactly one history row, two timeline events and one audit event.
    assert (
        await count(
            "SELECT count(*) AS n FROM client_stage_changes WHERE client = ANY({}) AND from_stage IS NULL AND to_stage = 'lead'",
            ids,
        )
        == 90
    )
    assert await count("SELECT count(*) AS n FROM client_timeline WHERE client = ANY({})", ids) == 180
    imported_events = await actions("client.imported")
    assert sorted(int(e["subject_id"]) for e in imported_events) == sorted(ids)
    after = json.loads(imported_events[0]["after"])
    assert (
        after["import"] == run["id"] and after["stage"] == "lead" and after["email"].endswith("@import.test")
    )
    assert [
        len(await actions(a))
        for a in ("clients.import_uploaded", "clients.import_started", "clients.import_finished")
    ] == [1, 1, 1]

    rejections = await services.rejections_for(staff["admin"], run["id"], limit=100)
    assert {r["line"]: r["reason"].split(":")[0] for r in rejections} == {
        line: {
            "email": "E-mail",
            "phone": "Phone",
            "country": "Country",
            "first_name": "First name",
            "language": "Language",
        }[kind]
        for line, kind in bad.items()
    }
    assert rejections[0]["cells"] == person(3, email="nobody-at-all").split(",")  # as the file had them
    # Nothing of a rejected row was written anywhere.
    rejected_emails = [f"person{line - 1}@import.test" for line in bad]
    assert await count("SELECT count(*) AS n FROM clients WHERE email = ANY({})", rejected_emails) == 0
    assert (await audit.verify()).ok
    assert await services.file_of(run["id"]) is None  # the file is not kept once the run is over


async def test_duplicate_emails_in_the_file_keep_the_first_row_and_reject_the_later_ones(staff):
    run = await imported(
        staff["admin"],
        csv_bytes(
            person(1, email="Twin@Import.test"),
            person(2),
            person(3, email="twin@import.test", first_name="Other"),
        ),
    )
    assert (run["created"], run["rejected"]) == (2, 1)
    twin = await db.fetchrow("SELECT first_name FROM clients WHERE email = 'twin@import.test'")
    assert twin["first_name"] == "Ann1"
    [rejection] = await services.rejections_for(staff["admin"], run["id"])
    assert rejection["line"] == 4 and "first row is line 2" in rejection["reason"]


async def test_blank_lines_are_skipped_and_not_reported(staff):
    run = await imported(staff["admin"], csv_bytes(person(1), "", ",,,,,", person(2)))
    assert (run["created"], run["rejected"], run["position"], run["total_rows"]) == (2, 0, 4, 4)


async def test_each_mode_treats_known_and_unknown_emails_as_it_says(staff, personas):
    a = personas["client_a"]
    run = await imported(staff["admin"], csv_bytes(person(1, email=a.email), person(2)), mode="create")
    assert (run["created"], run["rejected"]) == (1, 1)
    assert "already exists" in (await services.rejections_for(staff["admin"], run["id"]))[0]["reason"]

    update_mapping = {"col_0": "email", "col_3": "phone", "col_4": "country"}
    run = await imported(
        staff["admin"],
        csv_bytes(person(3, email=a.email.upper(), country="AT", phone="+43664123456"), person(4)),
        mode="update",
        mapping=update_mapping,
    )
    assert (run["created"], run["updated"], run["rejected"]) == (0, 1, 1)
    row = await db.fetchrow("SELECT first_name, phone, country FROM clients WHERE id = $1", a.id)
    assert (row["first_name"], row["phone"], row["country"]) == ("Client", "+43664123456", "AT")  # names kept
    [event] = await actions("client.import_updated")
    assert json.loads(event["before"]) == {"phone": "", "country": "DE"}
    assert json.loads(event["after"])["country"] == "AT"
    timeline = await db.fetch("SELECT summary FROM client_timeline WHERE client = {} AND kind = 'lead'", a.id)
    assert any("Updated by import" in t["summary"] and "phone, country" in t["summary"] for t in timeline)

    # Upsert: creates the new, updates the known, and an empty cell never erases a value.
    run = await imported(
        staff["admin"],
        csv_bytes(
            person(5),
            person(
                6,
                email=a.email,
                phone="",
                country="AT",
                first_name="Client",
                last_name="Client_A",
                language="en",
            ),
        ),
        mode="upsert",
    )
    assert (run["created"], run["updated"], run["unchanged"], run["rejected"]) == (1, 0, 1, 0)
    assert (await db.fetchrow("SELECT phone FROM clients WHERE id = $1", a.id))["phone"] == "+43664123456"
    assert len(await actions("client.import_updated")) == 1  # an unchanged client is not audited


async def test_a_desk_scoped_agent_imports_into_their_desk_and_cannot_touch_clients_outside_it(
    staff, personas
):
    sales = staff["sales"]
    desk = next(v for v, label in await services.assign_choices(sales) if label.endswith("pool"))
    lines = [
        person(1),
        person(2, email=personas["client_a"].email),
        person(3, email=personas["client_b"].email),
    ]
    run = await imported(sales, csv_bytes(*lines), mode="upsert", assign=desk)
    assert (run["created"], run["updated"], run["rejected"]) == (1, 1, 1)
    [rejection] = await services.rejections_for(sales, run["id"])
    assert rejection["line"] == 4 and "outside your desks" in rejection["reason"]
    page = await client_services.list_clients_for(sales, ClientFilters(q="person1@import.test"))
    assert [c["email"] for c in page["clients"]] == ["person1@import.test"]  # in their desk's pool
    assert page["clients"][0]["desk_id"] == int(desk.split(":")[1]) and page["clients"][0]["owner_id"] is None
    b = await db.fetchrow("SELECT first_name FROM clients WHERE id = $1", personas["client_b"].id)
    assert b["first_name"] == "Client"


async def test_an_owner_can_be_chosen_for_every_created_client(staff, personas):
    owner = next(v for v, label in await services.assign_choices(staff["admin"]) if label.endswith("— Sales"))
    run = await imported(staff["admin"], csv_bytes(person(1), person(2)), assign=owner)
    owners = await db.fetch(
        "SELECT a.owner FROM routing_assignments a JOIN clients c ON c.id = a.client WHERE c.email LIKE '%@import.test'"
    )
    assert run["created"] == 2 and [o["owner"] for o in owners] == [personas["sales"].id] * 2


async def test_tags_and_campaign_values_are_kept(staff):
    header = "email,first_name,last_name,tags,utm_source,campaign"
    mapping = {
        "col_0": "email",
        "col_1": "first_name",
        "col_2": "last_name",
        "col_3": "tags",
        "col_4": "utm_source",
        "col_5": "campaign",
    }
    run = await imported(
        staff["admin"],
        csv_bytes(
            'ann@x.test,Ann,Lee,"VIP; Gold",google,spring', "bob@x.test,Bob,Ray,not/allowed,,", header=header
        ),
        mapping=mapping,
    )
    assert (run["created"], run["rejected"]) == (1, 1)
    tags = await db.fetch("SELECT t.tag FROM client_tags t JOIN clients c ON c.id = t.client ORDER BY t.tag")
    assert [t["tag"] for t in tags] == ["gold", "vip"]
    source = await db.fetchrow("SELECT channel, utm_source, campaign FROM lead_sources")
    assert dict(source) == {"channel": "import", "utm_source": "google", "campaign": "spring"}


# --- nothing half-written, nothing twice ---------------------------------------------------------


async def started(who, data: bytes, mode: str = "create") -> int:
    run_id = await services.upload(who, "people.csv", data, who.actor())
    await services.start(who, run_id, {**MAPPING, "mode": mode, "assign": ""}, who.actor())
    return run_id


async def test_a_batch_that_fails_leaves_nothing_of_itself_and_the_retry_resumes_after_the_last_good_one(
    staff, monkeypatch
):
    monkeypatch.setattr(runner, "BATCH", 10)
    run_id = await started(staff["admin"], csv_bytes(*(person(i) for i in range(1, 36))))
    calls = 0
    record_many = audit.record_many

    async def failing(actor, entries):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("database went away")
        return await record_many(actor, entries)

    monkeypatch.setattr(audit, "record_many", failing)
    with pytest.raises(ConnectionError):
        await runner.run_import(run_id)
    run = await services.load_run(run_id)
    assert (run["status"], run["position"], run["created"]) == ("running", 10, 10)
    assert await count("SELECT count(*) AS n FROM clients WHERE email LIKE '%@import.test'") == 10
    assert await count("SELECT count(*) AS n FROM client_stage_changes WHERE reason LIKE 'imported%'") == 10
    assert await count("SELECT count(*) AS n FROM client_timeline WHERE summary LIKE 'Imported from%'") == 10

    assert await runner.run_import(run_id) == "finished"  # the job's retry
    run = await services.load_run(run_id)
    assert (run["position"], run["created"], run["rejected"]) == (35, 35, 0)
    assert await count("SELECT count(*) AS n FROM clients WHERE email LIKE '%@import.test'") == 35
    assert await count("SELECT count(*) AS n FROM client_stage_changes WHERE reason LIKE 'imported%'") == 35
    assert len(await actions("client.imported")) == 35
    assert await runner.run_import(run_id) == "finished"  # and once more: nothing happens
    assert len(await actions("client.imported")) == 35 and len(await actions("clients.import_finished")) == 1


async def test_two_runners_of_one_import_create_each_client_once(staff, monkeypatch):
    monkeypatch.setattr(runner, "BATCH", 7)
    run_id = await started(staff["admin"], csv_bytes(*(person(i) for i in range(1, 61))))
    outcomes = await asyncio.gather(runner.run_import(run_id), runner.run_import(run_id))
    assert "finished" in outcomes
    run = await services.load_run(run_id)
    assert (run["created"], run["position"], run["rejected"]) == (60, 60, 0)
    assert await count("SELECT count(*) AS n FROM clients WHERE email LIKE '%@import.test'") == 60
    assert len(await actions("client.imported")) == 60
    assert (await audit.verify()).ok


async def test_a_client_created_elsewhere_during_the_run_is_not_created_twice(staff, monkeypatch):
    run_id = await started(staff["admin"], csv_bytes(person(1), person(2)))
    existing = runner._existing

    async def racing(viewer, emails):
        found = await existing(viewer, emails)
        await db.fetch(  # a lead capture commits between the lookup and the insert
            "INSERT INTO clients (email, first_name, last_name, stage, stage_changed_at, created_at) "
            "VALUES ('person2@import.test', 'Web', 'Lead', 'lead', now(), now())"
        )
        return found

    monkeypatch.setattr(runner, "_existing", racing)
    await runner.run_import(run_id)
    run = await services.load_run(run_id)
    assert (run["created"], run["rejected"]) == (1, 1)
    [rejection] = await services.rejections_for(staff["admin"], run_id)
    assert "created while the import ran" in rejection["reason"]


async def test_an_import_started_by_someone_since_deactivated_stops(staff, personas):
    run_id = await started(staff["admin"], csv_bytes(person(1)))
    await StaffUser.update({StaffUser.is_active: False}).where(StaffUser.id == personas["admin"].id)
    assert await runner.run_import(run_id) == "failed"
    run = await services.load_run(run_id)
    assert run["status"] == "failed" and "no longer active" in run["error"]
    assert await services.file_of(run_id) is None
    assert len(await actions("clients.import_failed")) == 1


async def test_an_import_cannot_be_started_twice(staff):
    run_id = await started(staff["admin"], csv_bytes(person(1)))
    with pytest.raises(FormErrors, match="already started"):
        await services.start(
            staff["admin"], run_id, {**MAPPING, "mode": "create", "assign": ""}, staff["admin"].actor()
        )


async def test_the_audit_chain_verifies_after_a_big_import(staff):
    run = await imported(staff["admin"], csv_bytes(*(person(i) for i in range(1, 5001))))
    assert run["created"] == 5000
    result = await audit.verify()
    assert result.ok, result.reason
    assert result.checked == await count("SELECT count(*) AS n FROM audit_events") >= 5003
