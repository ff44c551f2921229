"""How a completed deposit is booked (one transaction, key `deposit:{id}`), for a paid amount A with
the broker's fee B and the provider's fee P (`payment_methods.fees_for`; the client pays both):

    Dr provider_clearing (provider, currency)   A − P   what the provider owes us: it keeps its fee
    Cr fees (currency)                          B       the broker's fee income
    Cr client_wallet (credit currency)          A − B − P

The provider's fee never reaches our books as income or expense: the client paid it and the
provider kept it, so the clearing account (reconciled with the provider's settlements) carries
A − P. When the wallet is in another currency the net amount N = A − B − P crosses through the
`fx` accounts at the latest recorded rate R (kept on the deposit): Cr fx (currency) N,
Dr fx (credit currency) N·R, Cr wallet N·R; each currency still sums to zero. Without a rate the
deposit stays `pending` with a note saying so (`paid_at` set), and the `deposit_jobs` sweep
completes it once finance has recorded one. Nothing is ever converted at a guessed rate.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.funding import fx, ledger, payment_methods
from app.funding.amounts import LedgerError, format_amount
from app.funding.deposit_checks import fees_in


async def postings(row: dict[str, Any], paid: Decimal, currency: str) -> dict[str, Any]:
    """The fees, postings, credited amount and rate of a completed deposit, or a LedgerError."""
    method = None if row["method_id"] is None else await payment_methods.get_method(row["method_id"])
    if method is None:
        fees = {"broker_fee": Decimal(0), "provider_fee": Decimal(0), "net_credit": paid}
    else:
        fees = await fees_in(method, paid, currency)
    net = fees["net_credit"]
    if net <= 0:
        raise LedgerError(
            f"the paid {format_amount(paid, currency)} does not cover the fees; finance must review it."
        )
    credit_currency = row["credit_currency"]
    credited, rate = net, None
    if credit_currency != currency:
        credited, rate = await fx.convert(net, currency, credit_currency)
    clearing = await ledger.system_account("provider_clearing", currency, row["provider"])
    wallet = await ledger.wallet_for(row["client_id"], credit_currency)
    assert wallet is not None
    postings: list[tuple[int, Decimal]] = [(clearing, paid - fees["provider_fee"])]
    if fees["broker_fee"]:
        postings.append((await ledger.system_account("fees", currency), -fees["broker_fee"]))
    if rate is None:
        postings.append((wallet, -net))
    else:
        postings += [
            (await ledger.system_account("fx", currency), -net),
            (await ledger.system_account("fx", credit_currency), credited),
            (wallet, -credited),
        ]
    return {**fees, "postings": postings, "credited": credited, "rate": rate}
