"""The /live WebSocket: authenticated by the session, Origin checked, closed when the session ends.

Besides the viewer's own topics (`Principal.topics`), a page may ask to watch one thing it shows,
`/live?watch=client:42`: the domain that owns "client" decides (at connect) whether this viewer
may see it and which topic that is. A page is a full load (the console does not hx-boost), so
each page opens its own socket with its own `watch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from app.core.auth import sessions
from app.core.auth.principal import Principal
from app.core.live import hub, render_for
from app.settings import get_settings

log = logging.getLogger(__name__)

CLOSE_UNAUTHORISED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
SESSION_RECHECK_SECONDS = 30
MAX_WATCHES = 4

Watcher = Callable[[Principal, str], Awaitable[str | None]]
_watchers: dict[str, Watcher] = {}
_csrf: ContextVar[str] = ContextVar("live_csrf", default="")


def watcher(kind: str) -> Callable[[Watcher], Watcher]:
    """Register who may watch `kind:<ref>`: the function returns the topic, or None to refuse."""

    def wrap(fn: Watcher) -> Watcher:
        _watchers[kind] = fn
        return fn

    return wrap


async def watched_topics(p: Principal, values: list[str]) -> set[str]:
    """The extra topics a page asked for and may have; anything unknown or not allowed is ignored."""
    topics: set[str] = set()
    for value in values[:MAX_WATCHES]:
        kind, _, ref = value.partition(":")
        fn = _watchers.get(kind)
        topic = await fn(p, ref) if fn is not None else None
        if topic:
            topics.add(topic)
    return topics


def csrf_token() -> str:
    """The CSRF token of the browser this socket serves, for forms in partials rendered for it."""
    return _csrf.get()


def origin_allowed(socket: WebSocket) -> bool:
    """Refuse cross-site WebSocket hijacking: the page must come from this site."""
    origin = socket.headers.get("origin")
    if not origin:
        return False
    origin = origin.rstrip("/")
    host = socket.headers.get("host", "")
    return origin in {f"http://{host}", f"https://{host}"} or origin in get_settings().allowed_origins


def may_listen(p: object) -> bool:
    if not isinstance(p, Principal):
        return False
    if p.is_staff:
        return p.totp_enabled and p.mfa_passed
    return p.mfa_passed or not p.totp_enabled


@websocket("/live", include_in_schema=False)
async def live(socket: WebSocket) -> None:
    if not origin_allowed(socket):
        await socket.close(code=CLOSE_FORBIDDEN_ORIGIN, reason="origin not allowed")
        return
    p = socket.scope.get("user")
    if not may_listen(p):
        await socket.close(code=CLOSE_UNAUTHORISED, reason="sign in first")
        return
    assert isinstance(p, Principal)
    topics = p.topics() | await watched_topics(p, socket.query_params.getall("watch", []))
    csrf = socket.app.csrf_config
    _csrf.set(socket.cookies.get(csrf.cookie_name, "") if csrf else "")
    queue = hub.subscribe(topics)  # before accept: no event can fall between the two
    try:
        await socket.accept()
    except Exception:
        hub.unsubscribe(queue)
        raise

    async def drain_incoming() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await socket.receive_data(mode="text")

    async def forward() -> None:
        # Recheck on a clock, not only when the channel is quiet: a busy topic must not keep
        # an expired session's socket open.
        loop = asyncio.get_running_loop()
        recheck_at = loop.time() + SESSION_RECHECK_SECONDS
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=max(0.0, recheck_at - loop.time()))
            except TimeoutError:
                event = None
            if loop.time() >= recheck_at:
                if not await sessions.is_alive(p.session_id):
                    return
                recheck_at = loop.time() + SESSION_RECHECK_SECONDS
            if event is None:
                continue
            if event.type == "session.ended":
                return
            if event.type.startswith("client_page.") and event.origin == p.session_id:
                continue  # this browser's own change: its response already showed it
            for html in await render_for(p, event):
                await socket.send_text(html)

    reader = asyncio.create_task(drain_incoming())
    writer = asyncio.create_task(forward())
    try:
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unsubscribe(queue)
        for t in (reader, writer):
            t.cancel()
        with contextlib.suppress(Exception):
            await socket.close(code=CLOSE_UNAUTHORISED if writer.done() else 1000)
