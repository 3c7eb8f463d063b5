"""An OpenAPI document becomes tools: names, input schemas, `$ref`s, the operator's allow-list."""

from __future__ import annotations

import pytest

from services.executor.openapi import OpenApiError, default_base_url, operations, parse_document
from tests.integrations.pets_api import document

DOC = document("https://api.example.com/v1")


def test_each_operation_is_a_tool_named_by_operation_id_or_method_and_path() -> None:
    names = [op.tool.name for op in operations(DOC)]
    assert names == ["listPets", "createPet", "getPet", "delete_pets_petId", "boom", "big", "slow"]


def test_path_query_and_header_parameters_and_the_json_body_become_properties() -> None:
    ops = {op.tool.name: op for op in operations(DOC)}
    listing = ops["listPets"].tool.input_schema
    assert set(listing["properties"]) == {"limit", "X-Request-Tag"}
    assert "required" not in listing
    assert listing["additionalProperties"] is False
    get_pet = ops["getPet"]
    assert get_pet.tool.input_schema["required"] == ["petId"]
    assert get_pet.parameters[0].location == "path"
    created = ops["createPet"]
    assert created.body_prop == "body" and created.body_media == "application/json"
    assert created.tool.input_schema["properties"]["body"]["required"] == ["name"]


def test_refs_are_resolved_and_openapi_30_nullable_becomes_json_schema() -> None:
    ops = {op.tool.name: op for op in operations(DOC)}
    body = ops["createPet"].tool.input_schema["properties"]["body"]
    assert body["properties"]["tag"] == {"type": ["string", "null"]}
    assert "$ref" not in str(ops["getPet"].tool.input_schema)


def test_a_recursive_schema_is_cut_off_instead_of_expanding_forever() -> None:
    doc = {
        "openapi": "3.1.0",
        "paths": {
            "/nodes": {
                "post": {
                    "operationId": "addNode",
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}},
                }
            }
        },
        "components": {
            "schemas": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/components/schemas/Node"}}}}
        },
    }
    body = operations(doc)[0].tool.input_schema["properties"]["body"]
    assert body["properties"]["child"]["description"].startswith("(recursive reference")


def test_the_allow_list_names_operation_ids_or_method_and_path() -> None:
    names = [op.tool.name for op in operations(DOC, ["getPet", "get /pets", "DELETE /pets/{petId}"])]
    assert names == ["listPets", "getPet", "delete_pets_petId"]


def test_external_refs_and_non_openapi_documents_are_refused() -> None:
    with pytest.raises(OpenApiError, match="external"):
        operations({"openapi": "3.0.0", "paths": {"/a": {"get": {"parameters": [{"$ref": "other.yaml#/p"}]}}}})
    with pytest.raises(OpenApiError, match=r"Swagger 2\.0"):
        parse_document('{"swagger": "2.0", "paths": {}}')
    with pytest.raises(OpenApiError, match="no paths"):
        parse_document('{"openapi": "3.1.0", "paths": {}}')


def test_yaml_documents_are_read_when_pyyaml_is_installed() -> None:
    pytest.importorskip("yaml")
    doc = parse_document("openapi: 3.1.0\npaths:\n  /ping:\n    get:\n      operationId: ping\n")
    assert [op.tool.name for op in operations(doc)] == ["ping"]


def test_the_base_url_comes_from_the_first_server_made_absolute() -> None:
    assert default_base_url(DOC) == "https://api.example.com/v1"
    relative = {**DOC, "servers": [{"url": "/api/{version}", "variables": {"version": {"default": "v2"}}}]}
    assert default_base_url(relative, "https://docs.example.com/spec.json") == "https://docs.example.com/api/v2"
    assert default_base_url(relative) is None
