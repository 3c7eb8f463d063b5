"""The one place that talks to NATS: the event stream, durable consumers, commands and key-value."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nats
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, BadRequestError, NoStreamResponseError, NotFoundError
from nats.js.kv import KeyValue
from opentelemetry import propagate
from pydantic import ValidationError

from shared.consumers import (
    Consumer,
    EventHandler,
    PoisonHandler,
    only,
)
from shared.errors import AgentPortError, PayloadTooLarge, Unavailable, error_from_body
from shared.events import Event, encode_event, parse_event

log = structlog.get_logger("bus")

CommandHandler = Callable[[dict[str, Any]], Awaitable[Any]]

DUPLICATE_WINDOW_SECONDS = 120.0
# Room left in a message for its headers (message id, type, trace context) under the server's max payload.
HEADER_ALLOWANCE = 1024
PUBLISH_ATTEMPT_SECONDS = 2.0


@dataclass(frozen=True)
class StreamPolicy:
    """How the product's streams and buckets are created: retention, replicas, publish retry."""

    max_age: float = 7 * 24 * 3600.0
    max_bytes: int = 1024**3
    replicas: int = 1
    publish_retry: float = 30.0


class Bus:
    """Connection to NATS scoped to one namespace (subject prefix and stream name)."""

    def __init__(self, nc: NATS, namespace: str, policy: StreamPolicy | None = None) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.namespace = namespace
        self.stream = f"{namespace.upper()}_EVENTS"
        self.policy = policy or StreamPolicy()
        self.consumers: list[Consumer] = []
        # When the stream this process works on was created: a change means the NATS store was lost.
        self.stream_created: Any = None
        self.stream_ok = True
        # Run once the stream is found re-created (the NATS store was lost): re-announce what lived in it.
        self.on_reset: list[Callable[[], Awaitable[None]]] = []
        self._checking = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        url: str,
        namespace: str,
        name: str,
        *,
        wait_seconds: float = 30.0,
        policy: StreamPolicy | None = None,
    ) -> Bus:
        """Connect (retrying while the server starts) and make sure the event stream exists."""
        servers = [part.strip() for part in url.split(",") if part.strip()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            try:
                nc = await nats.connect(
                    servers, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=2
                )
                break
            except Exception as exc:
                if loop.time() > deadline:
                    raise Unavailable(f"cannot reach NATS at {url}: {exc}") from exc
                await asyncio.sleep(0.5)
        bus = cls(nc, namespace, policy)
        await bus.ensure_stream()
        return bus

    def stream_config(self) -> StreamConfig:
        """The event stream: every subject of the namespace, bounded by age and size, retried publishes deduped."""
        return StreamConfig(
            name=self.stream,
            subjects=[f"{self.namespace}.>"],
            duplicate_window=min(DUPLICATE_WINDOW_SECONDS, self.policy.max_age),
            max_age=self.policy.max_age,
            max_bytes=self.policy.max_bytes,
            num_replicas=self.policy.replicas,
        )

    async def ensure_stream(self) -> bool:
        """Create the event stream if it is missing (first use, or a lost NATS store); True if it was created.

        An existing stream whose retention differs from the configured one is updated in place."""
        config = self.stream_config()
        try:
            info = await self.js.stream_info(self.stream)
        except NotFoundError:
            created = True
            try:
                info = await self.js.add_stream(config)
            except BadRequestError:
                created = False  # another process created it first
                info = await self.js.stream_info(self.stream)
        else:
            created = False
            current = info.config
            if (current.max_age, current.max_bytes) != (config.max_age, config.max_bytes):
                info = await self.js.update_stream(config)
                log.info("bus.stream_retention_updated", stream=self.stream, max_age=config.max_age)
        self.stream_created = info.created
        self.stream_ok = True
        return created

    async def check_stream(self) -> bool:
        """Whether the stream was lost and re-created since this process last looked.

        Then this process's consumers are re-created too, and the `on_reset` hooks run."""
        async with self._checking:
            before = self.stream_created
            try:
                created = await self.ensure_stream()
            except Exception:
                self.stream_ok = False
                raise
            reset = created or (before is not None and before != self.stream_created)
            if not reset:
                return False
            log.warning("bus.stream_recreated", stream=self.stream, reason="the NATS store had lost it")
            for consumer in self.consumers:
                await self._ensure_consumer(consumer)
            for hook in self.on_reset:
                try:
                    await hook()
                except Exception:
                    log.exception("bus.reset_hook_failed", hook=getattr(hook, "__qualname__", repr(hook)))
            return True

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

    def max_event_bytes(self) -> int:
        """The largest encoded event the server takes (its max payload, less room for headers)."""
        return int(self.nc.max_payload) - HEADER_ALLOWANCE

    def check_size(self, data: bytes, what: str) -> None:
        """Refuse, with a clear 413, what the server would refuse to carry."""
        if len(data) > self.max_event_bytes():
            raise PayloadTooLarge(
                f"{what} is {len(data)} bytes encoded, more than the {self.max_event_bytes()} bytes the event bus "
                "carries; send less data"
            )

    async def publish(self, event: Event, *, retry_seconds: float | None = None) -> int:
        """Publish an event once (deduplicated by `event_id`); returns its stream sequence.

        While NATS is unreachable or a stream leader is being elected, the same message (same id, so stored
        once) is sent again until `retry_seconds` (default: the stream policy's) have passed; then Unavailable."""
        data = encode_event(event)
        self.check_size(data, f"the {event.type} event")
        headers = {"Nats-Msg-Id": event.event_id, "AP-Type": event.type}
        propagate.inject(headers)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.policy.publish_retry if retry_seconds is None else retry_seconds)
        attempt = 0
        while True:
            attempt += 1
            try:
                ack = await self.js.publish(
                    self.subject(event.type), data, headers=headers, timeout=PUBLISH_ATTEMPT_SECONDS
                )
                if attempt > 1:
                    log.info("bus.publish_recovered", type=event.type, event_id=event.event_id, attempts=attempt)
                return int(ack.seq)
            except asyncio.CancelledError:
                raise
            except NoStreamResponseError:
                # No stream takes the subject: the NATS store was lost; re-create the stream and send again.
                with contextlib.suppress(Exception):
                    await self.check_stream()
                problem = "no stream"
            except APIError as exc:
                if exc.code is not None and exc.code < 500 and exc.code not in (408, 429):
                    raise
                problem = str(exc)
            except (nats.errors.Error, OSError) as exc:
                problem = type(exc).__name__
            if loop.time() >= deadline:
                log.warning("bus.publish_failed", type=event.type, event_id=event.event_id, attempts=attempt)
                raise Unavailable(
                    f"the event bus did not confirm the {event.type} event after {attempt} attempts ({problem})"
                )
            await asyncio.sleep(min(0.1 * attempt, 1.0, max(deadline - loop.time(), 0.0)))

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
        on_poison: PoisonHandler | None = None,
        max_ack_pending: int | None = None,
        backoff: float = 0.2,
    ) -> Consumer:
        """Run a durable pull consumer; a handler that raises is retried with backoff (`backoff` * 2**attempt seconds).

        A message that keeps failing for a reason other than an unreachable NATS or PostgreSQL is ended after
        MAX_FAILED_DELIVERIES deliveries; `on_poison` is then given the event and the error, to end it visibly."""
        durable = f"{self.namespace}_{durable}"
        subjects = [self.subject(t) for t in event_types]
        multi_filter = len(subjects) > 1 and self.supports_multi_filter
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_ack_pending=max_ack_pending or max(concurrency * 4, 16),
            deliver_policy=DeliverPolicy.NEW if deliver_new else DeliverPolicy.ALL,
            filter_subjects=subjects if multi_filter else None,
            filter_subject=subjects[0] if len(subjects) == 1 else None,
        )
        wanted_types = None if ">" in event_types else frozenset(event_types)
        if wanted_types is not None:
            handler = only(wanted_types, handler)
        consumer = Consumer(durable, config, handler, concurrency, ack_wait, on_poison, backoff)
        await self._ensure_consumer(consumer)
        self.consumers.append(consumer)
        consumer.task = asyncio.create_task(
            consumer.run(lambda: self.nc.is_connected, lambda: self._repair(consumer)), name=f"consume:{durable}"
        )
        return consumer

    async def _ensure_consumer(self, consumer: Consumer) -> None:
        """Create the durable consumer if it is missing (or update its filter), and bind to it."""
        config, durable = consumer.config, consumer.durable
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
            if consumer.sub is not None:
                log.warning("bus.consumer_recreated", consumer=durable)
        if consumer.sub is not None:
            with contextlib.suppress(Exception):
                await consumer.sub.unsubscribe()
        consumer.sub = await self.js.pull_subscribe_bind(durable=durable, stream=self.stream)
        consumer.healthy = True

    async def _repair(self, consumer: Consumer) -> None:
        """After failed fetches: re-create the stream and this consumer if the NATS store lost them."""
        with contextlib.suppress(Exception):
            if not await self.check_stream():  # a re-created stream has re-created every consumer already
                await self._ensure_consumer(consumer)

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
            return await self.js.create_key_value(KeyValueConfig(bucket=name, replicas=self.policy.replicas))

    async def close(self) -> None:
        """Flush what was sent (briefly), then close; consumers and subscriptions are already stopped by now.

        Not `drain()`: cut short on a stalled connection, it leaves the client's own tasks failing unobserved."""
        if self.nc.is_closed:
            return
        if self.nc.is_connected:
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=3)
        with contextlib.suppress(Exception):
            await self.nc.close()
