"""A few seconds of per-process memory for hot reads, forgotten in every process on change.

For data read on nearly every request of a portal (a client's summary, say). Whoever changes the
data calls `forget(key)` inside the transaction making the change: this process forgets at once
(and again after commit), and the other web processes forget when the live channel delivers
the notification, which PostgreSQL sends on commit. If a notification were ever lost, nothing
stays stale for longer than the time-to-live.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

from app.core import db, live

V = TypeVar("V")

_all: list[SharedCache[Any]] = []


class SharedCache(Generic[V]):
    def __init__(self, name: str, ttl: float, max_entries: int = 20_000) -> None:
        self.topic = f"cache:{name}"
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._inflight: dict[Hashable, asyncio.Future[V]] = {}
        self._generation = 0
        live.hub.on_system_topic(self.topic, lambda event: self.forget_local(event.ids.get("key")))
        _all.append(self)

    async def get(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        pending = self._inflight.get(key)
        if pending is not None:  # someone is loading this key already: share their answer
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        generation = self._generation
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        else:
            future.set_result(value)
        finally:
            self._inflight.pop(key, None)
        if generation == self._generation:  # nothing was forgotten while loading
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), value)
        return value

    def forget_local(self, key: Hashable | None = None) -> None:
        """Forget one key (None: everything) in this process."""
        self._generation += 1
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)

    async def forget(self, key: Hashable) -> None:
        """Inside the changing transaction: every process forgets `key` (a JSON-able value)."""
        self.forget_local(key)

        async def again() -> None:  # a read between the change and its commit may have re-remembered
            self.forget_local(key)

        db.after_commit(again)
        await live.publish(self.topic, "cache.forget", key=key)


def forget_all() -> None:
    """Every cache in this process (e.g. when it switches databases)."""
    for cache in _all:
        cache.forget_local()
