"""An HTTP API from its OpenAPI document, called by an agent through the full policy and approval pipeline."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integrations.pets_api import PetsApi, document, running_pets_api
from tests.support.agentport import Tenant, call, decide, mcp_client, new_tenant, set_mode
from tests.support.stack import Stack

SECRET = "pets-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
async def pets() -> AsyncIterator[PetsApi]:
    async with running_pets_api(SECRET) as api:
        yield api


@pytest.fixture(scope="module")
async def tenant(stack: Stack) -> Tenant:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        return await new_tenant(stack, client)


async def define_api(http: httpx.AsyncClient, tenant: Tenant, integration_id: str, **body: Any) -> httpx.Response:
    return await http.post(
        "/api/integrations/custom-api",
        json={"id": integration_id, "name": integration_id, **body},
        headers=tenant.agent,
    )


async def install(stack: Stack, tenant: Tenant, integration_id: str, token: str | None = SECRET) -> dict[str, Any]:
    async with mcp_client(stack.base_url, tenant.agent) as client:
        args: dict[str, Any] = {"integration_id": integration_id, "auth_method": "token" if token else "none"}
        if token:
            args["token"] = token
        installed = await call(client, "install_integration", **args)
    assert installed["status"] == "ok", installed
    return dict(installed["installed"])


@pytest.fixture(scope="module")
async def pets_integration(stack: Stack, tenant: Tenant, pets: PetsApi) -> str:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        r = await define_api(
            client,
            tenant,
            "pets",
            document=document(pets.base_url),
            auth={"type": "bearer"},
            description="The pet store",
        )
        assert r.status_code == 201, r.text
        assert r.json()["operation_count"] == 7
    installed = await install(stack, tenant, "pets")
    assert installed["status"] == "ready", installed
    assert installed["kind"] == "openapi"
    return "pets"


async def test_each_operation_becomes_a_tool_with_parameters_and_resolved_refs(
    stack: Stack, tenant: Tenant, pets_integration: str
) -> None:
    async with mcp_client(stack.base_url, tenant.agent) as client:
        listed = await call(client, "list_integration_tools", integration_id=pets_integration)
        created = await call(client, "describe_tool", integration_id=pets_integration, tool_name="createPet")
        get_pet = await call(client, "describe_tool", integration_id=pets_integration, tool_name="getPet")
    names = {t["name"] for t in listed["tools"]}
    assert names == {"listPets", "createPet", "getPet", "delete_pets_petId", "boom", "big", "slow"}
    assert all(t["mode"] == "require_approval" for t in listed["tools"])
    body = created["tool"]["input_schema"]["properties"]["body"]
    assert body["properties"]["name"] == {"type": "string"}
    assert body["properties"]["tag"]["type"] == ["string", "null"]
    assert created["tool"]["input_schema"]["required"] == ["body"]
    schema = get_pet["tool"]["input_schema"]
    assert schema["properties"]["petId"]["type"] == "integer"
    assert schema["required"] == ["petId"]
    assert "GET /pets/{petId}" in get_pet["tool"]["description"]


async def test_gated_call_runs_after_approval_with_the_injected_credential(
    stack: Stack, http: httpx.AsyncClient, tenant: Tenant, pets: PetsApi, pets_integration: str
) -> None:
    tag = secrets.token_hex(4)
    async with mcp_client(stack.base_url, tenant.agent) as client:
        held = await call(
            client,
            "call_tool",
            integration_id=pets_integration,
            tool_name="listPets",
            arguments={"limit": 5, "X-Request-Tag": tag},
            additional_info="List the pets",
        )
        assert held["status"] == "approval_required", held
        assert not [s for s in pets.requests_to("/pets") if s.headers.get("X-Request-Tag") == tag]
        r = await decide(http, tenant, held["approval_request_id"], "approve-once")
        assert r.status_code == 200, r.text
        result = await client.call_tool("agentport__await_approval", {"request_id": held["approval_request_id"]})
    outcome = result.structured_content
    assert outcome["status"] == "executed", outcome
    assert outcome["result"]["structuredContent"] == {"result": [{"id": 1, "name": "Rex", "tag": "dog"}]}
    seen = [s for s in pets.requests_to("/pets") if s.headers.get("X-Request-Tag") == tag]
    assert len(seen) == 1
    assert seen[0].query == {"limit": "5"}
    assert seen[0].headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in json.dumps(outcome) + "".join(getattr(b, "text", "") for b in result.content)


async def test_allowed_call_sends_the_json_body_and_returns_structured_content(
    stack: Stack, http: httpx.AsyncClient, tenant: Tenant, pets: PetsApi, pets_integration: str
) -> None:
    await set_mode(http, tenant, pets_integration, "createPet", "allow")
    name = "pet-" + secrets.token_hex(4)
    async with mcp_client(stack.base_url, tenant.agent) as client:
        done = await call(
            client,
            "call_tool",
            integration_id=pets_integration,
            tool_name="createPet",
            arguments={"body": {"name": name, "tag": None}},
        )
    assert done["status"] == "executed", done
    assert done["is_error"] is False
    assert done["result"]["structuredContent"]["name"] == name
    assert [s.body for s in pets.requests_to("/pets") if s.method == "POST"][-1] == {"name": name, "tag": None}


async def test_upstream_404_and_500_come_back_as_clear_tool_errors(
    stack: Stack, http: httpx.AsyncClient, tenant: Tenant, pets_integration: str
) -> None:
    await set_mode(http, tenant, pets_integration, "getPet", "allow")
    await set_mode(http, tenant, pets_integration, "boom", "allow")
    async with mcp_client(stack.base_url, tenant.agent) as client:
        found = await call(
            client, "call_tool", integration_id=pets_integration, tool_name="getPet", arguments={"petId": 1}
        )
        missing = await call(
            client, "call_tool", integration_id=pets_integration, tool_name="getPet", arguments={"petId": 99}
        )
        broken = await call(client, "call_tool", integration_id=pets_integration, tool_name="boom", arguments={})
    assert found["is_error"] is False and found["result"]["structuredContent"]["name"] == "Rex"
    assert missing["status"] == "executed" and missing["is_error"] is True
    assert missing["result"]["isError"] is True
    text = missing["result"]["content"][0]["text"]
    assert "HTTP 404" in text and "pet 99 not found" in text
    assert missing["result"]["structuredContent"]["status"] == 404
    assert broken["is_error"] is True
    assert "HTTP 500" in broken["result"]["content"][0]["text"]
    assert "the database is on fire" in broken["result"]["content"][0]["text"]


async def test_response_size_and_per_integration_timeout_are_enforced(
    stack: Stack, http: httpx.AsyncClient, tenant: Tenant, pets: PetsApi
) -> None:
    r = await define_api(
        http,
        tenant,
        "pets-limited",
        document=document(pets.base_url),
        auth={"type": "bearer"},
        operations=["big", "GET /slow"],
        timeout_seconds=1,
    )
    assert r.status_code == 201, r.text
    assert r.json()["operation_count"] == 2
    await install(stack, tenant, "pets-limited")
    await set_mode(http, tenant, "pets-limited", "big", "allow")
    await set_mode(http, tenant, "pets-limited", "slow", "allow")
    async with mcp_client(stack.base_url, tenant.agent) as client:
        listed = await call(client, "list_integration_tools", integration_id="pets-limited")
        big = await call(client, "call_tool", integration_id="pets-limited", tool_name="big", arguments={})
        slow = await call(
            client, "call_tool", integration_id="pets-limited", tool_name="slow", arguments={"seconds": 3}
        )
    assert {t["name"] for t in listed["tools"]} == {"big", "slow"}
    assert big["status"] == "error" and big["error"]["code"] == "response_too_large", big
    assert "byte limit" in big["message"]
    assert slow["status"] == "error" and slow["error"]["code"] == "timeout", slow
    assert "within 1 seconds" in slow["message"]


async def test_query_parameter_auth_puts_the_credential_in_the_query(
    stack: Stack, http: httpx.AsyncClient, tenant: Tenant, pets: PetsApi
) -> None:
    r = await define_api(
        http,
        tenant,
        "pets-query",
        document=json.dumps(document(pets.base_url, "3.1.0")),
        auth={"type": "query", "name": "api_key"},
        operations=["getPet"],
    )
    assert r.status_code == 201, r.text
    await install(stack, tenant, "pets-query")
    await set_mode(http, tenant, "pets-query", "getPet", "allow")
    async with mcp_client(stack.base_url, tenant.agent) as client:
        done = await call(client, "call_tool", integration_id="pets-query", tool_name="getPet", arguments={"petId": 1})
    assert done["status"] == "executed" and done["is_error"] is False, done
    assert pets.requests_to("/pets/1")[-1].query == {"api_key": SECRET}


async def test_a_document_at_a_url_is_fetched_by_the_executor(
    stack: Stack, http: httpx.AsyncClient, tenant: Tenant, pets: PetsApi
) -> None:
    from aiohttp import web

    from tests.support.upstream import free_port

    port = free_port()
    app = web.Application()

    async def serve_document(_: web.Request) -> web.Response:
        return web.json_response(document(pets.base_url))

    app.router.add_get("/openapi.json", serve_document)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        r = await define_api(
            http,
            tenant,
            "pets-url",
            document_url=f"http://127.0.0.1:{port}/openapi.json",
            auth={"type": "bearer"},
            operations=["listPets"],
        )
        assert r.status_code == 201, r.text
        installed = await install(stack, tenant, "pets-url")
    finally:
        await runner.cleanup()
    assert installed["status"] == "ready" and installed["tool_count"] == 1, installed


async def test_definitions_that_are_wrong_or_unsafe_are_refused_clearly(
    http: httpx.AsyncClient, tenant: Tenant, pets: PetsApi
) -> None:
    metadata = document("http://169.254.169.254/latest")
    refused = await define_api(http, tenant, "bad-ssrf", document=metadata)
    swagger = await define_api(http, tenant, "bad-swagger", document={"swagger": "2.0", "paths": {}})
    unknown = await define_api(http, tenant, "bad-ops", document=document(pets.base_url), operations=["nope"])
    both = await define_api(http, tenant, "bad-both", document=document(pets.base_url), document_url=pets.base_url)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "upstream_refused"
    assert "Swagger 2.0" in swagger.json()["error"]["message"]
    assert "nope" in unknown.json()["error"]["message"]
    assert both.status_code == 400
