"""An OpenAPI document as received: JSON or YAML text, checked to be OpenAPI 3.0/3.1 with operations.

The gateway checks a pasted document at definition time; the executor parses the ones it fetches.
"""

from __future__ import annotations

import json
from typing import Any

from shared.errors import BadRequest


class OpenApiError(BadRequest):
    """The document cannot be turned into tools; the message says where and why."""

    code = "invalid_openapi"


def parse_document(text: str | bytes) -> dict[str, Any]:
    """An OpenAPI document from JSON or YAML text, checked to be OpenAPI 3.x with paths."""
    raw = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = _load_yaml(raw)
    return check_document(data)


def _load_yaml(text: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise OpenApiError("the document is not valid JSON (YAML needs the PyYAML package on this server)") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OpenApiError(f"the document is neither valid JSON nor valid YAML: {exc}") from exc


def check_document(data: Any) -> dict[str, Any]:
    """Refuse what is not an OpenAPI 3.0/3.1 document, saying why."""
    if not isinstance(data, dict):
        raise OpenApiError("an OpenAPI document must be an object")
    version = data.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        if "swagger" in data:
            raise OpenApiError("Swagger 2.0 documents are not supported; convert it to OpenAPI 3")
        raise OpenApiError("the document has no `openapi: 3.x` version field")
    if not isinstance(data.get("paths"), dict) or not data["paths"]:
        raise OpenApiError("the document has no paths, so it offers no operations")
    return data
