"""Waiters wake on the events of their call, including ones that arrived just before they registered, and only
on events of their own org."""

import asyncio

from services.gateway.waiters import Waiters
from shared.events import CallFailed


def failed(org_id: str, call_id: str) -> CallFailed:
    return CallFailed(org_id=org_id, call_id=call_id, error_code="x", message="m")


async def test_an_event_wakes_its_watcher() -> None:
    waiters = Waiters()
    with waiters.watch("o", "call", "c1") as watch:
        asyncio.get_running_loop().call_later(0.01, lambda: asyncio.ensure_future(waiters.on_event(failed("o", "c1"))))
        event = await watch.next(2)
    assert event is not None and event.call_id == "c1"


async def test_an_event_seen_before_registering_is_not_missed() -> None:
    waiters = Waiters()
    await waiters.on_event(failed("o", "c2"))
    with waiters.watch("o", "call", "c2") as watch:
        assert (await watch.next(0.1)) is not None


async def test_other_calls_do_not_wake_a_watcher() -> None:
    waiters = Waiters()
    with waiters.watch("o", "call", "c3") as watch:
        await waiters.on_event(failed("o", "other"))
        assert await watch.next(0.05) is None


async def test_another_orgs_event_for_the_same_id_is_never_seen() -> None:
    waiters = Waiters()
    await waiters.on_event(failed("org-a", "c4"))
    assert waiters.recent("org-b", "call", "c4") == []
    with waiters.watch("org-b", "call", "c4") as watch:
        assert await watch.next(0.05) is None
        await waiters.on_event(failed("org-a", "c4"))
        assert await watch.next(0.05) is None
    assert [e.org_id for e in waiters.recent("org-a", "call", "c4")] == ["org-a", "org-a"]
