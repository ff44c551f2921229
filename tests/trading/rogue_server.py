"""A small, real HTTP/1.1 server that speaks just enough of the MT5 Web API to misbehave on purpose:
a server that does not know the password (wrong `cli_rand_answer`), broken JSON, a missing retcode,
answers that come too late, connections closed after a command ran. The simulator is a faithful
server; this one is the hostile or broken one a client must survive.

Runs in the test's own event loop (asyncio streams + h11), one session per connection like MT5.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import h11

from app.trading.mt5 import protocol
from tests.trading.conftest import MANAGER_LOGIN, MANAGER_PASSWORD


@dataclass
class Misbehaviour:
    wrong_cli_answer: bool = False  # a fake server: it cannot prove it knows the password
    malformed: set[str] = field(default_factory=set)  # commands answered with broken JSON
    no_retcode: set[str] = field(default_factory=set)  # commands answered without a retcode
    slow: dict[str, float] = field(default_factory=dict)  # command -> seconds before answering
    slow_times: dict[str, int] = field(
        default_factory=dict
    )  # command -> how many answers are slow (else all)
    idle_timeout: float | None = None  # hang up on a connection idle this long (MT5: 180 s)
    close_after: dict[str, int] = field(default_factory=dict)  # command -> times to run it, then hang up
    forbid_next: int = 0  # the next N commands after login get HTTP 403 (as if the session were lost)


@dataclass
class _Session:
    srv_rand: str = ""
    authed: bool = False


class RogueServer:
    def __init__(self, *, login: int = MANAGER_LOGIN, password: str = MANAGER_PASSWORD) -> None:
        self.login = login
        self.ph = protocol.password_hash(password)
        self.bad = Misbehaviour()
        self.seen: list[str] = []  # every command received, in order (auth included)
        self.executed: list[str] = []  # commands that took effect
        self.connections = 0
        self.idle_drops = 0
        self.srv_rand = ""  # a fixed challenge (the published test vector), else random
        self.params: dict[str, dict[str, str]] = {}  # the last query parameters of each command
        self.ticket = 1000
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def count(self, command: str, *, executed: bool = False) -> int:
        return (self.executed if executed else self.seen).count(command)

    async def __aenter__(self) -> RogueServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        session = _Session()
        try:
            while True:
                request = await self._next_request(conn, reader)
                if request is None:
                    return
                target, body = request
                keep = await self._respond(conn, writer, session, target, body)
                if not keep:
                    return
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                else:
                    return
        except (ConnectionError, h11.ProtocolError, asyncio.CancelledError):
            return
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _next_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[str, bytes] | None:
        target = ""
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await asyncio.wait_for(reader.read(65536), self.bad.idle_timeout)
                except TimeoutError:
                    self.idle_drops += 1
                    return None
                conn.receive_data(data)  # b"" at EOF: h11 reports ConnectionClosed
                continue
            if isinstance(event, h11.Request):
                target = event.target.decode()
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return target, body
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    async def _send(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, payload: bytes
    ) -> None:
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
        writer.write(conn.send(h11.Data(data=payload)))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    # ------------------------------------------------------------------ MT5

    async def _respond(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, session: _Session, target: str, body: bytes
    ) -> bool:
        url = urlsplit(target)
        command = url.path.removeprefix("/api/")
        params = dict(parse_qsl(url.query))
        self.seen.append(command)
        self.params[command] = params
        if command in self.bad.slow:
            delay = self.bad.slow[command]
            if command in self.bad.slow_times:
                self.bad.slow_times[command] -= 1
                if self.bad.slow_times[command] <= 0:
                    del self.bad.slow[command], self.bad.slow_times[command]
            await asyncio.sleep(delay)
        if not command.startswith("auth/") and not session.authed:
            await self._send(conn, writer, 403, b'{"retcode":"8 Not enough permissions"}')
            return True
        if not command.startswith("auth/") and self.bad.forbid_next > 0:
            self.bad.forbid_next -= 1
            session.authed = False
            await self._send(conn, writer, 403, b'{"retcode":"8 Not enough permissions"}')
            return True
        status, answer = self._answer(session, command, params)
        if (
            status == 200
            and command not in ("auth/start", "auth/answer")
            and answer.get("retcode") == "0 Done"
        ):
            self.executed.append(command)
        if self.bad.close_after.get(command, 0) > 0:
            self.bad.close_after[command] -= 1
            return False  # ran it, then hang up without an answer
        if command in self.bad.malformed:
            payload = b'{"retcode":"0 Done","answer":{"Ticket":"12'
        elif command in self.bad.no_retcode:
            payload = json.dumps({k: v for k, v in answer.items() if k != "retcode"}).encode()
        else:
            payload = json.dumps(answer).encode()
        await self._send(conn, writer, status, payload)
        return command != "quit"

    def _answer(self, session: _Session, command: str, q: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if command == "auth/start":
            if (
                q.get("login") != str(self.login)
                or q.get("type") != "manager"
                or int(q.get("version", 0)) < 484
            ):
                return 200, {"retcode": "3 Invalid parameters"}
            session.srv_rand = self.srv_rand or os.urandom(16).hex()
            return 200, {"retcode": "0 Done", "version_access": "1", "srv_rand": session.srv_rand}
        if command == "auth/answer":
            if not session.srv_rand or q.get("srv_rand_answer") != protocol.rand_answer(
                self.ph, session.srv_rand
            ):
                return 200, {"retcode": "1008 Server authentication failed"}
            cli = protocol.rand_answer(self.ph, q["cli_rand"])
            if self.bad.wrong_cli_answer:
                cli = protocol.rand_answer(protocol.password_hash("not the password"), q["cli_rand"])
            session.authed = True
            return 200, {
                "retcode": "0 Done",
                "version_access": "1",
                "version_trade": "1",
                "cli_rand_answer": cli,
            }
        if command in ("test/access", "quit"):
            return 200, {"retcode": "0 Done"}
        if command == "time/server":
            return 200, {"retcode": "0 Done", "answer": {"Time": "1572518788 2019.10.31 10:46:28"}}
        if command == "trade/balance":
            self.ticket += 1
            return 200, {"retcode": "0 Done", "answer": {"Ticket": str(self.ticket)}}
        if command == "user/get":
            return 200, {"retcode": "0 Done", "answer": {"Login": q.get("login", "0"), "Group": "demo\\x"}}
        if command == "user/add":
            return 200, {
                "retcode": "0 Done",
                "login": "5001",
                "answer": {"Login": "5001", "Group": q.get("group")},
            }
        return 200, {"retcode": "13 Not found"}
