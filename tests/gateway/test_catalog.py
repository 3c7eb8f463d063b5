"""The integration catalog: data validity against schema.json and search behaviour."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from services.gateway.integrations.catalog import (
    CATEGORIES,
    DEFAULT_AUTH_HEADER,
    CatalogEntry,
    get_entry,
    load_catalog,
    load_schema,
    search_catalog,
)


def _raw_catalog() -> list[dict[str, Any]]:
    text = resources.files("services.gateway.integrations.catalog").joinpath("catalog.json").read_text("utf-8")
    data = json.loads(text)
    assert isinstance(data, list)
    return data


def _entry(**overrides: Any) -> CatalogEntry:
    base: dict[str, Any] = {
        "id": "acme",
        "name": "Acme",
        "description": "Widgets and gadgets for testing.",
        "category": "developer-tools",
        "type": "mcp",
        "mcp_url": "https://mcp.acme.test/mcp",
        "auth_methods": ["oauth"],
        "token_help_url": None,
        "docs_url": "https://acme.test/docs",
    }
    base.update(overrides)
    return CatalogEntry.model_validate(base)


# --------------------------------------------------------------------------- data validity


def test_catalog_is_large_enough() -> None:
    assert len(load_catalog()) >= 40


def test_every_raw_entry_is_valid_against_schema_json() -> None:
    validator = jsonschema.Draft202012Validator(load_schema())
    for item in _raw_catalog():
        errors = list(validator.iter_errors(item))
        assert errors == [], (item.get("id"), [e.message for e in errors])


def test_ids_are_unique_and_slugs() -> None:
    ids = [entry.id for entry in load_catalog()]
    assert len(ids) == len(set(ids))
    assert all(i == i.lower() and " " not in i for i in ids)


def test_urls_are_https_and_token_help_present_when_token_auth() -> None:
    for entry in load_catalog():
        assert entry.type == "mcp"
        assert entry.mcp_url is not None and entry.mcp_url.startswith("https://"), entry.id
        assert entry.docs_url.startswith("https://"), entry.id
        assert entry.auth_methods, entry.id
        if "token" in entry.auth_methods:
            assert entry.token_help_url is not None and entry.token_help_url.startswith("https://")
        else:
            assert entry.token_help_url is None, entry.id


def test_every_entry_speaks_streamable_http_which_the_executor_uses() -> None:
    sse_only = [e.id for e in load_catalog() if e.mcp_url and e.mcp_url.rstrip("/").endswith("/sse")]
    assert not sse_only, f"SSE-only endpoints the executor cannot reach: {sse_only}"


def test_schema_categories_match_the_model() -> None:
    assert tuple(load_schema()["properties"]["category"]["enum"]) == CATEGORIES


def test_load_catalog_is_cached() -> None:
    assert load_catalog() is load_catalog()


def test_well_known_entries_are_present() -> None:
    catalog = load_catalog()
    for wanted in ("github", "linear", "notion", "sentry", "stripe", "atlassian", "supabase", "vercel"):
        assert get_entry(catalog, wanted) is not None, wanted
    github = get_entry(catalog, "github")
    assert github is not None and github.mcp_url == "https://api.githubcopilot.com/mcp/"


def test_schema_rejects_bad_entries() -> None:
    validator = jsonschema.Draft202012Validator(load_schema())
    good = _raw_catalog()[0]
    bad_cases: list[dict[str, Any]] = [
        {**good, "mcp_url": "http://insecure.example/mcp"},
        {**good, "auth_methods": []},
        {**good, "auth_methods": ["token"], "token_help_url": None},
        {**good, "auth_methods": ["oauth"], "token_help_url": "https://x.test/tokens"},
        {**good, "category": "misc"},
        {**good, "id": "Has Spaces"},
        {**good, "surprise": True},
    ]
    for case in bad_cases:
        assert list(validator.iter_errors(case)), case


def test_model_rejects_inconsistent_entries() -> None:
    with pytest.raises(ValidationError):
        _entry(auth_methods=["token"])
    with pytest.raises(ValidationError):
        _entry(mcp_url=None)
    with pytest.raises(ValidationError):
        _entry(docs_url="http://acme.test/docs")
    with pytest.raises(ValidationError):
        _entry(auth_methods=[])


def test_entries_are_frozen() -> None:
    entry = load_catalog()[0]
    with pytest.raises(ValidationError):
        entry.name = "changed"


def test_token_header_for() -> None:
    plain = _entry(auth_methods=["token"], token_help_url="https://acme.test/tokens")
    assert plain.token_header == DEFAULT_AUTH_HEADER
    assert plain.token_header_for("s3cr3t") == ("Authorization", "Bearer s3cr3t")
    raw = _entry(auth_methods=["token"], token_help_url="https://acme.test/t", token_header="X-Api-Key")
    assert raw.token_header_for("k") == ("X-Api-Key", "k")


# --------------------------------------------------------------------------- search

SAMPLE = (
    _entry(id="alpha-pay", name="Alpha Pay", description="Payments and refunds.", category="payments"),
    _entry(
        id="beta-docs",
        name="Beta",
        description="Documentation search for pay-walled wikis.",
        category="docs-knowledge",
    ),
    _entry(id="gamma", name="Gamma CRM", description="Contacts and deals.", category="crm"),
    _entry(
        id="delta-api",
        name="Delta",
        description="Plain HTTP API for payments.",
        category="payments",
        type="api",
        mcp_url=None,
    ),
)


def _ids(entries: list[CatalogEntry]) -> list[str]:
    return [entry.id for entry in entries]


def test_search_single_token_name_matches_rank_first() -> None:
    # "pay" hits Alpha's name but only Beta's and Delta's descriptions/categories.
    assert _ids(search_catalog(SAMPLE, "pay")) == ["alpha-pay", "beta-docs", "delta-api"]


def test_search_tokens_are_anded_across_fields() -> None:
    assert _ids(search_catalog(SAMPLE, "payments refunds")) == ["alpha-pay"]
    assert _ids(search_catalog(SAMPLE, "gamma deals")) == ["gamma"]
    assert _ids(search_catalog(SAMPLE, "gamma refunds")) == []


def test_search_is_case_insensitive() -> None:
    assert _ids(search_catalog(SAMPLE, "GAMMA")) == ["gamma"]
    assert _ids(search_catalog(SAMPLE, "  cOnTaCtS  ")) == ["gamma"]


def test_search_matches_category() -> None:
    assert _ids(search_catalog(SAMPLE, "crm")) == ["gamma"]
    assert _ids(search_catalog(SAMPLE, "docs-knowledge")) == ["beta-docs"]


def test_search_no_match_is_empty() -> None:
    assert search_catalog(SAMPLE, "zzz-nothing") == []


def test_search_type_filter() -> None:
    assert _ids(search_catalog(SAMPLE, "pay", type="api")) == ["delta-api"]
    assert _ids(search_catalog(SAMPLE, None, type="mcp")) == ["alpha-pay", "beta-docs", "gamma"]
    assert search_catalog(SAMPLE, type="nope") == []


def test_empty_query_returns_all_alphabetically() -> None:
    expected = ["alpha-pay", "beta-docs", "delta-api", "gamma"]
    assert _ids(search_catalog(SAMPLE)) == expected
    assert _ids(search_catalog(SAMPLE, "")) == expected
    assert _ids(search_catalog(SAMPLE, "   ")) == expected


def test_search_real_catalog() -> None:
    catalog = load_catalog()
    cloudflare = search_catalog(catalog, "cloudflare")
    assert len(cloudflare) >= 3
    assert all(entry.id.startswith("cloudflare-") for entry in cloudflare)
    assert [entry.name for entry in cloudflare] == sorted(entry.name for entry in cloudflare)
    assert {"stripe", "paypal"} <= set(_ids(search_catalog(catalog, "payments")))
    assert len(search_catalog(catalog, type="mcp")) == len(catalog)


def test_get_entry() -> None:
    assert get_entry(SAMPLE, "gamma") is SAMPLE[2]
    assert get_entry(SAMPLE, "GAMMA") is SAMPLE[2]
    assert get_entry(SAMPLE, "missing") is None
