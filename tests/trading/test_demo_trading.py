"""The demo's trading data: the simulator as a server, three types, funded accounts when the
simulator answers, and a note (not a failure) when it does not."""

from __future__ import annotations

from datetime import UTC, datetime

from app.clients.tables import Client
from app.core.audit import Actor
from app.trading import connections
from app.trading import demo as trading_demo
from app.trading.tables import AccountType, BalanceOperation, TradingAccount, TradingServer
from tests.servers import free_port
from tests.trading.conftest import Sim

ACTOR = Actor.system("pytest demo")


async def demo_clients() -> None:
    now = datetime.now(UTC)
    for email, *_ in trading_demo.ACCOUNTS:
        await Client(
            email=email,
            first_name="Demo",
            last_name=email.split("@")[0],
            stage="active",
            stage_changed_at=now,
            created_at=now,
        ).save()


async def test_with_the_simulator_up_the_demo_clients_get_funded_accounts_once(
    settings, mt5_sim: Sim, monkeypatch
):
    monkeypatch.setattr(trading_demo, "ADDRESS", mt5_sim.address)
    await demo_clients()
    # The demo's simulator (fxcrm run) speaks TLS with a self-signed certificate; this test's speaks
    # plain HTTP, so the first load opens nothing, and once the row says so, the second does.
    assert await trading_demo.load(ACTOR) == {"trading_accounts": 0}
    server = await TradingServer.select().first()
    assert server["use_tls"] and not server["verify_tls"] and server["address"] == mt5_sim.address
    await TradingServer.update(
        {TradingServer.use_tls: False, TradingServer.updated_at: datetime.now(UTC)}
    ).where(TradingServer.id == server["id"])
    assert await trading_demo.load(ACTOR) == {"trading_accounts": len(trading_demo.ACCOUNTS)}
    assert [t["name"] for t in await AccountType.select(AccountType.name).order_by(AccountType.id)] == [
        "Demo USD",
        "Standard USD",
        "Pro EUR",
    ]
    ops = await BalanceOperation.select(BalanceOperation.amount, BalanceOperation.status)
    assert sorted(o["amount"] for o in ops) == sorted(d for *_, d in trading_demo.ACCOUNTS)
    assert {o["status"] for o in ops} == {"done"}
    platform = await connections.platform_for(server["id"])
    states = await platform.fetch_accounts(
        [a["login"] for a in await TradingAccount.select(TradingAccount.login)]
    )
    assert sum(s.balance for s in states) == sum(d for *_, d in trading_demo.ACCOUNTS)
    assert await trading_demo.load(ACTOR) == {"trading_accounts": 0}
    await connections.close_all()


async def test_without_the_simulator_the_demo_loads_with_a_note(settings, monkeypatch, capsys):
    monkeypatch.setattr(trading_demo, "ADDRESS", f"127.0.0.1:{free_port()}")
    await demo_clients()
    assert await trading_demo.load(ACTOR) == {"trading_accounts": 0}
    assert "demo trading accounts skipped" in capsys.readouterr().out
    assert await TradingServer.count() == 1 and await AccountType.count() == 3
