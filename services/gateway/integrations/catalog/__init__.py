"""The integration catalog: well-known services with a remote MCP server a user can connect in one step.

Entries live in `catalog.json` (shipped as package data) and are validated twice on load: against
`schema.json` (the published contract) and by the `CatalogEntry` model (what the code relies on).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any, Literal, get_args

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CATEGORIES",
    "DEFAULT_AUTH_HEADER",
    "CatalogEntry",
    "CatalogError",
    "get_entry",
    "load_catalog",
    "load_schema",
    "search_catalog",
]

Category = Literal[
    "analytics",
    "automation",
    "cloud-infrastructure",
    "cms",
    "communication",
    "crm",
    "customer-support",
    "database",
    "design",
    "developer-tools",
    "docs-knowledge",
    "ecommerce",
    "marketing",
    "monitoring",
    "payments",
    "productivity",
    "project-management",
    "search-data",
    "storage",
]
CATEGORIES: tuple[str, ...] = get_args(Category)
AuthMethod = Literal["token", "oauth"]
DEFAULT_AUTH_HEADER = "Authorization: Bearer"


class CatalogError(ValueError):
    """The shipped catalog is invalid (schema violation, bad entry or duplicate id)."""


class CatalogEntry(BaseModel):
    """One catalog integration, as shown in the UI and used to pre-fill a connection."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=64)
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=10, max_length=200)
    category: Category
    type: Literal["mcp", "api"]
    mcp_url: str | None
    auth_methods: tuple[AuthMethod, ...] = Field(min_length=1)
    token_help_url: str | None
    docs_url: str
    token_header: str = DEFAULT_AUTH_HEADER

    @model_validator(mode="after")
    def _consistent(self) -> CatalogEntry:
        if len(set(self.auth_methods)) != len(self.auth_methods):
            raise ValueError(f"{self.id}: auth_methods has duplicates")
        if self.type == "mcp" and not self.mcp_url:
            raise ValueError(f"{self.id}: an mcp entry needs mcp_url")
        if ("token" in self.auth_methods) != (self.token_help_url is not None):
            raise ValueError(f"{self.id}: token_help_url is required with token auth and only then")
        for url in (self.mcp_url, self.token_help_url, self.docs_url):
            if url is not None and not url.startswith("https://"):
                raise ValueError(f"{self.id}: {url!r} is not an https URL")
        return self

    def token_header_for(self, token: str) -> tuple[str, str]:
        """The (header name, header value) that carries `token` for this service."""
        name, _, scheme = self.token_header.partition(":")
        scheme = scheme.strip()
        return name.strip(), f"{scheme} {token}" if scheme else token


def _read_json(filename: str) -> Any:
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that every catalog entry satisfies."""
    schema = _read_json("schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    return dict(schema)


@functools.cache
def load_catalog() -> tuple[CatalogEntry, ...]:
    """Every catalog entry, validated against schema.json and the model; cached after the first call."""
    raw = _read_json("catalog.json")
    if not isinstance(raw, list):
        raise CatalogError("catalog.json must hold a JSON array of entries")
    validator = jsonschema.Draft202012Validator(load_schema())
    entries: list[CatalogEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        label = item.get("id", f"#{index}") if isinstance(item, dict) else f"#{index}"
        errors = sorted(validator.iter_errors(item), key=lambda err: list(err.absolute_path))
        if errors:
            where = "/".join(str(part) for part in errors[0].absolute_path) or "(entry)"
            raise CatalogError(f"catalog entry {label}: {where}: {errors[0].message}")
        try:
            entry = CatalogEntry.model_validate(item)
        except ValueError as exc:
            raise CatalogError(f"catalog entry {label}: {exc}") from exc
        if entry.id in seen:
            raise CatalogError(f"catalog entry id {entry.id!r} is duplicated")
        seen.add(entry.id)
        entries.append(entry)
    return tuple(entries)


def _matches(token: str, fields: Iterable[str]) -> bool:
    return any(token in field for field in fields)


def search_catalog(
    entries: Iterable[CatalogEntry], query: str | None = None, type: str | None = None
) -> list[CatalogEntry]:
    """Entries matching every whitespace-separated query token (case-insensitive) and the type filter.

    Entries whose name/id match all tokens come first; ties sort alphabetically by name.
    """
    tokens = (query or "").casefold().split()
    ranked: list[tuple[int, str, str, CatalogEntry]] = []
    for entry in entries:
        if type is not None and entry.type != type:
            continue
        title = (entry.name.casefold(), entry.id)
        everywhere = (*title, entry.description.casefold(), entry.category)
        if not all(_matches(token, everywhere) for token in tokens):
            continue
        title_hit = bool(tokens) and all(_matches(token, title) for token in tokens)
        ranked.append((0 if title_hit else 1, entry.name.casefold(), entry.id, entry))
    ranked.sort(key=lambda row: row[:3])
    return [row[3] for row in ranked]


def get_entry(entries: Iterable[CatalogEntry], integration_id: str) -> CatalogEntry | None:
    """The entry with this id (ids are lowercase; lookup ignores case), or None."""
    wanted = integration_id.strip().lower()
    return next((entry for entry in entries if entry.id == wanted), None)
