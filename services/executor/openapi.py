"""An OpenAPI 3.0/3.1 document turned into tools: one per operation, with an input schema an agent can fill.

Each tool's input schema has one property per path, query and header parameter, plus `body` for a JSON
request body. Local `$ref`s are resolved (recursion is cut off, not followed forever); external ones are
refused, since fetching them would be an unvetted request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urljoin

from shared.events import ToolDef
from shared.openapi_document import OpenApiError, check_document, parse_document

__all__ = ["OpenApiError", "check_document", "parse_document"]

Location = Literal["path", "query", "header"]
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_NODE_BUDGET = 50_000
_DESCRIPTION_MAX = 1500
_NAME_OK = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Parameter:
    """One operation parameter and the input-schema property that carries it."""

    name: str
    location: Location
    prop: str
    required: bool


@dataclass(frozen=True)
class Operation:
    """One callable operation: the tool an agent sees and how to turn its arguments into a request."""

    tool: ToolDef
    method: str
    path: str
    parameters: tuple[Parameter, ...]
    body_prop: str | None
    body_media: str | None


def default_base_url(doc: dict[str, Any], document_url: str | None = None) -> str | None:
    """The first server's URL (variables at their defaults), made absolute against the document's URL."""
    servers = doc.get("servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], dict):
        return document_url and urljoin(document_url, "/")
    server = servers[0]
    url = str(server.get("url") or "/")
    for name, var in (server.get("variables") or {}).items():
        if isinstance(var, dict) and "default" in var:
            url = url.replace("{" + name + "}", str(var["default"]))
    if url.startswith(("http://", "https://")):
        return url
    return urljoin(document_url, url) if document_url else None


def operation_keys(doc: dict[str, Any]) -> set[str]:
    """What an operator may name in an allow-list: each operationId and each `METHOD /path`."""
    keys: set[str] = set()
    for path, method, op in _raw_operations(doc):
        keys.add(f"{method.upper()} {path}")
        if isinstance(op.get("operationId"), str):
            keys.add(op["operationId"])
    return keys


def operations(doc: dict[str, Any], allow: Sequence[str] | None = None) -> list[Operation]:
    """Every operation of the document as a tool, limited to `allow` (operationIds or `METHOD /path`)."""
    resolver = _Resolver(doc)
    wanted = {_allow_key(a) for a in allow} if allow is not None else None
    result: list[Operation] = []
    used: set[str] = set()
    path_items = doc.get("paths") or {}
    for path, method, op in _raw_operations(doc):
        keys = {_allow_key(f"{method} {path}")}
        if isinstance(op.get("operationId"), str):
            keys.add(_allow_key(op["operationId"]))
        if wanted is not None and not keys & wanted:
            continue
        shared_params = resolver.resolve(path_items[path].get("parameters") or [])
        built = _build(resolver, path, method, op, shared_params, used)
        if built is not None:
            used.add(built.tool.name)
            result.append(built)
    return result


def tools_of(ops: Iterable[Operation]) -> tuple[ToolDef, ...]:
    """The tool definitions of compiled operations."""
    return tuple(op.tool for op in ops)


def _allow_key(text: str) -> str:
    method, _, path = text.strip().partition(" ")
    if path and method.lower() in METHODS:
        return f"{method.upper()} {path.strip()}"
    return text.strip()


def _raw_operations(doc: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                yield str(path), method, op


def _build(
    resolver: _Resolver, path: str, method: str, op: dict[str, Any], shared: Any, used: set[str]
) -> Operation | None:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*(shared if isinstance(shared, list) else []), *resolver.resolve(op.get("parameters") or [])]:
        if isinstance(raw, dict) and isinstance(raw.get("name"), str) and raw.get("in") in ("path", "query", "header"):
            merged[(raw["in"], raw["name"])] = raw
    props: dict[str, Any] = {}
    required: list[str] = []
    params: list[Parameter] = []
    for (location, name), raw in merged.items():
        prop = name if name not in props else f"{location}_{name}"
        schema = _parameter_schema(resolver, raw)
        props[prop] = schema
        is_required = location == "path" or bool(raw.get("required"))
        if is_required:
            required.append(prop)
        params.append(Parameter(name=name, location=location, prop=prop, required=is_required))  # type: ignore[arg-type]
    body_prop, body_media = None, None
    body = resolver.resolve(op.get("requestBody"))
    if isinstance(body, dict):
        media, body_schema = _json_media(body.get("content") or {})
        if media is None:
            if body.get("required"):
                return None  # a required non-JSON body (form, upload) cannot be filled by an agent
        else:
            body_prop = "body" if "body" not in props else "request_body"
            body_media = media
            props[body_prop] = _convert(body_schema) if body_schema is not None else {}
            if body.get("required"):
                required.append(body_prop)
    input_schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        input_schema["required"] = required
    tool = ToolDef(
        name=_tool_name(op, method, path, used),
        description=_description(op, method, path),
        input_schema=input_schema,
        title=op.get("summary") if isinstance(op.get("summary"), str) else None,
    )
    return Operation(
        tool=tool,
        method=method.upper(),
        path=path,
        parameters=tuple(params),
        body_prop=body_prop,
        body_media=body_media,
    )


def _parameter_schema(resolver: _Resolver, raw: dict[str, Any]) -> dict[str, Any]:
    schema = raw.get("schema")
    if schema is None and isinstance(raw.get("content"), dict):
        _, schema = _json_media(raw["content"])
    converted = _convert(resolver.resolve(schema)) if isinstance(schema, dict) else {"type": "string"}
    if isinstance(raw.get("description"), str) and "description" not in converted:
        converted = {**converted, "description": raw["description"]}
    return converted


def _json_media(content: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    for media, spec in content.items():
        base = str(media).split(";", 1)[0].strip().lower()
        if base == "application/json" or base.endswith("+json"):
            schema = spec.get("schema") if isinstance(spec, dict) else None
            return str(media), schema if isinstance(schema, dict) else None
    return None, None


def _tool_name(op: dict[str, Any], method: str, path: str, used: set[str]) -> str:
    base = op.get("operationId") if isinstance(op.get("operationId"), str) else None
    if not base:
        base = f"{method}_{path.replace('{', '').replace('}', '')}"
    name = re.sub(r"_+", "_", _NAME_OK.sub("_", base)).strip("_")[:60] or method
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}_{n}", n + 1
    return candidate


def _description(op: dict[str, Any], method: str, path: str) -> str:
    parts = [str(op[k]).strip() for k in ("summary", "description") if isinstance(op.get(k), str) and op[k].strip()]
    if len(parts) == 2 and parts[1].startswith(parts[0]):
        parts = parts[1:]
    parts.append(f"HTTP {method.upper()} {path}")
    text = "\n\n".join(parts)
    return text if len(text) <= _DESCRIPTION_MAX else text[: _DESCRIPTION_MAX - 1] + "…"


def _convert(schema: Any) -> Any:
    """OpenAPI 3.0 schema dialect to JSON Schema (3.1 is JSON Schema already, so this leaves it as is)."""
    if isinstance(schema, list):
        return [_convert(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _convert(v) for k, v in schema.items() if k not in ("nullable", "example", "xml", "discriminator")}
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool):
            if out[bound] and limit in out:
                out[bound] = out.pop(limit)
            else:
                out.pop(bound)
    return out


class _Resolver:
    """Inlines local `$ref`s; a reference to itself becomes an open schema rather than an endless one."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.budget = _NODE_BUDGET

    def resolve(self, node: Any, stack: tuple[str, ...] = ()) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise OpenApiError("the document's $refs expand to more than this server will inline")
        if isinstance(node, list):
            return [self.resolve(item, stack) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in stack:
                return {"description": f"(recursive reference to {ref})"}
            target = self.resolve(self._lookup(ref), (*stack, ref))
            siblings = {k: self.resolve(v, stack) for k, v in node.items() if k != "$ref"}
            return {**target, **siblings} if isinstance(target, dict) else target
        return {k: self.resolve(v, stack) for k, v in node.items()}

    def _lookup(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise OpenApiError(f"external $ref {ref!r} is not supported; bundle the document into one file")
        node: Any = self.doc
        for part in ref[2:].split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise OpenApiError(f"$ref {ref!r} points at nothing in the document")
        return node
