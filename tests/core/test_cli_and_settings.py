"""The `fxcrm` command (migrate, demo, createstaff), demo data, and strict settings."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import phonenumbers
import psycopg
import pytest

from app import demo_crowd
from app.clients.tables import STAGES, Client
from app.core import audit, db
from app.core.migrate import pending_migrations
from app.demo import CLIENTS, STAFF, load_demo
from app.kyc.storage import derive_key, new_key, parse_key
from app.partners.tables import Partner
from app.settings import ROOT, SettingsError, load_settings
from app.staff.tables import StaffUser
from tests.conftest import SECRET, TEST_VAR, with_database


async def counts() -> dict[str, int]:
    rows = await db.fetch(
        "SELECT (SELECT count(*) FROM staff_users) AS staff, (SELECT count(*) FROM clients) AS clients, "
        "(SELECT count(*) FROM partners) AS partners, (SELECT count(*) FROM audit_events) AS audit"
    )
    return rows[0]


async def test_the_demo_broker_has_every_role_every_stage_and_an_ib_with_a_sub_ib(database):
    await load_demo()
    roles = {r for row in await StaffUser.select(StaffUser.roles) for r in row["roles"]}
    assert roles == {"admin", "compliance", "finance", "sales", "dealing"}
    stages = {row["stage"] for row in await Client.select(Client.stage)}
    assert stages == set(STAGES)
    partners = await Partner.select(Partner.code, Partner.parent.code.as_alias("parent_code"))
    assert {(p["code"], p["parent_code"]) for p in partners} == {("IBMASTER", None), ("IBSUB01", "IBMASTER")}
    assert (await audit.verify()).ok


async def test_loading_the_demo_twice_changes_nothing(database):
    first = await load_demo()
    assert {k: first[k] for k in ("staff", "clients", "partners", "desks", "sanctions_lists")} == {
        "staff": len(STAFF),
        "clients": len(CLIENTS) + demo_crowd.SIZE,
        "partners": 2,
        "desks": len(demo_crowd.DESKS),
        "sanctions_lists": 3,
    }
    assert first["notes"] > 0 and first["tasks"] > 0 and first["referred"] > 0
    before = await every_count()
    second = await load_demo()
    assert set(second.values()) == {0}
    assert await every_count() == before


async def every_count() -> dict[str, int]:
    tables = [
        "staff_users", "clients", "partners", "audit_events", "client_stage_changes", "client_timeline",
        "routing_desks", "routing_rules", "routing_desk_members", "routing_assignments", "client_notes",
        "note_mentions", "client_tasks", "partner_attributions",
    ]  # fmt: skip
    rows = await db.fetch("SELECT " + ", ".join(f"(SELECT count(*) FROM {t}) AS {t}" for t in tables))
    return rows[0]


async def test_the_demo_crowd_is_spread_over_stages_desks_and_languages_and_routed(database):
    await load_demo()
    per_stage = await db.fetch("SELECT stage, count(*) AS n FROM clients GROUP BY stage")
    assert {r["stage"] for r in per_stage if r["n"] >= 10} == set(STAGES)
    languages = await db.fetch("SELECT DISTINCT language FROM clients")
    assert {"de", "fr", "ar", "en"} <= {r["language"] for r in languages}
    desks = await db.fetch(
        "SELECT d.name, count(DISTINCT a.client) AS leads, count(DISTINCT a.owner) AS agents, "
        "count(DISTINCT c.language) AS languages FROM routing_desks d "
        "JOIN routing_assignments a ON a.desk = d.id JOIN clients c ON c.id = a.client GROUP BY d.name"
    )
    assert {d["name"] for d in desks} == set(demo_crowd.DESKS)
    assert all(d["leads"] >= 20 and d["agents"] >= 1 for d in desks)
    mena = await db.fetch(
        "SELECT DISTINCT c.language FROM routing_assignments a JOIN routing_desks d ON d.id = a.desk "
        "JOIN clients c ON c.id = a.client WHERE d.name = 'MENA desk' AND c.email LIKE {}",
        f"%@{demo_crowd.DOMAIN}",
    )
    assert [r["language"] for r in mena] == ["ar"]
    # every generated client's history walks the lifecycle from lead to where they are now
    bad = await db.fetch(
        "SELECT c.id FROM clients c WHERE c.email LIKE {} AND ("
        " (SELECT to_stage FROM client_stage_changes s WHERE s.client = c.id ORDER BY changed_at DESC, id DESC"
        "  LIMIT 1) <> c.stage OR (SELECT count(*) FROM client_stage_changes s WHERE s.client = c.id"
        "  AND from_stage IS NULL AND to_stage = 'lead') <> 1)",
        f"%@{demo_crowd.DOMAIN}",
    )
    assert bad == []
    phones = await db.fetch("SELECT phone FROM clients WHERE email LIKE {}", f"%@{demo_crowd.DOMAIN}")
    valid = [r for r in phones if phonenumbers.is_valid_number(phonenumbers.parse(r["phone"]))]
    assert len(valid) >= demo_crowd.SIZE * 0.9  # stored as E.164, like captured leads
    assigned = await db.fetch("SELECT count(*) AS n FROM audit_events WHERE action = 'lead.assigned'")
    assert assigned[0]["n"] == demo_crowd.SIZE + len(CLIENTS)  # the named clients are routed too
    deskless = await db.fetch(
        "SELECT c.email FROM clients c LEFT JOIN routing_assignments a ON a.client = c.id "
        "WHERE a.desk IS NULL AND c.email = ANY({})",
        [email for email, *_ in CLIENTS],
    )
    assert deskless == []  # the named clients show in some desk's scoped list
    assert (await audit.verify()).ok


@pytest.fixture
def empty_database(pg_server):
    name = f"fxcrm_cli_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(pg_server, name)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fxcrm(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET,
        "FXCRM_VAR_DIR": str(TEST_VAR),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def table_count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]


def test_fxcrm_migrate_and_demo_build_a_fresh_database_and_are_idempotent(empty_database):
    r = fxcrm(empty_database, "migrate")
    assert r.returncode == 0, r.stderr
    assert "migrations applied" in r.stdout
    assert fxcrm(empty_database, "migrate").returncode == 0  # again: nothing to do, no error
    r = fxcrm(empty_database, "demo")
    assert r.returncode == 0, r.stderr
    assert "admin@demo.fxcrm.test" in r.stdout and "/ib/login" in r.stdout
    clients = table_count(empty_database, "clients")
    r = fxcrm(empty_database, "demo")
    assert r.returncode == 0 and table_count(empty_database, "clients") == clients
    r = fxcrm(empty_database, "audit", "verify")
    assert r.returncode == 0 and "intact" in r.stdout


def test_fxcrm_createstaff_refuses_a_weak_password_and_creates_an_audited_admin(empty_database):
    r = fxcrm(empty_database, "createstaff", "--email", "boss@broker.test", "--password", "short")
    assert r.returncode == 2 and "password" in r.stderr and "10 characters" in r.stderr
    assert table_count(empty_database, "staff_users") == 0
    r = fxcrm(empty_database, "createstaff", "--email", "boss@broker.test", "--name", "The Boss")
    assert r.returncode == 2 and "--password" in r.stderr  # no stdin to ask on: a clear message
    r = fxcrm(
        empty_database,
        "createstaff",
        "--email",
        "boss@broker.test",
        "--name",
        "The Boss",
        FXCRM_STAFF_PASSWORD="a-strong-chief-pass-9",
    )
    assert r.returncode == 0, r.stderr
    with psycopg.connect(empty_database) as conn:
        roles, totp = conn.execute("SELECT roles, totp_enabled FROM staff_users").fetchone()  # type: ignore[misc]
        action = conn.execute("SELECT action FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()[0]  # type: ignore[index]
    assert roles == ["admin"] and totp is False and action == "staff.created"
    r = fxcrm(
        empty_database, "createstaff", "--email", "boss@broker.test", "--password", "a-strong-chief-pass-9"
    )
    assert r.returncode == 2 and "already exists" in r.stderr


def test_a_bad_setting_stops_the_command_with_a_message(empty_database):
    r = fxcrm(empty_database, "migrate", PORT="eighty")
    assert r.returncode == 2 and "PORT must be a whole number" in r.stderr and "Traceback" not in r.stderr


async def test_readyz_names_pending_migrations_on_an_unmigrated_database(empty_database, database):
    db.configure(empty_database)
    await db.close_pool()
    await db.start_pool(min_size=1, max_size=2)
    try:
        assert await pending_migrations() == ["<no migration table>"]
    finally:
        await db.close_pool()
        db.configure(database)
        await db.start_pool(min_size=1, max_size=2)


def test_production_requires_a_secret_key_and_smtp(tmp_path):
    with pytest.raises(SettingsError, match="SECRET_KEY is required"):
        load_settings({"APP_ENV": "production", "FXCRM_VAR_DIR": str(tmp_path), "SMTP_URL": "smtp://mail:25"})
    with pytest.raises(SettingsError, match="SMTP_URL is required"):
        load_settings({"APP_ENV": "production", "FXCRM_VAR_DIR": str(tmp_path), "SECRET_KEY": SECRET})
    base = {
        "APP_ENV": "production",
        "SECRET_KEY": SECRET,
        "SMTP_URL": "smtp://mail:25",
        "FXCRM_VAR_DIR": str(tmp_path),
    }
    with pytest.raises(SettingsError, match="DOCUMENT_KEY is required"):
        load_settings(base)
    key = new_key()
    prod = load_settings({**base, "DOCUMENT_KEY": key})
    assert prod.security.cookie_secure and not prod.template_reload
    assert prod.kyc.document_key == parse_key(key) and key not in repr(prod)


def test_development_derives_the_document_key_from_the_secret_and_keeps_documents_out_of_static(tmp_path):
    dev = load_settings({"FXCRM_VAR_DIR": str(tmp_path), "SECRET_KEY": SECRET})
    assert dev.kyc.document_key == derive_key(SECRET) and dev.kyc.documents_dir == tmp_path / "documents"
    assert dev.kyc.max_upload_bytes == 10 * 1_048_576 and dev.kyc.expiry_reminder_days == 30


def test_development_generates_a_secret_key_once_and_keeps_it(tmp_path):
    first = load_settings({"FXCRM_VAR_DIR": str(tmp_path)})
    second = load_settings({"FXCRM_VAR_DIR": str(tmp_path)})
    assert len(first.security.secret_key) >= 32
    assert first.security.secret_key == second.security.secret_key
    assert oct((tmp_path / "secret_key").stat().st_mode)[-3:] == "600"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"APP_ENV": "staging"}, "APP_ENV must be development or production"),
        ({"PORT": "70000"}, "PORT must be between"),
        ({"SMTP_URL": "mail.example.com"}, "SMTP_URL must look like"),
        ({"SECRET_KEY": "short"}, "at least 32 characters"),
        ({"COOKIE_SECURE": "maybe"}, "COOKIE_SECURE must be true or false"),
        ({"DOCUMENT_KEY": "c2hvcnQ"}, "DOCUMENT_KEY must be 32 bytes"),
        ({"DOCUMENTS_DIR": str(ROOT / "static" / "docs")}, "must not be inside static/"),
        ({"KYC_MAX_UPLOAD_MB": "500"}, "KYC_MAX_UPLOAD_MB must be between"),
        ({"KYC_EXPIRY_REMINDER_DAYS": "0"}, "KYC_EXPIRY_REMINDER_DAYS must be between"),
    ],
)
def test_it_rejects_malformed_settings(tmp_path, env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({"FXCRM_VAR_DIR": str(tmp_path), **env})
