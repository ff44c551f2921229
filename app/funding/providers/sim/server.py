"""A card/e-wallet payment provider simulator that behaves like a real one (`fxcrm pay-sim`).

The merchant API (API key in `Authorization: Bearer …`): `POST /v1/payments` (Idempotency-Key)
answers a payment id and a hosted page URL; `GET /v1/payments/{id}`, `GET /v1/payments?since=`;
`POST /v1/payouts` (Idempotency-Key required: the same key answers the first payout and never pays
twice; the same key with another body is a 409), `GET /v1/payouts/{key}`, `GET /v1/payouts?since=`.

The hosted page (`/pay/{id}`) takes a card number, expiry and name and sends the browser back to
the merchant's return URL. Test cards: 4242 4242 4242 4242 succeeds (so does any other valid
number), 4000 0000 0000 0002 is declined, 4000 0000 0000 9995 has insufficient funds. The outcome
then arrives asynchronously as signed webhooks (Standard Webhooks, `app.funding.webhooks`):
`payment.processing`, then `payment.succeeded` or `payment.failed`, retried with exponential
backoff until the merchant answers 2xx.

Knobs (`POST /sim/control`, JSON, API key): duplicates, out_of_order, delay, retry_base,
max_attempts, drop_webhooks, fail_payouts, payout_timeout_next, next_paid_amount, webhook_url
(see `store.DEFAULT_KNOBS`). State lives in SQLite, so a restart loses no payment and no delivery.
The simulated crypto chain (`chain.py`) is served under `/chain` by the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar, Request, Response, get, post

from app.funding import webhooks
from app.funding.providers.sim.chain import Chain
from app.funding.providers.sim.chain import router as chain_router
from app.funding.providers.sim.hosted import FORM, back, back_url, brand, luhn_ok, page
from app.funding.providers.sim.store import DEFAULT_KNOBS, Store, new_id

log = logging.getLogger("paysim")

PROVIDER = "simcard"
DECLINED = {
    "4000000000000002": "Your card was declined.",
    "4000000000009995": "Your card has insufficient funds.",
}
_AMOUNT = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,8})?$")
_CURRENCY = re.compile(r"^[A-Z]{3,5}$")
PROCESSING_SECONDS = 0.3


@dataclass
class Options:
    host: str = "127.0.0.1"
    port: int = 4480
    state: Path = Path("var/pay-sim.sqlite3")
    api_key: str = field(default="sk_test_fxcrm", repr=False)
    webhook_secret: str = field(default="", repr=False)
    webhook_url: str = ""  # the default until a knob sets another
    public_url: str = ""  # how browsers reach the hosted page (default http://host:port)
    block_seconds: float = 0.0  # the chain's automatic mining (0: only on request)


class Problem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(content=body, status_code=status, media_type="application/json", headers=headers or {})


def _since(request: Request) -> float:
    raw = request.query_params.get("since", "0")
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise Problem(400, "since: Unix seconds or an ISO 8601 time") from None


def _amount(raw: Any, what: str = "amount") -> str:
    text = str(raw if raw is not None else "").strip()
    if not _AMOUNT.match(text) or Decimal(text) <= 0:
        raise Problem(400, f'{what}: a positive decimal string such as "100.00"')
    return text


class Sim:
    """The simulator's behaviour, separate from HTTP so the handlers stay one-liners."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.store = Store(options.state)
        if options.webhook_url:  # the command line wins over what an earlier run stored
            self.store.set_knobs({"webhook_url": options.webhook_url})
        self.public_url = (options.public_url or f"http://{options.host}:{options.port}").rstrip("/")
        self._task: asyncio.Task[None] | None = None
        self.http: httpx.AsyncClient | None = None

    # --- API ---------------------------------------------------------------------------------------

    def authorise(self, request: Request) -> None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self.options.api_key.encode()):
            raise Problem(401, "invalid API key")

    def view(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": p["id"],
            "object": "payment",
            "status": p["status"],
            "amount": p["amount"],
            "currency": p["currency"],
            "paid_amount": p["paid_amount"],
            "reference": p["reference"],
            "instrument": p["instrument"],
            "instrument_key": p["instrument_key"],
            "failure_reason": p["failure_reason"],
            "hosted_url": f"{self.public_url}/pay/{p['id']}",
            "created_at": p["created_at"],
            "updated_at": p["updated_at"],
        }

    def create_payment(self, body: dict[str, Any], idem_key: str) -> tuple[int, dict[str, Any]]:
        if idem_key and (first := self.store.one("SELECT * FROM payments WHERE idem_key = ?", idem_key)):
            return 200, self.view(first)
        amount = _amount(body.get("amount"))
        currency = str(body.get("currency", "")).upper()
        if not _CURRENCY.match(currency):
            raise Problem(400, "currency: a code such as USD")
        return_url = str(body.get("return_url", ""))
        if not return_url.startswith(("http://", "https://")):
            raise Problem(400, "return_url: an http(s) URL")
        reference = str(body.get("reference", ""))[:100]
        now = time.time()
        pid = new_id("pay")
        self.store.run(
            "INSERT INTO payments (id, idem_key, reference, amount, currency, status, return_url, customer, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'requires_payment', ?, ?, ?, ?)",
            pid, idem_key or None, reference, amount, currency, return_url,
            json.dumps(body.get("customer") or {}), now, now,
        )  # fmt: skip
        return 201, self.view(self.payment(pid))

    def payment(self, pid: str) -> dict[str, Any]:
        row = self.store.one("SELECT * FROM payments WHERE id = ?", pid)
        if row is None:
            raise Problem(404, "no such payment")
        return row

    def pay(self, pid: str, number: str, expiry: str, name: str) -> dict[str, Any]:
        """The hosted form's submission: decide, record, queue the events (out of order if asked)."""
        p = self.payment(pid)
        if p["status"] != "requires_payment":
            return p
        number = re.sub(r"[\s-]", "", number)
        if not luhn_ok(number):
            raise Problem(400, "The card number is not valid.")
        m = re.fullmatch(r"\s*(\d{2})\s*/\s*(\d{2})\s*", expiry)
        if not m or not 1 <= int(m[1]) <= 12:
            raise Problem(400, "Write the expiry as MM/YY.")
        now = datetime.now()
        if (2000 + int(m[2]), int(m[1])) < (now.year, now.month):
            raise Problem(400, "The card has expired.")
        if not name.strip():
            raise Problem(400, "Enter the name on the card.")
        failure = DECLINED.get(number, "")
        paid = ""
        if not failure:
            knob = str(self.store.knobs()["next_paid_amount"] or "")
            paid = knob or p["amount"]
            if knob:
                self.store.set_knobs({"next_paid_amount": ""})
        status = "failed" if failure else "succeeded"
        instrument = f"{brand(number)} •••• {number[-4:]}"
        token = "card_" + hashlib.sha256(f"{number}|{m[1]}/{m[2]}".encode()).hexdigest()[:20]
        self.store.run(
            "UPDATE payments SET status = ?, paid_amount = ?, instrument = ?, instrument_key = ?, "
            "failure_reason = ?, updated_at = ? WHERE id = ?",
            status, paid, instrument, token, failure, time.time(), pid,
        )  # fmt: skip
        final = self.view(self.payment(pid))
        processing = {**final, "status": "processing", "paid_amount": "", "failure_reason": ""}
        first, second = PROCESSING_SECONDS, 0.0
        if self.store.knobs()["out_of_order"]:
            first, second = 0.0, PROCESSING_SECONDS
        self.store.queue_event(PROVIDER, "payment.processing", processing, after=second)
        self.store.queue_event(PROVIDER, f"payment.{status}", final, after=first)
        return self.payment(pid)

    def cancel(self, pid: str) -> dict[str, Any]:
        p = self.payment(pid)
        if p["status"] == "requires_payment":
            reason = "The payment was cancelled on the payment page."
            self.store.run(
                "UPDATE payments SET status = 'failed', failure_reason = ?, updated_at = ? WHERE id = ?",
                reason, time.time(), pid,
            )  # fmt: skip
            self.store.queue_event(PROVIDER, "payment.failed", self.view(self.payment(pid)))
        return self.payment(pid)

    def payout(self, body: dict[str, Any], idem_key: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not idem_key:
            raise Problem(400, "Idempotency-Key header required for payouts")
        amount = _amount(body.get("amount"))
        currency = str(body.get("currency", "")).upper()
        if not _CURRENCY.match(currency):
            raise Problem(400, "currency: a code such as USD")
        canonical = json.dumps(
            {"amount": str(Decimal(amount).normalize()), "currency": currency,
             "destination": body.get("destination") or {}, "reference": str(body.get("reference", ""))},
            sort_keys=True,
        )  # fmt: skip
        fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
        first = self.store.one("SELECT * FROM payouts WHERE idem_key = ?", idem_key)
        if first is not None:
            if first["fingerprint"] != fingerprint:
                raise Problem(409, "this Idempotency-Key was used for a different payout")
            return 200, self.payout_view(first), {"Idempotent-Replayed": "true"}
        failed = self.store.take("fail_payouts")
        now = time.time()
        pid = new_id("po")
        self.store.run(
            "INSERT INTO payouts (id, idem_key, fingerprint, amount, currency, destination, reference, status, "
            "failure_reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            pid, idem_key, fingerprint, amount, currency, json.dumps(body.get("destination") or {}),
            str(body.get("reference", ""))[:200], "failed" if failed else "paid",
            "The receiving bank refused the payout (simulated)." if failed else "", now, now,
        )  # fmt: skip
        row = self.store.one("SELECT * FROM payouts WHERE id = ?", pid)
        assert row is not None
        if self.store.take("payout_timeout_next"):
            raise Problem(504, "gateway timeout (the payout was made; ask again with the same key)")
        return 201, self.payout_view(row), {}

    @staticmethod
    def payout_view(p: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": p["id"], "object": "payout", "idempotency_key": p["idem_key"], "status": p["status"],
            "amount": p["amount"], "currency": p["currency"], "destination": json.loads(p["destination"]),
            "reference": p["reference"], "failure_reason": p["failure_reason"],
            "created_at": p["created_at"], "updated_at": p["updated_at"],
        }  # fmt: skip

    def control(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - set(DEFAULT_KNOBS)
        if unknown:
            raise Problem(400, f"unknown knobs: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for key, value in body.items():
            kind = type(DEFAULT_KNOBS[key])
            if kind is bool and not isinstance(value, bool):
                raise Problem(400, f"{key}: true or false")
            if kind in (int, float) and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise Problem(400, f"{key}: a number ≥ 0")
            if kind is str and not isinstance(value, str):
                raise Problem(400, f"{key}: a string")
            if key == "next_paid_amount" and value:
                _amount(value, key)
            values[key] = kind(value)
        return self.store.set_knobs(values)

    # --- webhooks ----------------------------------------------------------------------------------

    def url_for(self, provider: str) -> str:
        url = str(self.store.knobs()["webhook_url"] or "")
        if not url or provider == PROVIDER:
            return url
        return url.rsplit("/", 1)[0] + "/" + provider

    async def deliver_due(self) -> int:
        """One pass over due deliveries; how many were attempted."""
        assert self.http is not None
        knobs = self.store.knobs()
        due = self.store.due_deliveries()
        for d in due:
            url = self.url_for(d["provider"])
            if knobs["drop_webhooks"] or not url:
                self.store.run(
                    "UPDATE deliveries SET attempts = ?, last_error = ? WHERE id = ?",
                    int(knobs["max_attempts"]), "dropped" if url else "no webhook_url", d["id"],
                )  # fmt: skip
                continue
            headers = {
                "content-type": "application/json",
                **webhooks.headers_for(self.options.webhook_secret, d["event_id"], d["body"]),
            }
            status, error = 0, ""
            try:
                r = await self.http.post(url, content=d["body"].encode(), headers=headers)
                status = r.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if 200 <= status < 300:
                self.store.run(
                    "UPDATE deliveries SET delivered_at = ?, attempts = attempts + 1, last_status = ?, "
                    "last_error = '' WHERE id = ?",
                    time.time(), status, d["id"],
                )  # fmt: skip
            else:
                backoff = float(knobs["retry_base"]) * (2 ** d["attempts"])
                self.store.run(
                    "UPDATE deliveries SET attempts = attempts + 1, last_status = ?, last_error = ?, due_at = ? "
                    "WHERE id = ?",
                    status or None, error[:500], time.time() + min(backoff, 3600), d["id"],
                )  # fmt: skip
        return len(due)

    async def _dispatch_forever(self) -> None:
        while True:
            try:
                if not await self.deliver_due():
                    await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook dispatch failed")
                await asyncio.sleep(1)

    async def start(self) -> None:
        self.http = httpx.AsyncClient(timeout=10)
        self._task = asyncio.create_task(self._dispatch_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.http is not None:
            await self.http.aclose()
        self.store.close()


def create_sim_app(options: Options) -> Litestar:
    sim = Sim(options)

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError:
            raise Problem(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise Problem(400, "the body must be a JSON object")
        return data

    @post("/v1/payments", status_code=201)
    async def create_payment(request: Request) -> Response:
        sim.authorise(request)
        status, view = sim.create_payment(await body_of(request), request.headers.get("idempotency-key", ""))
        return _json(status, view)

    @get("/v1/payments/{pid:str}")
    async def get_payment(request: Request, pid: str) -> Response:
        sim.authorise(request)
        return _json(200, sim.view(sim.payment(pid)))

    @get("/v1/payments")
    async def list_payments(request: Request) -> Response:
        sim.authorise(request)
        rows = sim.store.all(
            "SELECT * FROM payments WHERE updated_at >= ? ORDER BY updated_at", _since(request)
        )
        return _json(200, {"items": [sim.view(r) for r in rows]})

    @post("/v1/payouts", status_code=201)
    async def create_payout(request: Request) -> Response:
        sim.authorise(request)
        status, view, headers = sim.payout(await body_of(request), request.headers.get("idempotency-key", ""))
        return _json(status, view, headers)

    @get("/v1/payouts/{key:str}")
    async def get_payout(request: Request, key: str) -> Response:
        sim.authorise(request)
        row = sim.store.one("SELECT * FROM payouts WHERE idem_key = ?", key)
        if row is None:
            raise Problem(404, "no payout with this idempotency key")
        return _json(200, sim.payout_view(row))

    @get("/v1/payouts")
    async def list_payouts(request: Request) -> Response:
        sim.authorise(request)
        rows = sim.store.all(
            "SELECT * FROM payouts WHERE updated_at >= ? ORDER BY updated_at", _since(request)
        )
        return _json(200, {"items": [sim.payout_view(r) for r in rows]})

    @get("/pay/{pid:str}")
    async def hosted_page(pid: str) -> Response:
        p = sim.payment(pid)
        if p["status"] != "requires_payment":
            link = html.escape(back_url(p))
            return page(
                p, f'<p>This payment is {html.escape(p["status"])}.</p><p><a href="{link}">Return</a></p>'
            )
        return page(p, FORM.format(id=html.escape(pid), error="", number="", expiry="", name=""))

    @post("/pay/{pid:str}")
    async def hosted_submit(request: Request, pid: str) -> Response:
        form = await request.form()
        number, expiry, name = (str(form.get(k, "")) for k in ("card_number", "expiry", "name"))
        try:
            p = sim.pay(pid, number, expiry, name)
        except Problem as exc:
            if exc.status == 404:
                raise
            p = sim.payment(pid)
            error = f'<p class="error" role="alert">{html.escape(exc.message)}</p>'
            body = FORM.format(
                id=html.escape(pid), error=error, number=html.escape(number), expiry=html.escape(expiry),
                name=html.escape(name),
            )  # fmt: skip
            return page(p, body, 400)
        return back(p)  # type: ignore[return-value]

    @post("/pay/{pid:str}/cancel")
    async def hosted_cancel(pid: str) -> Response:
        return back(sim.cancel(pid))  # type: ignore[return-value]

    @get("/sim/status")
    async def status() -> Response:
        return _json(200, {"ok": True, "chain": True})

    @get("/sim/control")
    async def read_control(request: Request) -> Response:
        sim.authorise(request)
        return _json(200, sim.store.knobs())

    @post("/sim/control", status_code=200)
    async def set_control(request: Request) -> Response:
        sim.authorise(request)
        return _json(200, sim.control(await body_of(request)))

    @get("/sim/deliveries")
    async def deliveries(request: Request) -> Response:
        sim.authorise(request)
        rows = sim.store.all(
            "SELECT id, event_id, provider, type, attempts, delivered_at, last_status, last_error, created_at "
            "FROM deliveries ORDER BY id"
        )
        return _json(200, {"items": rows})

    def on_problem(request: Request, exc: Problem) -> Response:
        return _json(exc.status, {"error": exc.message})

    handlers: list[Any] = [
        create_payment, get_payment, list_payments, create_payout, get_payout, list_payouts,
        hosted_page, hosted_submit, hosted_cancel, status, read_control, set_control, deliveries,
    ]  # fmt: skip
    chain = Chain(block_seconds=options.block_seconds)  # the simulated crypto chain, under /chain
    handlers.append(chain_router(chain))

    async def startup() -> None:
        await sim.start()
        await chain.start()

    async def shutdown() -> None:
        await chain.stop()
        await sim.stop()

    app = Litestar(
        route_handlers=handlers,
        on_startup=[startup],
        on_shutdown=[shutdown],
        exception_handlers={Problem: on_problem},
        openapi_config=None,
    )
    app.state.sim = sim
    return app


def run(options: Options) -> int:
    import uvicorn

    if not options.webhook_secret:
        raise SystemExit("pay-sim needs a webhook signing secret")
    uvicorn.run(create_sim_app(options), host=options.host, port=options.port, log_level="warning")
    return 0
