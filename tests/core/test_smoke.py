from tests.conftest import post_form
from tests.personas import sign_in


async def test_it_serves_the_login_pages(client):
    for url in ("/staff/login", "/portal/login", "/portal/register", "/ib/login"):
        r = await client.get(url)
        assert r.status_code == 200, url
        assert 'name="_csrf_token"' in r.text


async def test_a_client_signs_in_with_the_form(client, personas):
    r = await post_form(
        client, "/portal/login", {"email": "client.a@client.test", "password": "persona-pass-2026"}
    )
    assert r.status_code in (302, 303)
    assert r.headers["location"].endswith("/portal")
    r = await client.get("/portal")
    assert r.status_code == 200 and "Hello, Client" in r.text


async def test_it_sends_staff_to_their_console(client, personas):
    await sign_in(client, personas["admin"])
    r = await client.get("/staff")
    assert r.status_code == 200
    assert "Lifecycle" in r.text
