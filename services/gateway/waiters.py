"""Wake requests waiting on a call or an install when its event arrives on the bus.

Every gateway replica hears every event, so the replica holding a wait need not be the one that
published or decided anything. Recent events are kept briefly so a waiter that registers just
after its event arrived still sees it.

A key always starts with the org the event belongs to: a waiter (or a look at the recent events) names
its own org, so it can never see another org's events, whatever id it was given.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

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

Kind = Literal["call", "request", "install"]
Key = tuple[str, Kind, str]
"""(org_id, kind, id): what a waiter watches."""


def keys_of(event: AnyEvent) -> list[Key]:
    """The keys a waiter can watch for this event: its call, its approval request, its install, in its org."""
    org = event.org_id
    keys: list[Key] = []
    if event.call_id:
        keys.append((org, "call", event.call_id))
    if isinstance(event, ApprovalRequested | CallDenied | CallExpired | CallCoalesced) and event.request_id:
        keys.append((org, "request", event.request_id))
    if isinstance(event, IntegrationToolsRefreshed | IntegrationRefreshFailed) and event.request_id:
        keys.append((org, "install", event.request_id))
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
        self._watches: dict[Key, set[Watch]] = {}
        self._recent: OrderedDict[Key, list[tuple[float, AnyEvent]]] = OrderedDict()

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

    def recent(self, org_id: str, kind: Kind, ident: str) -> list[AnyEvent]:
        """The org's events seen lately for this call, request or install, oldest first."""
        return [event for _, event in self._recent.get((org_id, kind, ident), [])]

    @contextmanager
    def watch(self, org_id: str, kind: Kind, ident: str) -> Iterator[Watch]:
        """Watch the org's events for one call, request or install; events already seen recently come first."""
        key: Key = (org_id, kind, ident)
        watch = Watch(self.recent(org_id, kind, ident))
        self._watches.setdefault(key, set()).add(watch)
        try:
            yield watch
        finally:
            watchers = self._watches.get(key)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._watches[key]
