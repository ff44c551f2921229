"""Settings › Staff users: admins only; creating colleagues, changing roles, deactivating."""

from __future__ import annotations

import html
import re

import pytest

from app.core import db
from app.core.auth import passwords, sessions
from tests.conftest import post_form
from tests.core.test_auth_login import LOGIN_FAILED, adopt, audit_rows, count, session_rows
from tests.personas import PASSWORD, session_for, sign_in

NEW = {
    "email": "New.Dealer@Staff.test",
    "name": "New Dealer",
    "roles": ["dealing", "sales"],
    "password": "desk-phone-lamp-2026",
}


def field_error(page: str, name: str) -> str | None:
    m = re.search(rf'<div class="error" id="e-{name}">([^<]*)</div>', page)
    return html.unescape(m.group(1)) if m else None


async def staff_row(staff_id: int) -> dict:
    return (await db.fetch("SELECT * FROM staff_users WHERE id = {}", staff_id))[0]


@pytest.mark.parametrize("who", ["compliance", "finance", "sales", "dealing"])
async def test_only_admins_reach_staff_users(client, personas, who):
    await sign_in(client, personas[who])
    for url in (
        "/staff/settings/staff",
        "/staff/settings/staff/new",
        f"/staff/settings/staff/{personas['sales'].id}",
    ):
        r = await client.get(url)
        assert r.status_code == 403, url
        assert "Your role does not allow this." in r.text
    before = await count("staff_users")
    r = await post_form(client, "/staff/settings/staff/new", NEW, page="/staff")
    assert r.status_code == 403 and await count("staff_users") == before
    r = await post_form(
        client, f"/staff/settings/staff/{personas[who].id}", {"name": "Me", "roles": ["admin"]}, page="/staff"
    )
    assert r.status_code == 403
    assert (await staff_row(personas[who].id))["roles"] == [who]
    r = await post_form(
        client, f"/staff/settings/staff/{personas['admin'].id}/active", {"active": "0"}, page="/staff"
    )
    assert r.status_code == 403 and (await staff_row(personas["admin"].id))["is_active"] is True
    assert not await audit_rows("staff.roles_changed")


async def test_an_admin_sees_every_staff_user(client, personas):
    await sign_in(client, personas["admin"])
    r = await client.get("/staff/settings/staff")
    assert r.status_code == 200
    for name in ("admin", "compliance", "finance", "sales", "dealing"):
        assert f"{name}@staff.test" in r.text
    r = await client.get("/staff/settings/staff", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<table" in r.text and "<html" not in r.text


async def test_anonymous_visitors_are_sent_to_the_staff_login(client, personas):
    r = await client.get("/staff/settings/staff")
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/login?next=")


async def test_an_admin_creates_a_staff_user(client, personas):
    await sign_in(client, personas["admin"])
    assert (await client.get("/staff/settings/staff/new")).status_code == 200
    r = await post_form(client, "/staff/settings/staff/new", NEW)
    assert r.status_code == 303 and r.headers["location"] == "/staff/settings/staff"
    [row] = await db.fetch("SELECT * FROM staff_users WHERE email = 'new.dealer@staff.test'")
    assert row["name"] == "New Dealer" and row["roles"] == ["dealing", "sales"]
    assert row["is_active"] is True and row["totp_enabled"] is False
    assert row["password_hash"].startswith("$argon2id$") and passwords.verify_password(
        row["password_hash"], NEW["password"]
    )
    [audit] = await audit_rows("staff.created")
    assert audit["actor_id"] == str(personas["admin"].id) and audit["subject_id"] == str(row["id"])
    assert audit["after"] == {"email": "new.dealer@staff.test", "roles": ["dealing", "sales"]}
    # The new colleague signs in and must enrol a second factor first.
    client.cookies.clear()
    r = await post_form(
        client, "/staff/login", {"email": "new.dealer@staff.test", "password": NEW["password"]}
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/2fa/setup"


async def test_creating_with_bad_input_shows_errors_beside_the_fields_and_creates_nothing(client, personas):
    await sign_in(client, personas["admin"])
    before = await count("staff_users")
    r = await post_form(
        client, "/staff/settings/staff/new", {"email": "not-an-email", "name": " ", "password": "short"}
    )
    assert r.status_code == 422
    assert field_error(r.text, "email") == "Enter a valid e-mail address."
    assert field_error(r.text, "name") == "Enter the person's name."
    assert field_error(r.text, "password") == "Use at least 10 characters."
    assert "Choose at least one role." in r.text
    assert 'value="not-an-email"' in r.text and 'value="short"' not in r.text

    r = await post_form(
        client,
        "/staff/settings/staff/new",
        {**NEW, "roles": ["sales", "superuser"], "password": "password123"},
    )
    assert r.status_code == 422
    assert "Unknown role: superuser" in r.text
    assert field_error(r.text, "password").startswith("This password is too easy to guess")
    assert re.search(r'value="sales" checked', r.text) and 'value="new.dealer@staff.test"' in r.text
    assert NEW["password"] not in r.text and "password123" not in r.text

    r = await post_form(client, "/staff/settings/staff/new", {**NEW, "email": " SALES@staff.test "})
    assert r.status_code == 422
    assert field_error(r.text, "email") == "A staff user with this e-mail already exists."
    assert await count("staff_users") == before
    assert not await audit_rows("staff.created")


async def test_an_admin_changes_roles_and_it_is_audited_with_before_and_after(client, personas):
    sales = personas["sales"]
    await sign_in(client, personas["admin"])
    r = await client.get(f"/staff/settings/staff/{sales.id}")
    assert r.status_code == 200 and re.search(r'value="sales" checked', r.text)
    r = await post_form(
        client, f"/staff/settings/staff/{sales.id}", {"name": "Sales", "roles": ["sales", "finance"]}
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/settings/staff"
    assert (await staff_row(sales.id))["roles"] == ["finance", "sales"]
    [audit] = await audit_rows("staff.roles_changed")
    assert audit["subject_type"] == "staff" and audit["subject_id"] == str(sales.id)
    assert audit["actor_kind"] == "staff" and audit["actor_id"] == str(personas["admin"].id)
    assert audit["before"] == {"roles": ["sales"]} and audit["after"] == {"roles": ["finance", "sales"]}
    # The new role takes effect on the colleague's next request.
    await sign_in(client, sales)
    assert (await client.get("/staff/funding")).status_code == 200


async def test_saving_without_a_role_change_writes_no_role_audit(client, personas):
    await sign_in(client, personas["admin"])
    r = await post_form(
        client, f"/staff/settings/staff/{personas['sales'].id}", {"name": "Sally Sales", "roles": ["sales"]}
    )
    assert r.status_code == 303
    assert not await audit_rows("staff.roles_changed")
    [audit] = await audit_rows("staff.updated")
    assert audit["before"] == {"name": "Sales"} and audit["after"] == {"name": "Sally Sales"}


async def test_editing_with_no_roles_is_refused_beside_the_field(client, personas):
    await sign_in(client, personas["admin"])
    r = await post_form(client, f"/staff/settings/staff/{personas['sales'].id}", {"name": "Sales Renamed"})
    assert r.status_code == 422 and "Choose at least one role." in r.text
    assert 'value="Sales Renamed"' in r.text
    row = await staff_row(personas["sales"].id)
    assert row["roles"] == ["sales"] and row["name"] == "Sales"


async def test_an_admin_cannot_remove_their_own_admin_role(client, personas):
    admin = personas["admin"]
    await sign_in(client, admin)
    r = await post_form(client, f"/staff/settings/staff/{admin.id}", {"name": "Admin", "roles": ["sales"]})
    assert r.status_code == 422 and "You cannot remove your own administrator role." in r.text
    assert (await staff_row(admin.id))["roles"] == ["admin"]
    assert not await audit_rows("staff.roles_changed")
    assert (await client.get("/staff/settings/staff")).status_code == 200


async def test_deactivating_a_user_ends_their_sessions_and_is_audited(client, personas):
    sales = personas["sales"]
    sales_key = await session_for(sales)
    await session_for(sales)
    await sign_in(client, personas["admin"])
    r = await post_form(
        client, f"/staff/settings/staff/{sales.id}/active", {"active": "0"}, page="/staff/settings/staff"
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/settings/staff"
    assert (await staff_row(sales.id))["is_active"] is False
    assert not await session_rows("staff", sales.id)
    [audit] = await audit_rows("staff.deactivated")
    assert audit["before"] == {"is_active": True} and audit["after"] == {
        "is_active": False,
        "sessions_ended": 2,
    }
    assert "deactivated" in (await client.get("/staff/settings/staff")).text

    adopt(client, sales_key)
    r = await client.get("/staff")
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/login")
    client.cookies.clear()
    r = await post_form(client, "/staff/login", {"email": sales.email, "password": PASSWORD})
    assert r.status_code == 422 and LOGIN_FAILED in r.text


async def test_a_deactivated_session_row_left_behind_still_does_not_authenticate(client, personas):
    key = await session_for(personas["finance"])
    await db.fetch("UPDATE staff_users SET is_active = false WHERE id = {}", personas["finance"].id)
    adopt(client, key)
    r = await client.get("/staff")
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/login")


async def test_deactivation_works_from_the_htmx_table_and_reactivation_restores_sign_in(client, personas):
    dealing = personas["dealing"]
    await sign_in(client, personas["admin"])
    r = await post_form(
        client,
        f"/staff/settings/staff/{dealing.id}/active",
        {"active": "0"},
        page="/staff/settings/staff",
        htmx=True,
    )
    assert r.status_code == 200 and r.headers["hx-redirect"] == "/staff/settings/staff"
    assert (await staff_row(dealing.id))["is_active"] is False
    r = await post_form(
        client, f"/staff/settings/staff/{dealing.id}/active", {"active": "1"}, page="/staff/settings/staff"
    )
    assert r.status_code == 303 and (await staff_row(dealing.id))["is_active"] is True
    [audit] = await audit_rows("staff.activated")
    assert audit["after"] == {"is_active": True, "sessions_ended": 0}
    client.cookies.clear()
    r = await post_form(client, "/staff/login", {"email": dealing.email, "password": PASSWORD})
    assert r.status_code == 303


async def test_an_admin_cannot_deactivate_themselves(client, personas):
    admin = personas["admin"]
    await sign_in(client, admin)
    for htmx in (False, True):
        r = await post_form(
            client,
            f"/staff/settings/staff/{admin.id}/active",
            {"active": "0"},
            page="/staff/settings/staff",
            htmx=htmx,
        )
        assert r.status_code == 422 and "You cannot deactivate yourself." in r.text
        assert ("<html" in r.text) is not htmx
    assert (await staff_row(admin.id))["is_active"] is True
    assert len(await session_rows("staff", admin.id)) == 1
    assert not await audit_rows("staff.deactivated")


async def test_resetting_a_colleagues_2fa_makes_them_enrol_again(client, personas):
    compliance = personas["compliance"]
    key = await session_for(compliance)
    await sign_in(client, personas["admin"])
    r = await post_form(
        client,
        f"/staff/settings/staff/{compliance.id}/reset-2fa",
        {},
        page=f"/staff/settings/staff/{compliance.id}",
    )
    assert r.status_code == 303
    row = await staff_row(compliance.id)
    assert row["totp_enabled"] is False and row["totp_secret"] is None
    [audit] = await audit_rows("auth.2fa_reset")
    assert audit["after"] == {"sessions_ended": 1}
    adopt(client, key)
    assert (await client.get("/staff")).status_code == 303
    client.cookies.clear()
    r = await post_form(client, "/staff/login", {"email": compliance.email, "password": PASSWORD})
    assert r.headers["location"] == "/staff/2fa/setup"
    adopt(client, r.cookies[sessions.COOKIE])
    r = await client.get("/staff")
    assert r.status_code == 303 and r.headers["location"] == "/staff/2fa/setup"


async def test_a_missing_staff_user_is_not_found(client, personas):
    await sign_in(client, personas["admin"])
    assert (await client.get("/staff/settings/staff/99999")).status_code == 404
    r = await post_form(
        client, "/staff/settings/staff/99999", {"name": "X", "roles": ["sales"]}, page="/staff/settings/staff"
    )
    assert r.status_code == 404
