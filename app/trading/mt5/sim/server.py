"""The HTTP side: asyncio streams + h11, so the MT5 session can live on the connection object
(MT5 binds a session to its TCP/TLS connection, not to a cookie). Every command runs on the event
loop's thread, one at a time, like the engine's ticks, so state needs no locks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
import ssl
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import h11

from app.trading.mt5 import protocol
from app.trading.mt5.sim import commands, history, symbols  # noqa: F401 (history registers commands)
from app.trading.mt5.sim.commands import COMMANDS, MT5Error, Reply, Session, Sim
from app.trading.mt5.sim.engine import Clock, Engine
from app.trading.mt5.sim.knobs import KnobError, Knobs
from app.trading.mt5.sim.store import Store

log = logging.getLogger("mt5sim")

MAX_BODY = 1_048_576
# commands the counting knobs (drop_next, malformed_next, fail_next "*") and error_rate leave alone,
# so they hit the command under test rather than a handshake or a keep-alive ping
QUIET = {"auth/start", "auth/answer", "test/access", "quit"}


@dataclass
class Options:
    host: str = "127.0.0.1"
    port: int = 4443
    tls: bool = True
    managers: dict[int, str] | None = None
    seed: int = 1
    state: Path = Path("var/mt5-sim.sqlite3")
    trade_rate: float = 0.0
    latency_ms: int = 0
    paused: bool = False
    idle_timeout: float = 180.0
    accounts: int = 0
    history_deals: int = 0


class Server:
    def __init__(self, sim: Sim, options: Options) -> None:
        self.sim = sim
        self.options = options
        self.knob_rng = random.Random(options.seed ^ 0x5EED)
        self.writers: set[asyncio.StreamWriter] = set()

    # ---- connection loop ----------------------------------------------------------------------
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        session = Session()
        self.writers.add(writer)
        try:
            while True:
                request = await self._read_request(conn, reader, writer)
                if request is None:
                    break
                keep = await self._respond(conn, writer, session, *request)
                if not keep or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except h11.RemoteProtocolError:
            with contextlib.suppress(Exception):
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
        except (ConnectionError, ssl.SSLError, h11.ProtocolError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                timeout = self.options.idle_timeout if request is None else 30.0
                try:
                    data = await asyncio.wait_for(reader.read(65536), timeout)
                except TimeoutError:
                    return None  # MT5 drops a connection idle for 180 s
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
                if conn.they_are_waiting_for_100_continue:
                    writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY:
                    return None
                body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                return request, b"".join(body)
            else:
                return None

    async def _send(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        close: bool = False,
    ) -> None:
        headers = [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(body)))]
        if close:
            headers.append(("Connection", "close"))
        response = h11.Response(
            status_code=status, headers=headers, reason=HTTPStatus(status).phrase.encode()
        )
        writer.write(conn.send(response) or b"")
        writer.write(conn.send(h11.Data(data=body)) or b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()

    async def _respond(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        session: Session,
        request: h11.Request,
        raw: bytes,
    ) -> bool:
        target = urlsplit(request.target.decode("latin-1"))
        path = unquote(target.path)
        params: dict[str, str] = {}
        for key, value in parse_qsl(target.query, keep_blank_values=True):
            params.setdefault(key, value)
        if path.startswith("/api/"):
            return await self._mt5(conn, writer, session, path[5:].strip("/").lower(), params, raw)
        if path == "/sim/status":
            await self._send(conn, writer, 200, json.dumps(self.status()).encode())
        elif path == "/sim/prices":
            await self._send(conn, writer, 200, json.dumps(self.prices()).encode())
        elif path == "/sim/control" and request.method == b"POST":
            try:
                result = self.control(json.loads(raw or b"{}"))
                await self._send(conn, writer, 200, json.dumps(result).encode())
            except (KnobError, ValueError, TypeError) as exc:
                await self._send(conn, writer, 400, json.dumps({"error": str(exc)}).encode())
        else:
            await self._send(conn, writer, 404, b'{"error":"not found"}')
        return True

    # ---- MT5 commands -------------------------------------------------------------------------
    async def _mt5(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, session: Session, name: str,
        params: dict[str, str], raw: bytes,
    ) -> bool:  # fmt: skip
        knobs = self.sim.knobs
        if knobs.latency_ms:
            await asyncio.sleep(knobs.latency_ms / 1000)
        if session.manager is None and name not in commands.PUBLIC:
            await self._send(conn, writer, 403, self._envelope(Reply(code=8)))
            return True
        handler = COMMANDS.get(name)
        if handler is None:
            await self._send(conn, writer, 404, self._envelope(Reply(code=3)))
            return True
        drop_before = drop_after = False
        if knobs.drop_next and name not in QUIET:
            knobs.drop_next -= 1
            drop_after = True
        elif knobs.drop_rate and self.knob_rng.random() < knobs.drop_rate:
            drop_before = self.knob_rng.random() < 0.5
            drop_after = not drop_before
        if drop_before:
            self._abort(writer)
            return False
        reply: Reply
        failure = knobs.take_failure(name) if name not in QUIET or any(
            f["command"] == name for f in knobs.fail_next
        ) else None  # fmt: skip
        if failure is not None:
            reply = Reply(code=failure)
        elif knobs.error_rate and name not in QUIET and self.knob_rng.random() < knobs.error_rate:
            reply = Reply(code=2)
        else:
            try:
                body: Any = json.loads(raw.decode("utf-8")) if raw.strip() else None
                reply = handler(self.sim, session, params, body)
            except MT5Error as exc:
                reply = Reply(code=exc.code)
            except (ValueError, UnicodeDecodeError):
                reply = Reply(code=3)
            except Exception:
                log.exception("command %s failed", name)
                reply = Reply(code=2)
        if drop_after:
            self._abort(writer)
            return False
        payload = self._envelope(reply)
        if knobs.malformed_next and name not in QUIET:
            knobs.malformed_next -= 1
            payload = payload[: max(1, len(payload) // 2)] + b'"}{,'
        await self._send(conn, writer, 200, payload, close=session.close_after)
        return not session.close_after

    @staticmethod
    def _envelope(reply: Reply) -> bytes:
        parts = ['{"retcode":"', protocol.retcode_text(reply.code), '"']
        for key, value in reply.extra.items():
            parts.append(f",{json.dumps(key)}:{json.dumps(value)}")
        if reply.answer is not None:
            parts += [',"answer":', reply.answer]
        parts.append("}")
        return "".join(parts).encode()

    @staticmethod
    def _abort(writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        if transport is not None:
            transport.abort()

    # ---- control ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        store = self.sim.store
        return {
            "accounts": len(store.users),
            "deals": store.deal_total,
            "positions": len(store.positions),
            "last_deal": store.last_deal,
            "server_time": self.sim.clock.now(),
            "groups": sorted(store.groups),
            "knobs": self.sim.knobs.as_dict(),
        }

    def prices(self) -> dict[str, Any]:
        engine = self.sim.engine
        return {name: {"bid": engine.bid(name), "ask": engine.ask(name)} for name in symbols.NAMES}

    def control(self, values: Any) -> dict[str, Any]:
        """Knobs, plus actions: `step` (N engine steps now), `rollover` (charge a day's swap),
        `shock` ({"EURUSD": -3} moves prices by percent)."""
        if not isinstance(values, dict):
            raise KnobError("control takes a JSON object")
        values = dict(values)
        step = values.pop("step", 0)
        rollover = values.pop("rollover", False)
        shock = values.pop("shock", None)
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= 1_000_000:
            raise KnobError("step must be an integer")
        if shock is not None and not isinstance(shock, dict):
            raise KnobError('shock takes {"SYMBOL": percent}')
        self.sim.knobs.update(values)
        engine = self.sim.engine
        if shock:
            engine.shock(shock)
            with self.sim.store.tx():
                engine.save_prices()
                engine.check_stop_outs()
        if rollover:
            with self.sim.store.tx():
                engine.rollover()
        if step:
            engine.step(step)
        return self.sim.knobs.as_dict()


def build(options: Options) -> Sim:
    store = Store(options.state)
    knobs = Knobs(trade_rate=options.trade_rate, latency_ms=options.latency_ms, paused=options.paused)
    clock = Clock(knobs)
    if options.accounts or options.history_deals:
        from app.trading.mt5.sim.bench import generate

        generate(store, clock, options.accounts, options.history_deals, options.seed)
    engine = Engine(store, knobs, clock, options.seed)
    managers = {login: protocol.password_hash(pw) for login, pw in (options.managers or {}).items()}
    return Sim(store, engine, knobs, clock, managers)


async def serve(options: Options) -> None:
    sim = build(options)
    server_ = Server(sim, options)
    context = None
    if options.tls:
        from app.trading.mt5.sim.tls import server_context

        context = server_context(options.state, options.host)
    server = await asyncio.start_server(
        server_.handle, options.host, options.port, ssl=context, ssl_handshake_timeout=10 if context else None,
        limit=1 << 20,
    )  # fmt: skip
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if context else "http"
    print(f"MT5 simulator listening on {scheme}://{options.host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    engine_task = asyncio.create_task(sim.engine.run())
    try:
        await stop.wait()
    finally:
        engine_task.cancel()
        server.close()
        for writer in list(server_.writers):
            Server._abort(writer)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await engine_task
        sim.store.close()  # every change was committed when it happened
        log.info("MT5 simulator stopped at %s", time.strftime("%H:%M:%S"))


def run(options: Options) -> int:
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # failed TLS handshakes are not news
    asyncio.run(serve(options))
    return 0
