"""`/ui/approvals`: the pending queue, kept current by server-sent events, and the latest decisions."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from services.approvals import requests
from services.approvals.web.render import page
from services.approvals.web.viewer import viewer

RECENT = 20
PENDING_MAX = 500


async def pending_and_recent(pool: asyncpg.Pool, org_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    pending = await pool.fetch(
        """SELECT * FROM requests WHERE org_id=$1 AND status='pending' AND expires_at > now()
           ORDER BY created_at LIMIT $2""",
        org_id,
        PENDING_MAX,
    )
    recent = await pool.fetch(
        """SELECT * FROM requests WHERE org_id=$1 AND status <> 'pending' ORDER BY decided_at DESC NULLS LAST
           LIMIT $2""",
        org_id,
        RECENT,
    )
    return [requests.public_view(r) for r in pending], [requests.public_view(r) for r in recent]


class QueuePage:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/ui/approvals", self.show), web.get("/ui/approvals/rows", self.rows)]

    async def show(self, request: web.Request) -> web.Response:
        user = viewer(request).signed_in()
        pending, recent = await pending_and_recent(self.pool, user.org_id)
        return page(request, "queue.html", pending=pending, recent=recent)

    async def rows(self, request: web.Request) -> web.Response:
        """The queue's rows alone, fetched by the page when an event says something changed."""
        user = viewer(request).signed_in()
        pending, recent = await pending_and_recent(self.pool, user.org_id)
        return page(request, "queue_rows.html", pending=pending, recent=recent)
