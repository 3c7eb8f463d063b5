"""Prometheus metrics shared by every service (served on /metrics by the runner)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_HANDLED = Counter(
    "agentport_events_handled_total",
    "Events handled by a consumer",
    ["consumer", "type", "outcome"],
    registry=REGISTRY,
)
HANDLER_SECONDS = Histogram(
    "agentport_handler_seconds", "Time spent handling one event", ["consumer", "type"], registry=REGISTRY
)
HTTP_REQUESTS = Counter("agentport_http_requests_total", "HTTP requests served", ["route", "status"], registry=REGISTRY)
CALLS = Counter("agentport_calls_total", "Tool calls by terminal status", ["status"], registry=REGISTRY)
