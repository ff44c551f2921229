"""Demo data for trading: the simulator as a server, three account types, and funded accounts for
some demo clients so the portal shows moving figures. Keyed by names and e-mails, so loading it
twice changes nothing. Without a simulator answering, the accounts are skipped with a note:
`fxcrm demo` must work offline too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.core import audit, db
from app.core.audit import Actor
from app.core.db import transaction
from app.trading import connections, credentials, operations
from app.trading.platform import BalanceType, NewAccount, PlatformError
from app.trading.tables import AccountType, TradingAccount, TradingServer

SERVER = "MT5 Demo (simulator)"
ADDRESS = "127.0.0.1:4443"
MANAGER = (1000, "Manager#2026")  # what `fxcrm run` starts the simulator with
# (name, group, currency, leverages, default, demo)
TYPES = [
    ("Demo USD", "demo\\forex-usd", "USD", "100,200,500", 100, True),
    ("Standard USD", "real\\standard-usd", "USD", "30,100,200,500", 100, False),
    ("Pro EUR", "real\\pro-eur", "EUR", "50,100,200", 100, False),
]
# (client e-mail, type name, leverage, opening deposit)
ACCOUNTS = [
    ("active@demo.fxcrm.test", "Standard USD", 100, Decimal("25000")),
    ("funded@demo.fxcrm.test", "Standard USD", 30, Decimal("5000")),
    ("ib@demo.fxcrm.test", "Pro EUR", 100, Decimal("10000")),
    ("registered@demo.fxcrm.test", "Demo USD", 500, Decimal("100000")),
]


async def _server(actor: Actor) -> int:
    row = await TradingServer.select(TradingServer.id).where(TradingServer.name == SERVER).first()
    if row:
        return int(row["id"])
    now = datetime.now(UTC)
    server = TradingServer(
        name=SERVER,
        platform="mt5",
        address=ADDRESS,
        use_tls=True,
        verify_tls=False,  # the simulator's certificate is self-signed
        manager_login=MANAGER[0],
        password_enc=credentials.encrypt(MANAGER[1], SERVER),
        timeout_seconds=10,
        pool_size=2,
        active=True,
        created_at=now,
        updated_at=now,
    )
    await server.save()
    await audit.record(
        actor,
        "trading.server_created",
        "trading_server",
        server.id,
        after={"name": SERVER, "address": ADDRESS, "password_set": True},
    )
    return int(server.id)


async def _types(server_id: int, actor: Actor) -> dict[str, dict[str, Any]]:
    now = datetime.now(UTC)
    out = {}
    for name, group, currency, leverages, default, demo in TYPES:
        row = await AccountType.select().where(AccountType.name == name).first()
        if row is None:
            t = AccountType(
                name=name,
                server=server_id,
                group_name=group,
                currency=currency,
                leverages=leverages,
                default_leverage=default,
                is_demo=demo,
                active=True,
                created_at=now,
                updated_at=now,
            )
            await t.save()
            await audit.record(
                actor,
                "trading.account_type_created",
                "trading_account_type",
                t.id,
                after={"name": name, "group_name": group},
            )
            row = {
                "id": t.id,
                "server": server_id,
                "group_name": group,
                "currency": currency,
                "is_demo": demo,
            }
        out[name] = row
    return out


async def _open(email: str, t: dict[str, Any], leverage: int, deposit: Decimal, actor: Actor) -> bool:
    client = await db.fetchrow("SELECT id, first_name, last_name, email FROM clients WHERE email = $1", email)
    if client is None or await TradingAccount.exists().where(
        (TradingAccount.client == client["id"]) & (TradingAccount.account_type == t["id"])
    ):
        return False
    platform = await connections.platform_for(t["server"])
    # The demo client never sees these passwords: they reset them in the portal to trade.
    from app.trading.accounts import generate_password

    user = await platform.create_account(
        NewAccount(
            group=t["group_name"],
            name=f"{client['first_name']} {client['last_name']}",
            leverage=leverage,
            password_main=generate_password(),
            password_investor=generate_password(),
            email=email,
            client_ref=str(client["id"]),
            comment="fxcrm demo",
        )
    )
    now = datetime.now(UTC)
    async with transaction():
        row = TradingAccount(
            client=client["id"],
            server=t["server"],
            account_type=t["id"],
            login=user.login,
            group_name=user.group,
            currency=t["currency"],
            leverage=leverage,
            is_demo=t["is_demo"],
            status="active",
            created_at=now,
            updated_at=now,
        )
        await row.save()
        await audit.record(
            actor,
            "trading.account_opened",
            "trading_account",
            row.id,
            after={"login": user.login, "group": user.group, "demo_data": True},
        )
    if t["is_demo"]:  # play money: straight onto the demo account
        await operations.balance_operation(
            actor,
            int(row.id),
            BalanceType.BALANCE,
            deposit,
            reference="demo:opening-deposit",
            comment="deposit",
        )
    # A live account is funded by `app.funding.demo` (card deposit, then a wallet → account transfer),
    # so that the ledger and MT5 agree.
    return True


async def load(actor: Actor) -> dict[str, int]:
    """The server and types always; the accounts only if the simulator answers now."""
    async with transaction():
        server_id = await _server(actor)
        types = await _types(server_id, actor)
    opened = 0
    try:
        for email, type_name, leverage, deposit in ACCOUNTS:
            opened += await _open(email, types[type_name], leverage, deposit, actor)
    except (PlatformError, OSError) as exc:
        message = exc.message if isinstance(exc, PlatformError) else str(exc)
        print(f"  note: MT5 simulator not reachable at {ADDRESS} ({message}); demo trading accounts skipped.")
    finally:
        await connections.close_all()
    return {"trading_accounts": opened}
