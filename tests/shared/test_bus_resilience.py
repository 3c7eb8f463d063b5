"""The bus under faults: poison messages end, outages are waited out, a lost NATS store is re-created."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from shared.bus import Bus, StreamPolicy
from shared.consumers import MAX_FAILED_DELIVERIES
from shared.errors import PayloadTooLarge
from shared.events import AnyEvent, OrgCreated
from tests.support.faults import OwnServer
from tests.support.upstream import free_port


def _namespace() -> str:
    return "bus" + secrets.token_hex(4)


async def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def bus(infra: dict[str, str]) -> AsyncIterator[Bus]:
    b = await Bus.connect(infra["NATS_URL"], _namespace(), "test-bus", policy=StreamPolicy(max_age=3600))
    yield b
    await b.js.delete_stream(b.stream)
    await b.close()


@pytest.fixture
async def own_nats(tmp_path: Path) -> AsyncIterator[OwnServer]:
    server = OwnServer("nats", tmp_path / "nats-server", port=free_port())
    await server.start()
    yield server
    await server.stop()


async def test_a_message_that_keeps_failing_is_ended_once_with_its_outcome(bus: Bus) -> None:
    attempts: list[str] = []
    poisoned: list[tuple[str, str]] = []

    async def broken(event: AnyEvent) -> None:
        attempts.append(event.event_id)
        raise ValueError("this handler cannot take this event")

    async def on_poison(event: AnyEvent, exc: BaseException) -> None:
        poisoned.append((event.event_id, type(exc).__name__))

    consumer = await bus.consume("poison", ("org.created",), broken, on_poison=on_poison, backoff=0.01)
    try:
        event = OrgCreated(org_id="org-p", name="poison")
        await bus.publish(event)
        await _wait(lambda: bool(poisoned), 30, "the poison outcome")
        await asyncio.sleep(1.0)  # a redelivery after the end would show here
        assert poisoned == [(event.event_id, "ValueError")]
        assert len(attempts) == MAX_FAILED_DELIVERIES
    finally:
        await consumer.stop()


async def test_a_handler_waiting_for_an_unreachable_database_is_never_ended(bus: Bus) -> None:
    attempts: list[int] = []
    poisoned: list[str] = []

    async def flaky(event: AnyEvent) -> None:
        attempts.append(1)
        if len(attempts) <= MAX_FAILED_DELIVERIES + 2:
            raise ConnectionRefusedError("PostgreSQL is down")

    async def on_poison(event: AnyEvent, exc: BaseException) -> None:
        poisoned.append(event.event_id)

    consumer = await bus.consume("transient", ("org.created",), flaky, on_poison=on_poison, backoff=0.001)
    try:
        await bus.publish(OrgCreated(org_id="org-t", name="transient"))
        await _wait(lambda: len(attempts) == MAX_FAILED_DELIVERIES + 3, 60, "the handler to succeed")
        assert poisoned == []
    finally:
        await consumer.stop()


async def test_an_event_larger_than_the_server_carries_is_refused_with_413(bus: Bus) -> None:
    huge = OrgCreated(org_id="org-h", name="x" * (bus.nc.max_payload + 10))
    with pytest.raises(PayloadTooLarge) as refused:
        await bus.publish(huge)
    assert refused.value.status == 413
    assert "bytes" in refused.value.message


async def test_the_stream_is_created_with_the_configured_retention_and_updated_when_it_changes(bus: Bus) -> None:
    info = await bus.js.stream_info(bus.stream)
    assert info.config.max_age == 3600
    assert info.config.max_bytes == StreamPolicy().max_bytes
    again = await Bus.connect(
        f"{bus.nc.connected_url.scheme}://{bus.nc.connected_url.netloc}",
        bus.namespace,
        "test-bus-2",
        policy=StreamPolicy(max_age=60, max_bytes=10_000_000),
    )
    try:
        info = await again.js.stream_info(bus.stream)
        assert (info.config.max_age, info.config.max_bytes) == (60, 10_000_000)
    finally:
        await again.close()


async def test_a_publish_during_a_nats_outage_is_stored_once_when_nats_is_back(own_nats: OwnServer) -> None:
    bus = await Bus.connect(own_nats.url, _namespace(), "outage", policy=StreamPolicy(publish_retry=60))
    try:
        await own_nats.stop()
        event = OrgCreated(org_id="org-o", name="outage")
        publishing = asyncio.create_task(bus.publish(event))
        await asyncio.sleep(6)  # longer than one publish attempt's timeout: the old publish gave up here
        assert not publishing.done()
        await own_nats.start()
        seq = await asyncio.wait_for(publishing, 60)
        info = await bus.js.stream_info(bus.stream)
        assert info.state.messages == 1
        assert seq == info.state.last_seq
    finally:
        await bus.close()


async def test_a_lost_nats_store_is_noticed_and_the_stream_and_consumers_recreated(own_nats: OwnServer) -> None:
    bus = await Bus.connect(own_nats.url, _namespace(), "store-loss")
    seen: list[str] = []
    resets: list[int] = []

    async def on_event(event: AnyEvent) -> None:
        seen.append(event.event_id)

    async def on_reset() -> None:
        resets.append(1)

    bus.on_reset.append(on_reset)
    consumer = await bus.consume("survivor", ("org.created",), on_event)
    try:
        first = OrgCreated(org_id="org-1", name="before")
        await bus.publish(first)
        await _wait(lambda: first.event_id in seen, 20, "the first event")
        await own_nats.stop()
        own_nats.lose_store()
        await own_nats.start()
        await _wait(lambda: bus.nc.is_connected, 30, "the reconnect")
        # The consumer's failed fetches repair the stream and the consumer on their own.
        await _wait(lambda: bool(resets), 30, "the stream to be re-created")
        assert resets == [1]
        second = OrgCreated(org_id="org-2", name="after")
        await bus.publish(second)
        await _wait(lambda: second.event_id in seen, 30, "an event after the store was lost")
        assert consumer.healthy
        assert bus.stream_ok
    finally:
        await consumer.stop()
        await bus.close()
