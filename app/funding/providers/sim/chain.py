"""A simulated blockchain for crypto deposits: send to an address, mine blocks, read the feed.

It behaves like the node feeds brokers poll: a transaction appears unconfirmed, gains one
confirmation per block, and the feed (`GET /chain/transactions?since=<cursor>`) lists every
transaction whose state changed after the cursor, so a reader that stored the last cursor misses
nothing. Test knobs make it misbehave the way real chains do: `POST /chain/reorg` takes the last
blocks away (their transactions lose their confirmations, or vanish with `drop`), and
`POST /chain/replay` sends transactions through the feed again (duplicates).

Routes (JSON in and out), all under `/chain`:
    POST /chain/send          {address, amount, currency, network?}      → the transaction
    POST /chain/mine          {blocks?: 1}                               → {height}
    GET  /chain/transactions  ?since=<cursor>&limit=<n>                  → {items, cursor}
    GET  /chain/transactions/<tx_hash>                                   → the transaction
    POST /chain/reorg         {depth?: 1, drop?: false}                  → {height, affected}
    POST /chain/replay        {tx_hash?}                                 → {replayed}
    POST /chain/payout        {idempotency_key, address, amount, currency} → the payout (once per key)
    GET  /chain/payouts/<idempotency_key>                                → the payout
    GET  /chain/payouts       ?since=<iso time>                          → {items}
    GET  /chain/status                                                   → {height, transactions, …}

`handle()` is the framework-free dispatcher the payment simulator server mounts; `router()` is the
same as a Litestar router; `python -m app.funding.providers.sim.chain` serves it alone.
"""

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

TRACKED_CONFIRMATIONS = 100  # after this many a transaction stops appearing in the feed
MAX_LIMIT = 1000


class ChainError(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Tx:
    tx_hash: str
    address: str
    amount: Decimal
    currency: str
    network: str
    created_at: str
    block: int | None = None  # None: in the mempool
    dropped: bool = False
    seq: int = 0  # feed position of its latest change
    payout_key: str = ""


@dataclass
class Chain:
    """All state, in memory; one event loop, so no locks."""

    block_seconds: float = 0.0
    network: str = "simnet"
    height: int = 0
    txs: dict[str, Tx] = field(default_factory=dict)
    payouts: dict[str, str] = field(default_factory=dict)  # idempotency key → tx hash
    _seq: itertools.count = field(default_factory=lambda: itertools.count(1))
    _last_seq: int = 0
    epoch: str = field(default_factory=lambda: os.urandom(4).hex())
    _miner: asyncio.Task[None] | None = None

    # --- state changes ---------------------------------------------------------------------

    def _touch(self, tx: Tx) -> None:
        self._last_seq = next(self._seq)
        tx.seq = self._last_seq

    def confirmations(self, tx: Tx) -> int:
        if tx.dropped or tx.block is None:
            return 0
        return self.height - tx.block + 1

    def send(self, address: str, amount: Any, currency: str, network: str = "") -> Tx:
        address = str(address or "").strip()
        if not address or len(address) > 200:
            raise ChainError("address: required, at most 200 characters")
        value = _amount(amount)
        code = str(currency or "").strip().upper()
        if not code.isalnum() or len(code) > 8:
            raise ChainError("currency: a code such as BTC or USDT")
        digest = hashlib.sha256(f"{address}|{value}|{code}|{time.time_ns()}|{os.urandom(8).hex()}".encode())
        tx = Tx(
            tx_hash="0x" + digest.hexdigest(),
            address=address,
            amount=value,
            currency=code,
            network=str(network or self.network)[:32],
            created_at=datetime.now(UTC).isoformat(),
        )
        self.txs[tx.tx_hash] = tx
        self._touch(tx)
        return tx

    def mine(self, blocks: int = 1) -> int:
        for _ in range(max(0, blocks)):
            self.height += 1
            for tx in self.txs.values():
                if tx.dropped:
                    continue
                if tx.block is None:
                    tx.block = self.height
                    self._touch(tx)
                elif self.confirmations(tx) <= TRACKED_CONFIRMATIONS:
                    self._touch(tx)
        return self.height

    def reorg(self, depth: int = 1, drop: bool = False) -> list[str]:
        """The last `depth` blocks are replaced by empty ones: their transactions go back to the
        mempool (re-included by the next block) or, with `drop`, disappear."""
        depth = max(0, min(depth, self.height))
        cut = self.height - depth
        affected = []
        for tx in self.txs.values():
            if tx.block is not None and tx.block > cut and not tx.dropped:
                tx.block = None
                tx.dropped = drop
                affected.append(tx.tx_hash)
        self.height = cut
        for tx in self.txs.values():  # everyone else has fewer confirmations now
            if tx.tx_hash in affected or (
                tx.block is not None and self.confirmations(tx) <= TRACKED_CONFIRMATIONS
            ):
                self._touch(tx)
        return affected

    def replay(self, tx_hash: str = "") -> list[str]:
        chosen = (
            [self.txs[tx_hash]] if tx_hash in self.txs else list(self.txs.values()) if not tx_hash else []
        )
        if tx_hash and not chosen:
            raise ChainError("no such transaction", 404)
        for tx in chosen:
            self._touch(tx)
        return [tx.tx_hash for tx in chosen]

    def payout(self, key: str, address: str, amount: Any, currency: str) -> Tx:
        key = str(key or "").strip()
        if not key or len(key) > 200:
            raise ChainError("idempotency_key: required, at most 200 characters")
        if key in self.payouts:
            first = self.txs[self.payouts[key]]
            if (first.address, first.amount, first.currency) != (
                str(address).strip(),
                _amount(amount),
                str(currency).upper(),
            ):
                raise ChainError("idempotency_key was used for a different payout", 409)
            return first
        tx = self.send(address, amount, currency)
        tx.payout_key = key
        self.payouts[key] = tx.tx_hash
        return tx

    # --- reads -------------------------------------------------------------------------------

    def view(self, tx: Tx) -> dict[str, Any]:
        return {
            "tx_hash": tx.tx_hash,
            "address": tx.address,
            "amount": str(tx.amount),
            "currency": tx.currency,
            "network": tx.network,
            "block": tx.block,
            "confirmations": self.confirmations(tx),
            "status": "dropped" if tx.dropped else "confirmed" if tx.block is not None else "pending",
            "created_at": tx.created_at,
            "payout_key": tx.payout_key,
        }

    def feed(self, since: str = "", limit: int = MAX_LIMIT) -> dict[str, Any]:
        """Changes after `since` (`<epoch>:<seq>`). A cursor from another run of the simulator (its
        state is in memory) starts from the beginning: readers dedupe by tx hash anyway."""
        epoch, _, seq = (since or "").rpartition(":")
        try:
            after = int(seq or 0) if epoch == self.epoch else 0
        except ValueError:
            raise ChainError("since: the cursor a previous answer gave") from None
        changed = sorted((t for t in self.txs.values() if t.seq > after), key=lambda t: t.seq)
        page = changed[: max(1, min(limit, MAX_LIMIT))]
        last = page[-1].seq if len(page) < len(changed) else max(after, self._last_seq)
        return {
            "items": [self.view(t) for t in page],
            "cursor": f"{self.epoch}:{last}",
            "height": self.height,
        }

    def status(self) -> dict[str, Any]:
        return {"height": self.height, "transactions": len(self.txs), "block_seconds": self.block_seconds}

    # --- automatic mining -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.block_seconds > 0 and self._miner is None:
            self._miner = asyncio.get_running_loop().create_task(self._mine_forever())

    async def stop(self) -> None:
        if self._miner is not None:
            self._miner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._miner
            self._miner = None

    async def _mine_forever(self) -> None:
        while True:
            await asyncio.sleep(self.block_seconds)
            self.mine(1)


def _amount(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ChainError('amount: a decimal number as a string, e.g. "0.015"') from None
    if not amount.is_finite() or amount <= 0:
        raise ChainError("amount: must be positive")
    return amount


def _int(body: dict[str, Any], key: str, default: int) -> int:
    try:
        return int(body.get(key, default))
    except (TypeError, ValueError):
        raise ChainError(f"{key}: a whole number") from None


def handle(
    chain: Chain, method: str, path: str, query: dict[str, str], body: bytes
) -> tuple[int, dict[str, Any]] | None:
    """Answer one request under /chain: (status, JSON body), or None when the path is not ours."""
    if path != "/chain" and not path.startswith("/chain/"):
        return None
    parts = [p for p in path.split("/") if p][1:]
    try:
        data: dict[str, Any] = {}
        if method == "POST" and body.strip():
            loaded = json.loads(body)
            if not isinstance(loaded, dict):
                raise ChainError("send a JSON object")
            data = loaded
        match (method, parts):
            case ("POST", ["send"]):
                tx = chain.send(
                    data.get("address", ""),
                    data.get("amount"),
                    data.get("currency", ""),
                    data.get("network", ""),
                )
                return 201, chain.view(tx)
            case ("POST", ["mine"]):
                return 200, {"height": chain.mine(_int(data, "blocks", 1))}
            case ("GET", ["transactions"]):
                limit = int(query["limit"]) if query.get("limit", "").isdigit() else MAX_LIMIT
                return 200, chain.feed(query.get("since", ""), limit)
            case ("GET", ["transactions", tx_hash]):
                found = chain.txs.get(tx_hash)
                return (200, chain.view(found)) if found else (404, {"error": "no such transaction"})
            case ("POST", ["reorg"]):
                affected = chain.reorg(_int(data, "depth", 1), bool(data.get("drop", False)))
                return 200, {"height": chain.height, "affected": affected}
            case ("POST", ["replay"]):
                return 200, {"replayed": chain.replay(str(data.get("tx_hash", "")))}
            case ("POST", ["payout"]):
                tx = chain.payout(
                    data.get("idempotency_key", ""),
                    data.get("address", ""),
                    data.get("amount"),
                    data.get("currency", ""),
                )
                return 200, chain.view(tx)
            case ("GET", ["payouts", key]):
                paid = chain.payouts.get(key)
                return (200, chain.view(chain.txs[paid])) if paid else (404, {"error": "no such payout"})
            case ("GET", ["payouts"]):
                since = query.get("since", "")
                items = [chain.view(chain.txs[h]) for h in chain.payouts.values()]
                return 200, {"items": [i for i in items if i["created_at"] >= since]}
            case ("GET", ["status"]):
                return 200, chain.status()
        return 404, {"error": "no such route"}
    except ChainError as exc:
        return exc.status, {"error": str(exc)}
    except ValueError:
        return 400, {"error": "the body is not JSON"}


def router(chain: Chain) -> Any:
    """The routes as a Litestar router at /chain (for a Litestar simulator server)."""
    from litestar import Request, Response, Router, route

    @route(["/", "/{rest:path}"], http_method=["GET", "POST"], include_in_schema=False)
    async def chain_route(request: Request) -> Response:
        answer = handle(
            chain,
            request.method,
            request.url.path.rstrip("/") or "/",
            dict(request.query_params),
            await request.body(),
        )
        status, payload = answer or (404, {"error": "no such route"})
        return Response(content=payload, status_code=status)

    return Router(path="/chain", route_handlers=[chain_route])


def create_app(chain: Chain) -> Any:
    """The chain alone as an ASGI app (tests, and `python -m app.funding.providers.sim.chain`)."""
    from litestar import Litestar

    return Litestar(
        route_handlers=[router(chain)],
        on_startup=[chain.start],
        on_shutdown=[chain.stop],
        openapi_config=None,
    )


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the simulated chain alone.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--block-seconds", type=float, default=5.0, help="0: mine only on POST /chain/mine")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(Chain(block_seconds=args.block_seconds)),
        host=args.host,
        port=args.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
