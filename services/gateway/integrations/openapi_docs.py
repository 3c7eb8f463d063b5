"""Receiving an HTTP API's definition: its OpenAPI document (pasted as JSON/YAML, or at a URL), the auth it
takes, and which operations to expose. Checked here so a mistake is a clear 400 at definition time; the
executor turns the document into tools (it alone can fetch a document that needs the credential)."""

from __future__ import annotations

import json
import re
from typing import Any

from shared.errors import BadRequest
from shared.events import AuthSpec, OpenApiSource
from shared.openapi_document import check_document, parse_document

MAX_DOCUMENT_CHARS = 512 * 1024
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_PARAM = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def parse_auth(raw: Any) -> AuthSpec:
    """`{type: none|bearer|header|query|basic, name?, scheme?}`: how the API takes its credential."""
    if raw is None:
        return AuthSpec(type="none")
    if not isinstance(raw, dict):
        raise BadRequest('auth must be an object like {"type": "bearer"}')
    kind, name, scheme = raw.get("type", "none"), raw.get("name"), raw.get("scheme")
    if kind in ("none", "bearer", "basic"):
        return AuthSpec(type=kind)
    if kind == "header":
        header = name or raw.get("header_name")
        if not isinstance(header, str) or not _HEADER.match(header):
            raise BadRequest("auth type 'header' needs `name`, the header that carries the credential")
        return AuthSpec(type="header", header_name=header, scheme=scheme if isinstance(scheme, str) else None)
    if kind == "query":
        if not isinstance(name, str) or not _PARAM.match(name):
            raise BadRequest("auth type 'query' needs `name`, the query parameter that carries the credential")
        return AuthSpec(type="query", param_name=name)
    raise BadRequest("auth.type must be one of none, bearer, header, query, basic")


def load_document(document: Any) -> dict[str, Any]:
    """An inline document: a JSON object already, or JSON/YAML text."""
    size = len(document) if isinstance(document, str) else len(json.dumps(document, default=str))
    if size > MAX_DOCUMENT_CHARS:
        raise BadRequest(f"the document is larger than {MAX_DOCUMENT_CHARS} characters; give a document_url")
    checked = parse_document(document) if isinstance(document, str) else check_document(document)
    if not _keys(checked):
        raise BadRequest("the document has no operations under `paths`")
    return checked


def _keys(document: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Each operation as (`METHOD /path`, operationId)."""
    found: list[tuple[str, str | None]] = []
    for path, item in (document.get("paths") or {}).items():
        if isinstance(item, dict):
            for method in _METHODS:
                op = item.get(method)
                if isinstance(op, dict):
                    op_id = op.get("operationId")
                    found.append((f"{method.upper()} {path}", op_id if isinstance(op_id, str) else None))
    return found


def check_operations(document: dict[str, Any] | None, operations: Any) -> tuple[str, ...] | None:
    """The operator's allow-list (operationIds or `METHOD /path`); with an inline document, each must exist."""
    if operations is None:
        return None
    if not isinstance(operations, list) or not all(isinstance(o, str) and o.strip() for o in operations):
        raise BadRequest('operations must be a list like ["listPets", "GET /pets/{petId}"]')
    wanted = tuple(_normal(o) for o in operations)
    if document is not None:
        known = {k for pair in _keys(document) for k in pair if k}
        missing = [o for o in wanted if o not in known]
        if missing:
            raise BadRequest(f"the document has no operation {', '.join(missing)}")
    return wanted


def _normal(entry: str) -> str:
    method, _, path = entry.strip().partition(" ")
    return f"{method.upper()} {path.strip()}" if path and method.lower() in _METHODS else entry.strip()


def server_url(document: dict[str, Any]) -> str | None:
    """The document's first server, when it is an absolute URL (variables at their defaults)."""
    servers = document.get("servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], dict):
        return None
    url = str(servers[0].get("url") or "")
    for name, var in (servers[0].get("variables") or {}).items():
        if isinstance(var, dict) and "default" in var:
            url = url.replace("{" + name + "}", str(var["default"]))
    return url if url.startswith(("http://", "https://")) else None


def source_from(body: dict[str, Any]) -> tuple[OpenApiSource, int | None]:
    """The document source of a custom API definition, and how many operations it exposes (when inline)."""
    document_raw, document_url = body.get("document"), body.get("document_url")
    if (document_raw is None) == (document_url is None):
        raise BadRequest("give exactly one of `document` (the OpenAPI document) and `document_url`")
    base_url = body.get("base_url")
    if base_url is not None and not isinstance(base_url, str):
        raise BadRequest("base_url must be a string")
    if document_url is not None and not isinstance(document_url, str):
        raise BadRequest("document_url must be a string")
    document = load_document(document_raw) if document_raw is not None else None
    operations = check_operations(document, body.get("operations"))
    count = None
    if document is not None:
        base_url = base_url or server_url(document)
        if not base_url:
            raise BadRequest("the document names no absolute server URL; give base_url")
        keys = _keys(document)
        count = (
            len(keys)
            if operations is None
            else sum(1 for key, op_id in keys if key in operations or (op_id and op_id in operations))
        )
    return OpenApiSource(document=document, document_url=document_url, base_url=base_url, operations=operations), count
