"""One durable pull consumer at work: fetching, handling with in-progress heartbeats, retrying with backoff,
waiting out unreachable dependencies, and ending poison messages visibly."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import nats
import structlog
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig
from nats.js.client import JetStreamContext
from opentelemetry import propagate, trace
from pydantic import ValidationError

from shared.db import unreachable
from shared.errors import Unavailable
from shared.events import AnyEvent, parse_event

log = structlog.get_logger("bus")
tracer = trace.get_tracer("agentport.bus")

EventHandler = Callable[[AnyEvent], Awaitable[None]]
PoisonHandler = Callable[[AnyEvent, BaseException], Awaitable[None]]

# A message whose handler fails this many times for a reason other than an unreachable dependency is poison:
# it is ended (with a clear outcome where the consumer knows one) instead of being redelivered forever.
MAX_FAILED_DELIVERIES = 8


class RetryLater(Exception):
    """A handler cannot act yet (another worker holds the work); the event is redelivered after a delay."""


@dataclass
class Consumer:
    """A running durable pull consumer: how it handles messages; `stop()` lets in-flight handlers finish."""

    durable: str
    config: ConsumerConfig
    handler: EventHandler
    concurrency: int = 1
    ack_wait: float = 30.0
    on_poison: PoisonHandler | None = None
    backoff: float = 0.2
    sub: JetStreamContext.PullSubscription | None = None
    healthy: bool = True
    task: asyncio.Task[None] | None = None
    inflight: set[asyncio.Task[None]] = field(default_factory=set)
    processed_seq: int = 0
    processed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.inflight:
            await asyncio.gather(*self.inflight, return_exceptions=True)
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()

    async def wait_for_seq(self, seq: int, timeout: float) -> bool:
        """Wait until this consumer has handled the stream sequence `seq` (read-your-writes)."""

        async def reached() -> None:
            async with self.processed:
                await self.processed.wait_for(lambda: self.processed_seq >= seq)

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self, connected: Callable[[], bool], repair: Callable[[], Awaitable[None]]) -> None:
        """Fetch and handle messages until stopped; after failed fetches, `repair` (a lost store) once connected."""
        consumer = self
        slots = asyncio.Semaphore(self.concurrency)
        failures = 0
        while True:
            # One message per pull: a batched pull holds the first message back while it waits for more,
            # delaying it and (past ack_wait) getting it redelivered while still unhandled.
            await slots.acquire()
            slots.release()
            try:
                assert consumer.sub is not None
                msgs = await consumer.sub.fetch(1, timeout=5)
                failures = 0
                consumer.healthy = True
            except NatsTimeout:
                failures = 0
                consumer.healthy = connected()
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                consumer.healthy = False
                # Said once per outage, not twice a second: the repair below says what it did.
                if failures == 1:
                    log.warning("bus.fetch_failed", consumer=consumer.durable, error=str(exc) or type(exc).__name__)
                await asyncio.sleep(min(0.5 * failures, 5.0))
                if connected():
                    await repair()
                continue
            for msg in msgs:
                await slots.acquire()
                task = asyncio.create_task(self._handle(msg, slots))
                consumer.inflight.add(task)
                task.add_done_callback(consumer.inflight.discard)
                if self.concurrency == 1:
                    await asyncio.shield(task)

    async def _handle(self, msg: Msg, slots: asyncio.Semaphore) -> None:
        consumer, backoff = self, self.backoff
        event: AnyEvent | None = None
        try:
            try:
                event = parse_event(msg.data)
            except ValidationError as exc:
                log.error("bus.undecodable_event", consumer=consumer.durable, subject=msg.subject, error=str(exc))
                await msg.term()
                return
            ctx = propagate.extract(dict(msg.headers or {}))
            with tracer.start_as_current_span(f"handle {event.type}", context=ctx) as span:
                span.set_attribute("agentport.consumer", consumer.durable)
                heartbeat = asyncio.create_task(_keep_in_progress(msg, self.ack_wait))
                try:
                    await self.handler(event)
                finally:
                    heartbeat.cancel()
            await msg.ack()
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        except RetryLater as later:
            delivered = msg.metadata.num_delivered if msg.metadata else 1
            log.info("bus.retry_later", consumer=consumer.durable, reason=str(later), attempt=delivered)
            with contextlib.suppress(Exception):
                await msg.nak(delay=min(0.5 * delivered, 5.0))
        except Exception as exc:
            delivered = msg.metadata.num_delivered if msg.metadata else 1
            if is_transient(exc):
                # NATS or PostgreSQL is unreachable: not this message's fault; retried for as long as it takes.
                log.warning(
                    "bus.handler_waiting",
                    consumer=consumer.durable,
                    subject=msg.subject,
                    attempt=delivered,
                    error=type(exc).__name__,
                )
                with contextlib.suppress(Exception):
                    await msg.nak(delay=min(backoff * 2**delivered, 5.0))
            elif delivered >= MAX_FAILED_DELIVERIES and event is not None:
                await self._end_poison(msg, event, exc)
            else:
                log.exception("bus.handler_failed", consumer=consumer.durable, subject=msg.subject, attempt=delivered)
                with contextlib.suppress(Exception):
                    await msg.nak(delay=min(backoff * 2**delivered, 30.0))
            del exc
        finally:
            slots.release()
            seq = msg.metadata.sequence.stream if msg.metadata else 0
            async with consumer.processed:
                consumer.processed_seq = max(consumer.processed_seq, seq)
                consumer.processed.notify_all()

    async def _end_poison(self, msg: Msg, event: AnyEvent, exc: BaseException) -> None:
        """End a message that failed MAX_FAILED_DELIVERIES times: give it a visible outcome, then stop redelivery."""
        log.error(
            "bus.poison_message_ended",
            consumer=self.durable,
            subject=msg.subject,
            event_id=event.event_id,
            call_id=event.call_id,
            error=f"{type(exc).__name__}: {str(exc)[:300]}",
        )
        if self.on_poison is not None:
            try:
                await self.on_poison(event, exc)
            except Exception:
                log.exception("bus.poison_outcome_failed", consumer=self.durable, event_id=event.event_id)
                with contextlib.suppress(Exception):
                    await msg.nak(delay=30.0)
                return
        with contextlib.suppress(Exception):
            await msg.term()


def is_transient(exc: BaseException) -> bool:
    """Whether a handler failed because NATS or PostgreSQL is unreachable, not because of its message."""
    if isinstance(exc, OSError | TimeoutError | Unavailable | nats.errors.Error) or unreachable(exc):
        return True
    return exc.__cause__ is not None and is_transient(exc.__cause__)


async def _keep_in_progress(msg: Msg, ack_wait: float) -> None:
    """Tell the server a long handler is still working, so the message is not redelivered meanwhile."""
    while True:
        await asyncio.sleep(max(ack_wait / 3, 0.5))
        with contextlib.suppress(Exception):
            await msg.in_progress()


def only(event_types: frozenset[str], handler: EventHandler) -> EventHandler:
    """Skip (and so ack) events a consumer did not ask for, for servers that cannot filter them."""

    async def filtered(event: AnyEvent) -> None:
        if event.type in event_types:
            await handler(event)

    return filtered
