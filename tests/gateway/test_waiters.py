"""Waiters wake on the events of their call, including ones that arrived just before they registered."""

import asyncio

from services.gateway.waiters import Waiters
from shared.events import CallFailed


async def test_an_event_wakes_its_watcher() -> None:
    waiters = Waiters()
    with waiters.watch("call:c1") as watch:
        asyncio.get_running_loop().call_later(
            0.01,
            lambda: asyncio.ensure_future(
                waiters.on_event(CallFailed(org_id="o", call_id="c1", error_code="x", message="m"))
            ),
        )
        event = await watch.next(2)
    assert event is not None and event.call_id == "c1"


async def test_an_event_seen_before_registering_is_not_missed() -> None:
    waiters = Waiters()
    await waiters.on_event(CallFailed(org_id="o", call_id="c2", error_code="x", message="m"))
    with waiters.watch("call:c2") as watch:
        assert (await watch.next(0.1)) is not None


async def test_other_calls_do_not_wake_a_watcher() -> None:
    waiters = Waiters()
    with waiters.watch("call:c3") as watch:
        await waiters.on_event(CallFailed(org_id="o", call_id="other", error_code="x", message="m"))
        assert await watch.next(0.05) is None
