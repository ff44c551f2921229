"""Demo funding data: the payment methods finance would configure, today's conversion rates, and
card deposits for the demo clients who have reached `funded` or later, booked through the same
services as real ones (so the ledger, the wallets and the history agree)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.core import audit
from app.core.audit import Actor
from app.core.db import transaction
from app.funding import payment_methods
from app.funding.tables import FxRate, PaymentMethod

METHODS: list[dict[str, str]] = [
    {
        "name": "Visa / Mastercard",
        "kind": "card",
        "provider": "simcard",
        "currencies": "USD,EUR,GBP",
        "min_amount": "10",
        "max_amount": "10000",
        "broker_fee_percent": "0",
        "broker_fee_fixed": "0",
        "provider_fee_percent": "2.5",
        "provider_fee_fixed": "0.30",
        "withdrawals_allowed": "on",
        "kyc_level": "1",
        "active": "on",
        "sort_order": "10",
    },
    {
        "name": "E-wallet",
        "kind": "ewallet",
        "provider": "simcard",
        "currencies": "USD,EUR",
        "min_amount": "20",
        "max_amount": "5000",
        "broker_fee_percent": "1",
        "broker_fee_fixed": "0",
        "provider_fee_percent": "1.5",
        "provider_fee_fixed": "0",
        "withdrawals_allowed": "on",
        "kyc_level": "1",
        "active": "on",
        "sort_order": "20",
    },
    {
        "name": "Bank wire",
        "kind": "wire",
        "provider": "wire",
        "currencies": "USD,EUR,GBP",
        "min_amount": "100",
        "max_amount": "1000000",
        "broker_fee_percent": "0",
        "broker_fee_fixed": "0",
        "provider_fee_percent": "0",
        "provider_fee_fixed": "0",
        "withdrawals_allowed": "on",
        "kyc_level": "1",
        "active": "on",
        "sort_order": "30",
    },
    {
        "name": "USDT (simulated chain)",
        "kind": "crypto",
        "provider": "simchain",
        "currencies": "USDT",
        "min_amount": "20",
        "max_amount": "100000",
        "broker_fee_percent": "0",
        "broker_fee_fixed": "1",
        "provider_fee_percent": "0",
        "provider_fee_fixed": "0",
        "withdrawals_allowed": "on",
        "kyc_level": "1",
        "active": "on",
        "sort_order": "40",
    },
]

RATES = [  # 1 base = rate quote
    ("EUR", "USD", "1.0850"),
    ("USD", "EUR", "0.9217"),
    ("GBP", "USD", "1.2650"),
    ("USD", "GBP", "0.7905"),
    ("USDT", "USD", "1.0000"),
    ("USD", "USDT", "1.0000"),
    ("EUR", "GBP", "0.8577"),
    ("GBP", "EUR", "1.1659"),
]


async def load(actor: Actor) -> dict[str, Any]:
    """Methods and rates once (a second run adds nothing)."""
    created = {"payment_methods": 0, "fx_rates": 0}
    now = datetime.now(UTC)
    async with transaction():
        for form in METHODS:
            if await PaymentMethod.exists().where(PaymentMethod.name == form["name"]):
                continue
            values, errors = payment_methods.parse(form)
            assert not errors, errors
            row = PaymentMethod(**values, created_at=now, updated_at=now)
            await row.save()
            await audit.record(
                actor,
                "funding.payment_method_created",
                "funding_payment_method",
                row.id,
                after={k: str(v) if isinstance(v, Decimal) else v for k, v in values.items()},
            )
            created["payment_methods"] += 1
        if not await FxRate.exists():
            for base, quote, rate in RATES:
                await FxRate(
                    base=base, quote=quote, rate=Decimal(rate), source="demo", created_by="demo", as_of=now
                ).save()
                created["fx_rates"] += 1
    return created


# (client e-mail, currency, card deposit, how much of it goes on to each live MT5 account in that currency)
DEPOSITS = [
    ("active@demo.fxcrm.test", "USD", Decimal("30000"), Decimal("25000")),
    ("funded@demo.fxcrm.test", "USD", Decimal("6000"), Decimal("5000")),
    ("ib@demo.fxcrm.test", "EUR", Decimal("12000"), Decimal("10000")),
]


VERIFIED_STAGES = ("kyc_approved", "funded", "active", "dormant", "churned")


async def verify_clients(actor: Actor) -> int:
    """The named demo clients past KYC hold the top individual level (2, fully verified, with the
    appropriateness questionnaire passed), so they may deposit, withdraw and open live accounts in
    the demo. Demo data has no document files behind it; the level is set, and audited, as such."""
    from app.core import db
    from app.kyc.levels import profile_of

    rows = await db.fetch(
        "SELECT c.id FROM clients c LEFT JOIN kyc_profiles p ON p.client = c.id WHERE c.email LIKE {} "
        "AND c.email NOT LIKE {} AND c.stage = ANY({}) AND coalesce(p.level, 0) < 2 ORDER BY c.id",
        "%@demo.fxcrm.test",
        "crowd%",
        list(VERIFIED_STAGES),
    )
    for row in rows:
        async with transaction():
            before = (await profile_of(row["id"], lock=True))["level"]
            await db.fetchrow(
                "UPDATE kyc_profiles SET level = 2, level_changed_at = now(), appropriateness_score = 80, "
                "appropriateness_at = now(), max_leverage = 500, updated_at = now() WHERE client = $1",
                row["id"],
            )
            await audit.record(
                actor, "kyc.level_changed", "client", row["id"],
                before={"level": before}, after={"level": 2, "reason": "demo data"},
            )  # fmt: skip
    return len(rows)


async def fund_clients(actor: Actor) -> dict[str, int]:
    """Card deposits (as if paid on the simulator's hosted page) credited to the demo clients'
    wallets, then moved to their live MT5 accounts through the transfer service: the ledger, MT5 and
    the history all show the same money. Runs once per client."""
    from app.core import db
    from app.funding import deposits, transfers
    from app.trading.platform import PlatformError

    method = (
        await PaymentMethod.select(PaymentMethod.id).where(PaymentMethod.name == METHODS[0]["name"]).first()
    )
    done = {"deposits": 0, "transfers": 0}
    if method is None:
        return done
    for email, currency, amount, to_account in DEPOSITS:
        client = await db.fetchrow("SELECT id FROM clients WHERE email = $1", email)
        if client is None or await db.fetchrow(
            "SELECT 1 FROM funding_deposits WHERE client_id = $1", client["id"]
        ):
            continue
        row = await db.fetchrow(
            "INSERT INTO funding_deposits (client_id, method_id, provider, kind, reference, amount, currency, "
            "credit_currency, status, created_by, created_at, updated_at) VALUES ($1, $2, 'simcard', 'card', $3, "
            "$4, $5, $5, 'created', 'fxcrm demo', now(), now()) RETURNING id",
            client["id"],
            method["id"],
            f"DDEMO{client['id']:05d}",
            amount,
            currency,
        )
        assert row is not None
        await deposits.complete_deposit(
            actor,
            int(row["id"]),
            provider_payment_id=f"demo_{client['id']}",
            instrument="Visa •••• 4242",
            instrument_key="tok_demo_4242",
        )
        done["deposits"] += 1
        accounts = await db.fetch(
            "SELECT id FROM trading_accounts WHERE client = {} AND NOT is_demo AND status = 'active' "
            "AND currency = {} ORDER BY id",
            client["id"],
            currency,
        )
        for account in accounts:
            try:
                await transfers.wallet_to_account(
                    actor, client["id"], account["id"], to_account, f"demo:opening:{account['id']}"
                )
                done["transfers"] += 1
            except (PlatformError, OSError) as exc:
                print(f"  note: demo transfer to MT5 skipped ({exc})")
    return done
