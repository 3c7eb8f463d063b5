"""Rendering pages: one Jinja environment (autoescaped), filters for times and arguments, safe headers."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from services.approvals.web.viewer import STARTED, VIEWER

HERE = Path(__file__).parent
FOLD_CHARS = 160
FOLD_ITEMS = 20
PREVIEW_CHARS = 100
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _parse(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(value: str | datetime | None) -> str:
    """A moment as `2025-01-31 14:03:09 UTC`."""
    moment = _parse(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def duration(seconds: float) -> str:
    """`2 h 5 min`, `4 min 10 s`, `12 s`."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def time_left(value: str | datetime | None) -> str:
    moment = _parse(value)
    if moment is None:
        return "—"
    left = (moment - datetime.now(UTC)).total_seconds()
    return duration(left) if left > 0 else "expired"


def _json_string(text: str) -> Markup:
    return Markup('<span class="j-str">{}</span>').format(json.dumps(text, ensure_ascii=False))


def folded_json(value: Any, depth: int = 0) -> Markup:
    """Pretty JSON (sorted keys, as normalized) in HTML; long strings and long lists fold open on click."""
    pad = "  " * depth
    inner = "  " * (depth + 1)
    if isinstance(value, str):
        if len(value) <= FOLD_CHARS:
            return _json_string(value)
        preview = json.dumps(value[:PREVIEW_CHARS], ensure_ascii=False)[:-1] + "…"
        return Markup(
            '<details class="fold"><summary><span class="j-str preview">{}</span> '
            '<span class="fold-note">{:,} characters: show all</span></summary>{}</details>'
        ).format(preview, len(value), _json_string(value))
    if isinstance(value, dict):
        if not value:
            return Markup("{}")
        items = [
            Markup('{}<span class="j-key">{}</span>: {}').format(
                inner, json.dumps(k, ensure_ascii=False), folded_json(value[k], depth + 1)
            )
            for k in sorted(value)
        ]
        return Markup("{\n") + Markup(",\n").join(items) + Markup("\n{}}}").format(pad)
    if isinstance(value, list):
        if not value:
            return Markup("[]")
        items = [Markup("{}{}").format(inner, folded_json(v, depth + 1)) for v in value]
        body = Markup(",\n").join(items)
        if len(value) > FOLD_ITEMS:
            return Markup(
                '<details class="fold"><summary>[ <span class="fold-note">{:,} items: show all</span> ]</summary>'
                "[\n{}\n{}]</details>"
            ).format(len(value), body, pad)
        return Markup("[\n") + body + Markup("\n{}]").format(pad)
    return Markup('<span class="j-lit">{}</span>').format(json.dumps(value))


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def actor_label(actor: dict[str, Any] | None) -> str:
    """`API key “claude”`, `OAuth client “Cursor”`, `ana@example.com`."""
    if not actor:
        return "—"
    kind, name = actor.get("kind"), actor.get("name", "?")
    if kind == "api_key":
        return f"API key “{name}”"
    if kind == "oauth_client":
        return f"OAuth client “{name}”"
    if kind == "system":
        return "AgentPort"
    return str(name)


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
ENV.filters.update(when=when, time_left=time_left, folded_json=folded_json, pretty=pretty, actor=actor_label)
ENV.globals.update(escape=escape)


def page(request: web.Request, template: str, *, status: int = 200, **data: Any) -> web.Response:
    """Render a page for the viewer, with the security headers and the server-side render time."""
    html = ENV.get_template(template).render(viewer=request[VIEWER], path=request.path, **data)
    headers = dict(SECURITY_HEADERS)
    started = request.get(STARTED)
    if started is not None:
        headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status, headers=headers)


def see_other(location: str) -> web.Response:
    """Post/redirect/get."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})
