"""The demo's trading data: the simulator as a server, three types, funded accounts when the
simulator answers, and a note (not a failure) when it does not."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from app.clients.tables import Client
from app.core import db
from app.core.audit import Actor
from app.funding import demo as funding_demo
from app.funding import reconcile_mt5
from app.trading import connections
from app.trading import demo as trading_demo
from app.trading.sync import sync_once
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
    # Only the demo (play-money) account is funded straight on MT5; live ones are funded by funding.
    ops = await BalanceOperation.select(BalanceOperation.amount, BalanceOperation.status)
    assert [o["amount"] for o in ops] == [Decimal("100000")] and ops[0]["status"] == "done"
    assert await funding_demo.load(ACTOR) == {"payment_methods": 4, "fx_rates": len(funding_demo.RATES)}
    assert await funding_demo.verify_clients(ACTOR) == len(trading_demo.ACCOUNTS)  # all "active" here
    assert await funding_demo.verify_clients(ACTOR) == 0
    assert await funding_demo.fund_clients(ACTOR) == {"deposits": 3, "transfers": 3}
    platform = await connections.platform_for(server["id"])
    states = await platform.fetch_accounts(
        [a["login"] for a in await TradingAccount.select(TradingAccount.login)]
    )
    assert sum(s.balance for s in states) == sum(d for *_, d in trading_demo.ACCOUNTS)
    # The ledger knows exactly the money that went to the live accounts; the rest, after the card's
    # 2.5 % + 0.30 USD fee (0.28 in EUR at the demo rate), is in the wallets.
    await sync_once(server["id"])
    found, checked = await reconcile_mt5.compare()
    assert found == [] and checked == 3
    wallets = await db.fetch(
        "SELECT currency, sum(balance) AS total FROM funding_ledger_accounts WHERE kind = 'client_wallet' "
        "GROUP BY currency ORDER BY currency"
    )
    assert {w["currency"]: w["total"] for w in wallets} == {
        "EUR": Decimal("1699.72"),
        "USD": Decimal("5099.40"),
    }
    assert await funding_demo.fund_clients(ACTOR) == {"deposits": 0, "transfers": 0}
    assert await trading_demo.load(ACTOR) == {"trading_accounts": 0}
    await connections.close_all()


async def test_without_the_simulator_the_demo_loads_with_a_note(settings, monkeypatch, capsys):
    monkeypatch.setattr(trading_demo, "ADDRESS", f"127.0.0.1:{free_port()}")
    await demo_clients()
    assert await trading_demo.load(ACTOR) == {"trading_accounts": 0}
    assert "demo trading accounts skipped" in capsys.readouterr().out
    assert await TradingServer.count() == 1 and await AccountType.count() == 3
