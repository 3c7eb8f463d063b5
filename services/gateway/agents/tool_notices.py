"""Telling connected agents that their tools changed (`notifications/tools/list_changed`).

Every gateway replica hears every event on the bus, so the replica that holds an agent's open stream is the one
that tells it, with no sticky routing. `/mcp` is stateless, so there is no standing GET stream:

* 2026-07-28 clients open a `subscriptions/listen` stream (served here per org) and get the notice on it;
* older clients get it on whichever of their requests is open when the change happens (a waiting
  `call_tool` or `await_approval`); between requests they learn of changes on their next listing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import mcp_types as types
from mcp.server.subscriptions import ListenHandler, ServerEvent, ToolsListChanged

from shared.events import AnyEvent

NOTICE_TYPES = frozenset({"integration.installed", "integration.removed", "integration.tools_refreshed"})
Listener = Callable[[], None]


class _OrgSubscriptions:
    """The SDK's listen handler sees one org's changes through this (its `SubscriptionBus` seam)."""

    def __init__(self, notices: ToolNotices, org_id: str) -> None:
        self.notices = notices
        self.org_id = org_id

    async def publish(self, event: ServerEvent) -> None:
        self.notices.notify(self.org_id)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        return self.notices.subscribe(self.org_id, lambda: listener(ToolsListChanged()))


class ToolNotices:
    def __init__(self) -> None:
        self._listeners: dict[str, dict[object, Listener]] = {}

    async def on_event(self, event: AnyEvent) -> None:
        """A live event from the bus: a change to an org's installed set or tools reaches its open streams."""
        if event.type in NOTICE_TYPES:
            self.notify(event.org_id)

    def notify(self, org_id: str) -> None:
        for listener in list(self._listeners.get(org_id, {}).values()):
            listener()

    def subscribe(self, org_id: str, listener: Listener) -> Callable[[], None]:
        """Call `listener` on each change of the org's tools until the returned function is called."""
        token = object()
        self._listeners.setdefault(org_id, {})[token] = listener

        def unsubscribe() -> None:
            listeners = self._listeners.get(org_id)
            if listeners is not None:
                listeners.pop(token, None)
                if not listeners:
                    del self._listeners[org_id]

        return unsubscribe

    def listen_handler(self, org_id: str) -> ListenHandler:
        """A `subscriptions/listen` handler that sees only this org's changes."""
        return ListenHandler(_OrgSubscriptions(self, org_id))

    @contextlib.contextmanager
    def during_request(self, org_id: str, session: Any, request_id: Any) -> Iterator[None]:
        """While one request of an older client is open, send it the org's tool-list changes on its stream."""
        sending: set[asyncio.Task[None]] = set()

        async def send() -> None:
            with contextlib.suppress(Exception):
                await session.send_notification(types.ToolListChangedNotification(), related_request_id=request_id)

        def on_change() -> None:
            task = asyncio.create_task(send())
            sending.add(task)
            task.add_done_callback(sending.discard)

        unsubscribe = self.subscribe(org_id, on_change)
        try:
            yield
        finally:
            unsubscribe()
            for task in sending:
                task.cancel()
