"""The live queue: approval events heard on the bus, pushed to each org's open pages as server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict

from aiohttp import web

from services.approvals.web.viewer import viewer
from shared.events import AnyEvent, ApprovalDecided, ApprovalRequested

LIVE_EVENTS = ("approval.requested", "approval.decided")
KEEPALIVE_SECONDS = 15.0
QUEUE_SIZE = 256


class LiveFeed:
    """Fans out approval events to the browsers of the event's org (any replica hears every event)."""

    def __init__(self, stopping: asyncio.Event) -> None:
        self.stopping = stopping
        self.subscribers: dict[str, set[asyncio.Queue[str]]] = defaultdict(set)

    async def on_event(self, event: AnyEvent) -> None:
        if not isinstance(event, ApprovalRequested | ApprovalDecided):
            return
        payload = {"type": event.type, "request_id": event.request_id, "call_id": event.call_id}
        if isinstance(event, ApprovalDecided):
            payload["decision"] = event.decision
        message = f"event: approval\ndata: {json.dumps(payload)}\n\n"
        for queue in list(self.subscribers.get(event.org_id, ())):
            with contextlib.suppress(asyncio.QueueFull):  # A stalled browser misses events; it reloads rows.
                queue.put_nowait(message)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /ui/events: an event stream of the viewer's org until the browser leaves."""
        user = viewer(request).signed_in()
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self.subscribers[user.org_id].add(queue)
        try:
            await response.write(b"retry: 2000\n: connected\n\n")
            while not self.stopping.is_set():
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    message = ": keep-alive\n\n"
                await response.write(message.encode())
        except ConnectionResetError:
            pass
        finally:
            self.subscribers[user.org_id].discard(queue)
        return response
