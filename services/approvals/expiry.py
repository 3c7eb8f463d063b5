"""The expiry clock: pending requests past their window end as `expired`."""

from __future__ import annotations

import asyncio

from services.approvals.handlers import ApprovalHandlers


async def run_expiry(handlers: ApprovalHandlers, interval: float) -> None:
    """Sweep forever; a failed sweep is logged and retried on the next tick."""
    while True:
        try:
            await handlers.sweep()
        except Exception:
            handlers.log.exception("approvals.sweep_failed")
        await asyncio.sleep(interval)
