"""Performing one HTTP API operation: arguments into a request, the credential injected, the answer into a tool
result (JSON as structured content, 4xx/5xx as error results carrying the upstream's own message)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import httpx
import mcp_types as types

from services.executor.limits import Limits, read_capped, text_result
from services.executor.openapi import Operation, parse_document
from shared.events import AuthSpec

# Headers an agent may never set through a header parameter: they would override the credential or the framing.
_RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
    }
)
_MESSAGE_KEYS = ("message", "error_description", "detail", "title", "error", "errors", "msg")


def credential_headers(auth: AuthSpec, credential: str | None) -> dict[str, str]:
    """The headers that carry the credential (none for query-parameter auth)."""
    if credential is None or auth.type in ("none", "query"):
        return {}
    if auth.type == "basic":
        pair = credential if ":" in credential else f"{credential}:"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    if auth.type == "header" and auth.header_name:
        return {auth.header_name: f"{auth.scheme} {credential}" if auth.scheme else credential}
    return {"Authorization": f"Bearer {credential}"}


def build_request(
    op: Operation, base_url: str, auth: AuthSpec, credential: str | None, arguments: dict[str, Any]
) -> httpx.Request:
    """The HTTP request for one call; the credential is added last so no argument can replace it."""
    path = op.path
    query: list[tuple[str, str | int | float | bool | None]] = []
    headers: dict[str, str] = {}
    auth_header_names = {h.lower() for h in credential_headers(auth, "x")}
    for param in op.parameters:
        if param.prop not in arguments:
            continue
        value = arguments[param.prop]
        if param.location == "path":
            path = path.replace("{" + param.name + "}", quote(_scalar(value), safe=""))
        elif param.location == "query":
            if auth.type == "query" and param.name == auth.param_name:
                continue
            values = value if isinstance(value, list) else [value]
            query.extend((param.name, _scalar(v)) for v in values)
        elif param.name.lower() not in _RESERVED_HEADERS | auth_header_names:
            headers[param.name] = _scalar(value)
    if auth.type == "query" and auth.param_name and credential is not None:
        query.append((auth.param_name, credential))
    headers.update(credential_headers(auth, credential))
    content: bytes | None = None
    if op.body_prop is not None and op.body_prop in arguments:
        content = json.dumps(arguments[op.body_prop]).encode()
        headers["Content-Type"] = "application/json" if op.body_media is None else op.body_media
    headers.setdefault("Accept", "application/json, */*;q=0.5")
    url = base_url.rstrip("/") + "/" + path.lstrip("/")
    return httpx.Request(op.method, url, params=query, headers=headers, content=content)


async def perform(
    client: httpx.AsyncClient,
    op: Operation,
    base_url: str,
    auth: AuthSpec,
    credential: str | None,
    arguments: dict[str, Any],
    limits: Limits,
) -> types.CallToolResult:
    """Send the call once and describe the answer as a tool result."""
    request = build_request(op, base_url, auth, credential, arguments)
    request.extensions["timeout"] = httpx.Timeout(limits.timeout).as_dict()
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
    except httpx.TimeoutException as exc:
        raise limits.timed_out() from exc
    try:
        body = await read_capped(response, limits)
    except httpx.TimeoutException as exc:
        raise limits.timed_out() from exc
    finally:
        await response.aclose()
    return describe_response(op, response, body)


def describe_response(op: Operation, response: httpx.Response, body: bytes) -> types.CallToolResult:
    """JSON answers as structured content; a status of 300 or more as an error result with the upstream's words."""
    value, text = _decode(response, body)
    status = response.status_code
    if status < 300:
        structured = value if isinstance(value, dict) else ({"result": value} if value is not None else None)
        return text_result(text or f"HTTP {status} (no content)", structured, False)
    if status < 400:
        where = response.headers.get("location", "(no location)")
        message = f"the API redirected to {where}; AgentPort does not follow redirects of HTTP API calls"
    else:
        message = _upstream_message(value, text) or "(no message)"
    summary = f"{op.method} {op.path} failed with HTTP {status} {response.reason_phrase}: {message}"
    return text_result(summary, {"status": status, "error": value if value is not None else text}, True)


def _decode(response: httpx.Response, body: bytes) -> tuple[Any, str]:
    text = body.decode(response.encoding or "utf-8", errors="replace")
    media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if body and (media == "application/json" or media.endswith("+json")):
        try:
            value = json.loads(text)
        except ValueError:
            return None, text
        return value, json.dumps(value, ensure_ascii=False)
    return None, text


def _upstream_message(value: Any, text: str) -> str:
    """The upstream's own explanation: a message-like field of its JSON error, else the start of its text."""
    if isinstance(value, dict):
        for key in _MESSAGE_KEYS:
            found = value.get(key)
            if isinstance(found, str) and found.strip():
                return found.strip()[:500]
            if isinstance(found, dict | list) and found:
                nested = _upstream_message(found if isinstance(found, dict) else found[0], "")
                if nested:
                    return nested
    if isinstance(value, list) and value:
        return _upstream_message(value[0], text)
    return text.strip()[:500]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


async def fetch_document(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], limits: Limits
) -> dict[str, Any]:
    """Download an OpenAPI document (through the same guarded client and limits as calls) and parse it."""
    request = client.build_request("GET", url, headers={"Accept": "application/json, application/yaml, */*", **headers})
    request.extensions["timeout"] = httpx.Timeout(limits.timeout).as_dict()
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            body = await read_capped(response, limits)
        finally:
            await response.aclose()
    except httpx.TimeoutException as exc:
        raise limits.timed_out() from exc
    if response.status_code >= 300:
        raise DocumentUnavailable(f"fetching the OpenAPI document from {url} answered HTTP {response.status_code}")
    return parse_document(body)


class DocumentUnavailable(Exception):
    """The OpenAPI document URL did not give a document."""
