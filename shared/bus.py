"""The one place that talks to NATS: the event stream, durable consumers, commands and key-value."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue
from opentelemetry import propagate, trace
from pydantic import ValidationError

from shared.errors import AgentPortError, Unavailable, error_from_body
from shared.events import AnyEvent, Event, encode_event, parse_event

log = structlog.get_logger("bus")
tracer = trace.get_tracer("agentport.bus")

EventHandler = Callable[[AnyEvent], Awaitable[None]]
CommandHandler = Callable[[dict[str, Any]], Awaitable[Any]]

DUPLICATE_WINDOW_SECONDS = 120.0


class RetryLater(Exception):
    """A handler cannot act yet (another worker holds the work); the event is redelivered after a delay."""


@dataclass
class Consumer:
    """A running durable pull consumer; `stop()` lets in-flight handlers finish."""

    durable: str
    sub: JetStreamContext.PullSubscription
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


class Bus:
    """Connection to NATS scoped to one namespace (subject prefix and stream name)."""

    def __init__(self, nc: NATS, namespace: str) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.namespace = namespace
        self.stream = f"{namespace.upper()}_EVENTS"

    @classmethod
    async def connect(cls, url: str, namespace: str, name: str, *, wait_seconds: float = 30.0) -> Bus:
        """Connect (retrying while the server starts) and make sure the event stream exists."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            try:
                nc = await nats.connect(
                    url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=2
                )
                break
            except Exception as exc:
                if loop.time() > deadline:
                    raise Unavailable(f"cannot reach NATS at {url}: {exc}") from exc
                await asyncio.sleep(0.5)
        bus = cls(nc, namespace)
        await bus.ensure_stream()
        return bus

    async def ensure_stream(self) -> None:
        """Create the event stream on first use; events are kept, and retried publishes deduplicated."""
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.namespace}.>"],
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )
        try:
            await self.js.stream_info(self.stream)
        except NotFoundError:
            with contextlib.suppress(BadRequestError):
                await self.js.add_stream(config)

    @property
    def supports_multi_filter(self) -> bool:
        """NATS 2.10 added consumers filtered on several subjects; older servers ignore the filter."""
        version = str((self.nc._server_info or {}).get("version", "0"))
        try:
            major, minor = (int(part) for part in version.split(".")[:2])
        except ValueError:
            return False
        return (major, minor) >= (2, 10)

    def subject(self, event_type: str) -> str:
        """The subject an event type is published on."""
        return f"{self.namespace}.{event_type}"

    def command_subject(self, name: str) -> str:
        return f"_{self.namespace}_cmd.{name}"

    async def publish(self, event: Event) -> int:
        """Publish an event once (deduplicated by `event_id`); returns its stream sequence."""
        headers = {"Nats-Msg-Id": event.event_id, "AP-Type": event.type}
        propagate.inject(headers)
        ack = await self.js.publish(self.subject(event.type), encode_event(event), headers=headers)
        return int(ack.seq)

    async def publish_all(self, events: Sequence[Event]) -> int:
        """Publish events in order; returns the last sequence."""
        seq = 0
        for event in events:
            seq = await self.publish(event)
        return seq

    async def consume(
        self,
        durable: str,
        event_types: Sequence[str],
        handler: EventHandler,
        *,
        concurrency: int = 1,
        ack_wait: float = 30.0,
        deliver_new: bool = False,
    ) -> Consumer:
        """Run a durable pull consumer; a handler that raises is retried with backoff."""
        durable = f"{self.namespace}_{durable}"
        subjects = [self.subject(t) for t in event_types]
        multi_filter = len(subjects) > 1 and self.supports_multi_filter
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_ack_pending=max(concurrency * 4, 16),
            deliver_policy=DeliverPolicy.NEW if deliver_new else DeliverPolicy.ALL,
            filter_subjects=subjects if multi_filter else None,
            filter_subject=subjects[0] if len(subjects) == 1 else None,
        )
        try:
            info = await self.js.consumer_info(self.stream, durable)
            current = set(info.config.filter_subjects or [info.config.filter_subject or ""])
            wanted = set(config.filter_subjects or [config.filter_subject or ""])
            if current != wanted:
                # Updated in place: recreating it would replay the whole stream to this consumer.
                await self.js.add_consumer(self.stream, config)
                log.info("bus.consumer_updated", consumer=durable, subjects=sorted(wanted))
        except NotFoundError:
            with contextlib.suppress(BadRequestError):
                await self.js.add_consumer(self.stream, config)
        wanted_types = None if ">" in event_types else frozenset(event_types)
        if wanted_types is not None:
            handler = _only(wanted_types, handler)
        sub = await self.js.pull_subscribe_bind(durable=durable, stream=self.stream)
        consumer = Consumer(durable=durable, sub=sub)
        consumer.task = asyncio.create_task(
            self._pull_loop(sub, consumer, handler, concurrency, ack_wait), name=f"consume:{durable}"
        )
        return consumer

    async def _pull_loop(
        self,
        sub: JetStreamContext.PullSubscription,
        consumer: Consumer,
        handler: EventHandler,
        concurrency: int,
        ack_wait: float,
    ) -> None:
        slots = asyncio.Semaphore(concurrency)
        while True:
            # One message per pull: a batched pull holds the first message back while it waits for more,
            # delaying it and (past ack_wait) getting it redelivered while still unhandled.
            await slots.acquire()
            slots.release()
            try:
                msgs = await sub.fetch(1, timeout=5)
            except NatsTimeout:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("bus.fetch_failed", consumer=consumer.durable, error=str(exc))
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                await slots.acquire()
                task = asyncio.create_task(self._handle(msg, consumer, handler, slots, ack_wait))
                consumer.inflight.add(task)
                task.add_done_callback(consumer.inflight.discard)
                if concurrency == 1:
                    await asyncio.shield(task)

    async def _handle(
        self,
        msg: Msg,
        consumer: Consumer,
        handler: EventHandler,
        slots: asyncio.Semaphore,
        ack_wait: float,
    ) -> None:
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
                heartbeat = asyncio.create_task(_keep_in_progress(msg, ack_wait))
                try:
                    await handler(event)
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
            log.exception("bus.handler_failed", consumer=consumer.durable, subject=msg.subject, attempt=delivered)
            with contextlib.suppress(Exception):
                await msg.nak(delay=min(0.2 * 2**delivered, 30.0))
            del exc
        finally:
            slots.release()
            seq = msg.metadata.sequence.stream if msg.metadata else 0
            async with consumer.processed:
                consumer.processed_seq = max(consumer.processed_seq, seq)
                consumer.processed.notify_all()

    async def listen(self, event_types: Sequence[str], handler: EventHandler) -> Subscription:
        """Receive live events without a durable consumer (for in-process waiters); nothing is acked."""

        async def on_msg(msg: Msg) -> None:
            try:
                event = parse_event(msg.data)
            except ValidationError:
                return
            try:
                await handler(event)
            except Exception:
                log.exception("bus.listener_failed", subject=msg.subject)

        if len(event_types) == 1 and event_types[0] != "*":
            return await self.nc.subscribe(self.subject(event_types[0]), cb=on_msg)
        wanted = None if "*" in event_types else set(event_types)

        async def filtered(msg: Msg) -> None:
            if wanted is None or msg.subject.removeprefix(f"{self.namespace}.") in wanted:
                await on_msg(msg)

        return await self.nc.subscribe(f"{self.namespace}.>", cb=filtered)

    async def serve(self, name: str, handler: CommandHandler) -> Subscription:
        """Answer a command (request/reply, load-balanced across replicas)."""

        async def on_msg(msg: Msg) -> None:
            try:
                payload = json.loads(msg.data)
                data = await handler(payload)
                body: dict[str, Any] = {"ok": True, "data": data}
            except AgentPortError as exc:
                body = {"ok": False, "status": exc.status, **exc.to_body()}
            except Exception:
                log.exception("bus.command_failed", command=name)
                body = {
                    "ok": False,
                    "status": 500,
                    "error": {"code": "internal", "message": "internal error"},
                }
            await msg.respond(json.dumps(body, default=str).encode())

        return await self.nc.subscribe(self.command_subject(name), queue=f"{self.namespace}_{name}", cb=on_msg)

    async def request(self, name: str, payload: dict[str, Any], *, timeout: float = 10.0) -> Any:
        """Send a command and return its answer, raising the service's error as ours."""
        headers: dict[str, str] = {}
        propagate.inject(headers)
        try:
            msg = await self.nc.request(
                self.command_subject(name),
                json.dumps(payload, default=str).encode(),
                timeout=timeout,
                headers=headers,
            )
        except (NatsTimeout, nats.errors.NoRespondersError) as exc:
            service = name.split(".", 1)[0]
            raise Unavailable(f"the {service} service did not answer; is it running?") from exc
        body = json.loads(msg.data)
        if body.get("ok"):
            return body.get("data")
        raise error_from_body(body)

    async def kv(self, bucket: str) -> KeyValue:
        """A key-value bucket in this namespace, created on first use."""
        name = f"{self.namespace}_{bucket}"
        try:
            return await self.js.key_value(name)
        except (NotFoundError, BadRequestError):
            return await self.js.create_key_value(KeyValueConfig(bucket=name))

    async def close(self) -> None:
        """Drain what is in flight (briefly), then close; consumers are already stopped by now."""
        if self.nc.is_closed:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.drain(), 3.0)
        with contextlib.suppress(Exception):
            await self.nc.close()


async def _keep_in_progress(msg: Msg, ack_wait: float) -> None:
    """Tell the server a long handler is still working, so the message is not redelivered meanwhile."""
    while True:
        await asyncio.sleep(max(ack_wait / 3, 0.5))
        with contextlib.suppress(Exception):
            await msg.in_progress()


def _only(event_types: frozenset[str], handler: EventHandler) -> EventHandler:
    """Skip (and so ack) events a consumer did not ask for, for servers that cannot filter them."""

    async def filtered(event: AnyEvent) -> None:
        if event.type in event_types:
            await handler(event)

    return filtered
