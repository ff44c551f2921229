"""The live channel: PostgreSQL LISTEN/NOTIFY fan-out to the WebSockets of this process.

Services call `publish()` inside their transaction; PostgreSQL delivers the NOTIFY only when
that transaction commits, so no page ever shows a change that was rolled back. Each web process
holds one listening connection and hands events to the sockets whose viewer may see the topic.
Events carry a type and ids, never HTML: each socket renders the partial for its own viewer.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.core.db import DB, current_url

log = logging.getLogger(__name__)

CHANNEL = "fxcrm_live"


@dataclass(frozen=True)
class Event:
    topic: str
    type: str
    ids: dict[str, Any] = field(default_factory=dict)
    origin: int | None = None  # the session whose request caused it (None: a job, the system)


ORIGIN: contextvars.ContextVar[int | None] = contextvars.ContextVar("fxcrm_live_origin", default=None)
"""Set per request by the session middleware, so an event knows which browser caused it: that
browser already has the fresh panel (and its "saved" message) from its own response."""


async def publish(topic: str, type: str, **ids: Any) -> None:
    """Queue an event; delivered when the current transaction commits (at once outside one)."""
    payload = json.dumps({"topic": topic, "type": type, "ids": ids, "origin": ORIGIN.get()}, default=str)
    await DB.run_querystring(_notify(payload))


def _notify(payload: str):
    from piccolo.querystring import QueryString

    return QueryString("SELECT pg_notify({}, {})", CHANNEL, payload)


Renderer = Callable[[Any, Event], Awaitable[str | None]]
_renderers: dict[str, list[Renderer]] = defaultdict(list)


def renderer(event_type: str) -> Callable[[Renderer], Renderer]:
    """Register how an event becomes HTML for one viewer (None: nothing for this viewer)."""

    def wrap(fn: Renderer) -> Renderer:
        _renderers[event_type].append(fn)
        return fn

    return wrap


async def render_for(viewer: Any, event: Event) -> list[str]:
    out: list[str] = []
    for fn in _renderers.get(event.type, []):
        html = await fn(viewer, event)
        if html:
            out.append(html)
    return out


class Hub:
    """One LISTEN connection per process; subscribers get events for their topics."""

    def __init__(self) -> None:
        self._subs: dict[str, set[asyncio.Queue[Event]]] = defaultdict(set)
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._stopping = False
        self._reconnect_task: asyncio.Task[None] | None = None
        self._system: dict[str, list[Callable[[Event], None]]] = defaultdict(list)

    def on_system_topic(self, topic: str, handler: Callable[[Event], None]) -> None:
        """Process-level listeners (e.g. the session cache), not sockets."""
        self._system[topic].append(handler)

    async def start(self) -> None:
        self._stopping = False
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            self._conn = await asyncpg.connect(dsn=current_url())
            await self._conn.add_listener(CHANNEL, self._on_notify)
            self._conn.add_termination_listener(self._on_terminated)

    def _on_terminated(self, _conn: Any) -> None:
        """The LISTEN connection dropped (database restart, network): listen again with back-off."""
        if self._stopping or (self._reconnect_task and not self._reconnect_task.done()):
            return
        log.warning("live channel lost its database connection; reconnecting")
        self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.5
        while not self._stopping:
            try:
                self._conn = None
                await self.start()
                log.info("live channel listening again")
                return
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("live channel reconnect failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        self._stopping = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
            event = Event(
                topic=data["topic"], type=data["type"], ids=data.get("ids") or {}, origin=data.get("origin")
            )
        except (ValueError, KeyError):
            log.warning("ignoring malformed live event %r", payload[:200])
            return
        for handler in self._system.get(event.topic, ()):
            try:
                handler(event)
            except Exception:
                log.exception("system handler for %s failed", event.topic)
        for queue in list(self._subs.get(event.topic, ())):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("live subscriber too slow; dropping %s", event.type)

    def subscribe(self, topics: set[str]) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=1000)
        for t in topics:
            self._subs[t].add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        for topic in list(self._subs):
            self._subs[topic].discard(queue)
            if not self._subs[topic]:
                del self._subs[topic]

    @property
    def connection_count(self) -> int:
        return len({id(q) for qs in self._subs.values() for q in qs})


hub = Hub()


_templates: Any = None


def set_template_engine(engine: Any) -> None:
    global _templates
    _templates = engine


def render_template(name: str, **context: Any) -> str:
    """Render a partial for a socket (no request: such partials must not need one)."""
    if _templates is None:
        raise RuntimeError("template engine not configured")
    return str(_templates.get_template(name).render(**context))
