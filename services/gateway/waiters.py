"""Wake requests waiting on a call or an install when its event arrives on the bus.

Every gateway replica hears every event, so the replica holding a wait need not be the one that
published or decided anything. Recent events are kept briefly so a waiter that registers just
after its event arrived still sees it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from shared.events import (
    AnyEvent,
    ApprovalRequested,
    CallCoalesced,
    CallDenied,
    CallExpired,
    IntegrationRefreshFailed,
    IntegrationToolsRefreshed,
)

RECENT_SECONDS = 120.0
RECENT_MAX = 20_000


def keys_of(event: AnyEvent) -> list[str]:
    """The keys a waiter can watch for this event: its call, its approval request, its install."""
    keys: list[str] = []
    if event.call_id:
        keys.append(f"call:{event.call_id}")
    if isinstance(event, ApprovalRequested | CallDenied | CallExpired | CallCoalesced) and event.request_id:
        keys.append(f"request:{event.request_id}")
    if isinstance(event, IntegrationToolsRefreshed | IntegrationRefreshFailed) and event.request_id:
        keys.append(f"install:{event.request_id}")
    return keys


class Watch:
    """Events for one key, in arrival order."""

    def __init__(self, backlog: list[AnyEvent]) -> None:
        self.queue: asyncio.Queue[AnyEvent] = asyncio.Queue()
        for event in backlog:
            self.queue.put_nowait(event)

    async def next(self, timeout: float) -> AnyEvent | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class Waiters:
    def __init__(self) -> None:
        self._watches: dict[str, set[Watch]] = {}
        self._recent: OrderedDict[str, list[tuple[float, AnyEvent]]] = OrderedDict()

    async def on_event(self, event: AnyEvent) -> None:
        now = time.monotonic()
        for key in keys_of(event):
            self._recent.setdefault(key, []).append((now, event))
            self._recent.move_to_end(key)
            for watch in self._watches.get(key, ()):
                watch.queue.put_nowait(event)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._recent and (len(self._recent) > RECENT_MAX or self._oldest_age(now) > RECENT_SECONDS):
            self._recent.popitem(last=False)

    def _oldest_age(self, now: float) -> float:
        first = next(iter(self._recent.values()))
        return now - first[-1][0]

    def recent(self, key: str) -> list[AnyEvent]:
        return [event for _, event in self._recent.get(key, [])]

    @contextmanager
    def watch(self, key: str) -> Iterator[Watch]:
        """Watch a key; events already seen recently are delivered first."""
        watch = Watch(self.recent(key))
        self._watches.setdefault(key, set()).add(watch)
        try:
            yield watch
        finally:
            watchers = self._watches.get(key)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._watches[key]
