"""The MT5 Web API on the wire: authenticated sessions over one keep-alive connection each.

MT5 binds a manager session to the TCP/TLS connection itself (no cookie, no token), so a
`WebApiSession` owns exactly one connection (`httpx` limited to one), authenticates on it with the
challenge–response of the reference (and checks the server's own answer, so a fake server cannot
collect our commands), pings it while idle so the server's 180 s idle limit never ends it, and
authenticates again when the connection is lost. Commands on one session are serialised; a
`SessionPool` spreads concurrent commands over a few sessions.

What may be retried is the heart of this module: a read is resent once, transparently, after a
lost connection; a command that changes money or creates something (`idempotent=False`) is never
resent once it may have reached the server — the caller gets `OutcomeUnknown` and looks for its
effect first (balance operations carry their id in the comment for that reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
from typing import Any

import httpx
import orjson

from app.trading import platform as p
from app.trading.mt5 import protocol

log = logging.getLogger(__name__)

AGENT = "fxcrm"
PING_INTERVAL = 20.0  # the reference: ping every ~20 s; the server drops a connection idle for 180 s
QUIT_TIMEOUT = 2.0
FRESH_SECONDS = 5.0  # a connection idle longer is checked with a ping before a money command

# Transport errors raised before a single byte of the request left: resending cannot duplicate anything.
_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)

Params = dict[str, str | int]


class WebApiSession:
    """One authenticated manager session on one MT5 server = one keep-alive connection."""

    def __init__(
        self,
        address: str,
        login: int,
        password: str,
        *,
        tls: bool = True,
        verify_tls: bool = True,
        timeout: float = 10.0,
        connect_timeout: float | None = None,
        ping_interval: float = PING_INTERVAL,
        agent: str = AGENT,
        version: int = protocol.MIN_VERSION,
    ) -> None:
        if not address or "/" in address:
            raise p.InvalidRequest(f"The trading server address {address!r} is not host:port.")
        self.address = address
        self.login = int(login)
        self.base_url = f"{'https' if tls else 'http'}://{address}"
        self.verify_tls = verify_tls
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout if connect_timeout is not None else min(timeout, 10.0))
        self.ping_interval = ping_interval
        self.agent = agent or AGENT
        self.version = max(int(version), protocol.MIN_VERSION)
        self._ph = protocol.password_hash(password)  # the password itself is not kept
        self._lock = asyncio.Lock()
        self._http: httpx.AsyncClient | None = None
        self._authed = False
        self._closed = False
        self._last_used = 0.0
        self._pinger: asyncio.Task[None] | None = None
        self.version_access = ""
        self.version_trade = ""
        self.auth_count = 0  # successful authentications: tests and ops see reconnects
        self.ping_count = 0

    # ------------------------------------------------------------------ public

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def authenticated(self) -> bool:
        return self._authed

    async def call(
        self, command: str, params: Params | None = None, body: Any = None, *, idempotent: bool = True
    ) -> dict[str, Any]:
        """Send one command; return the whole envelope (`answer` and any top-level fields).

        Raises the typed error of a non-zero retcode, `Unreachable`, `AuthFailed`, `BadResponse`,
        or — for a command that is not idempotent and may have been applied — `OutcomeUnknown`.
        """
        async with self._lock:
            if self._closed:
                raise p.Unreachable("The connection to the trading server was closed.", command=command)
            if not idempotent and self._authed and self._idle() > FRESH_SECONDS:
                # A connection idle for a while may have been dropped by the server; a ping (which may be
                # retried) finds that out, so the money command does not meet the dead connection.
                with contextlib.suppress(p.PlatformError):
                    await self._call_locked("test/access", None, None, True)
            return await self._call_locked(command, params, body, idempotent)

    async def close(self) -> None:
        """End the session politely (`/api/quit`) and stop pinging."""
        if self._closed:
            return
        self._closed = True
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pinger
            self._pinger = None
        async with self._lock:
            if self._authed and self._http is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._http.get("/api/quit"), QUIT_TIMEOUT)
            await self._reset()

    # ------------------------------------------------------------------ the command loop

    async def _call_locked(
        self, command: str, params: Params | None, body: Any, idempotent: bool
    ) -> dict[str, Any]:
        for attempt in (1, 2):
            if not self._authed:
                await self._authenticate()
            try:
                response = await self._send(command, params, body)
            except asyncio.CancelledError:
                self._authed = False  # the connection is in an unknown state: the next command starts over
                raise
            except httpx.TransportError as exc:
                await self._reset()
                if not idempotent and not isinstance(exc, _NOT_SENT):
                    raise p.OutcomeUnknown(
                        f"The trading server did not answer {command} ({_describe(exc)}); it may have been "
                        "applied. Look for it before sending it again.",
                        command=command,
                    ) from exc
                if attempt == 2:
                    raise p.Unreachable(
                        f"The trading server at {self.address} did not answer ({_describe(exc)}).",
                        command=command,
                    ) from exc
                log.info("mt5 %s: %s on %s, reconnecting", self.address, _describe(exc), command)
                continue
            if response.status_code == 403:
                # The server does not know this connection (it was dropped and httpx opened a new one):
                # the command was refused unseen, so sending it again is safe even for money.
                await self._reset()
                if attempt == 2:
                    raise protocol.error_for(8, command, "Not enough permissions")
                continue
            return self._envelope(command, response, idempotent)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, command: str, params: Params | None, body: Any) -> httpx.Response:
        if self._http is None:
            self._http = self._new_http()
        self._last_used = _now()
        url = "/api/" + command
        if body is None:
            response = await self._http.get(url, params=params)
        else:
            content = json.dumps(body, ensure_ascii=False).encode()
            response = await self._http.post(
                url, params=params, content=content, headers={"Content-Type": "application/json"}
            )
        self._last_used = _now()
        return response

    def _envelope(self, command: str, response: httpx.Response, idempotent: bool) -> dict[str, Any]:
        try:
            data = orjson.loads(response.content)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            code = protocol.parse_retcode(data["retcode"])
        except (ValueError, KeyError) as exc:
            # The stream may be out of step with our requests: start over on a new connection.
            self._authed = False
            if not idempotent:
                raise p.OutcomeUnknown(
                    f"The trading server answered {command} with something that is not the MT5 protocol "
                    f"(HTTP {response.status_code}); it may have been applied. Look for it before sending "
                    "it again.",
                    command=command,
                ) from exc
            raise p.BadResponse(
                f"The trading server answered {command} with something that is not the MT5 protocol "
                f"(HTTP {response.status_code}: {_snippet(response.content)}).",
                command=command,
            ) from exc
        if code != 0:
            raise protocol.error_for(code, command, str(data["retcode"]).partition(" ")[2])
        return data

    # ------------------------------------------------------------------ authentication

    async def _authenticate(self) -> None:
        """auth/start → auth/answer on a fresh connection; the server must prove it knows our password."""
        await self._reset()
        try:
            start = await self._auth_step(
                "auth/start",
                {"version": self.version, "agent": self.agent, "login": self.login, "type": "manager"},
            )
            srv_rand = start.get("srv_rand")
            if not isinstance(srv_rand, str) or len(srv_rand) != 32:
                raise p.BadResponse(
                    "The trading server sent no valid challenge (srv_rand).", command="auth/start"
                )
            try:
                srv_answer = protocol.rand_answer(self._ph, srv_rand)
            except ValueError:
                raise p.BadResponse(
                    "The trading server sent a challenge that is not hex.", command="auth/start"
                ) from None
            cli_rand = os.urandom(16).hex()
            answer = await self._auth_step(
                "auth/answer", {"srv_rand_answer": srv_answer, "cli_rand": cli_rand}
            )
            expected = protocol.rand_answer(self._ph, cli_rand)
            got = answer.get("cli_rand_answer")
            if not isinstance(got, str) or not hmac.compare_digest(got.lower(), expected):
                raise p.AuthFailed(
                    f"The server at {self.address} failed mutual authentication (wrong cli_rand_answer): it "
                    "does not know the manager password, so it is not the trading server. Nothing was sent.",
                    command="auth/answer",
                )
        except BaseException:
            await self._reset()
            raise
        self.version_access = str(answer.get("version_access", start.get("version_access", "")))
        self.version_trade = str(answer.get("version_trade", ""))
        self._authed = True
        self.auth_count += 1
        if self._pinger is None and self.ping_interval > 0:
            self._pinger = asyncio.create_task(self._ping_loop(), name=f"mt5-ping {self.address}")

    async def _auth_step(self, command: str, params: Params) -> dict[str, Any]:
        try:
            response = await self._send(command, params, None)
        except httpx.TransportError as exc:
            raise p.Unreachable(
                f"The trading server at {self.address} cannot be reached ({_describe(exc)}).", command=command
            ) from exc
        try:
            return self._envelope(command, response, True)
        except (p.BadResponse, p.Unreachable, p.Busy):
            raise
        except p.PlatformError as exc:
            if isinstance(exc, p.AuthFailed) or exc.code == 1008:
                raise p.AuthFailed(
                    f"The trading server at {self.address} rejected manager {self.login}: wrong password, "
                    "or the login is not a manager with Web API access.",
                    code=exc.code,
                    command=command,
                ) from None
            if exc.code == 9:
                raise p.Unreachable(
                    "The trading server timed out during login.", code=9, command=command
                ) from None
            raise p.AuthFailed(
                f"The trading server at {self.address} refused the manager login: {exc.message}",
                code=exc.code,
                command=command,
            ) from None

    # ------------------------------------------------------------------ keep-alive

    async def _ping_loop(self) -> None:
        """`/api/test/access` whenever the session has been idle for `ping_interval`."""
        while not self._closed:
            wait = self._last_used + self.ping_interval - _now()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if not self._authed or self._lock.locked():
                await asyncio.sleep(self.ping_interval)
                continue
            async with self._lock:
                if self._closed or not self._authed or self._idle() < self.ping_interval:
                    continue
                try:
                    await self._call_locked("test/access", None, None, True)
                    self.ping_count += 1
                except p.PlatformError as exc:
                    # The next command authenticates again; until then nothing is kept open.
                    log.info("mt5 %s: ping failed: %s", self.address, exc.message)
                    await self._reset()

    # ------------------------------------------------------------------ connection

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            http1=True,
            http2=False,
            verify=self.verify_tls,
            trust_env=False,
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            # One connection, kept as long as we keep pinging it: a second one would be unauthenticated.
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=None),
            headers={"User-Agent": f"{AGENT}/{self.version}", "Connection": "keep-alive"},
        )

    async def _reset(self) -> None:
        """Forget the connection (and with it the authentication)."""
        self._authed = False
        http, self._http = self._http, None
        if http is not None:
            with contextlib.suppress(Exception):
                await http.aclose()

    def _idle(self) -> float:
        return _now() - self._last_used


class SessionPool:
    """A few sessions on one server: concurrent commands go to a free session, else round-robin."""

    def __init__(self, sessions: list[WebApiSession]) -> None:
        if not sessions:
            raise ValueError("a pool needs at least one session")
        self.sessions = sessions
        self._next = 0

    async def call(
        self, command: str, params: Params | None = None, body: Any = None, *, idempotent: bool = True
    ) -> dict[str, Any]:
        return await self._pick().call(command, params, body, idempotent=idempotent)

    def _pick(self) -> WebApiSession:
        n = len(self.sessions)
        for i in range(n):
            session = self.sessions[(self._next + i) % n]
            if not session.busy:
                self._next = (self._next + i + 1) % n
                return session
        session = self.sessions[self._next]
        self._next = (self._next + 1) % n
        return session

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self.sessions), return_exceptions=True)


def _now() -> float:
    return asyncio.get_running_loop().time()


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"its TLS certificate is not trusted — {text}; turn verification off only for a simulator"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return f"the TLS handshake failed — is it plain HTTP? {text}"
    return f"{name}: {text}" if text else name


def _snippet(content: bytes) -> str:
    text = content[:80].decode("utf-8", "replace")
    return text + ("…" if len(content) > 80 else "")
