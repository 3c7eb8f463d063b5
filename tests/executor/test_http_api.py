"""An operation's arguments become one HTTP request with the credential injected; answers become tool results."""

from __future__ import annotations

import base64
import json

import httpx

from services.executor.http_api import build_request, describe_response
from services.executor.openapi import operations
from shared.events import AuthSpec
from tests.integrations.pets_api import document

OPS = {op.tool.name: op for op in operations(document("https://api.example.com/v1"))}
BASE = "https://api.example.com/v1"


def test_path_query_header_and_body_arguments_land_where_the_document_says() -> None:
    request = build_request(OPS["getPet"], BASE, AuthSpec(type="bearer"), "s3cret", {"petId": "a/b"})
    assert str(request.url) == "https://api.example.com/v1/pets/a%2Fb"
    assert request.headers["Authorization"] == "Bearer s3cret"
    listing = build_request(OPS["listPets"], BASE, AuthSpec(), None, {"limit": 3, "X-Request-Tag": "t"})
    assert listing.url.params["limit"] == "3" and listing.headers["X-Request-Tag"] == "t"
    created = build_request(OPS["createPet"], BASE, AuthSpec(), None, {"body": {"name": "Rex"}})
    assert created.method == "POST" and json.loads(created.content) == {"name": "Rex"}


def test_no_argument_can_replace_the_credential() -> None:
    op = OPS["listPets"]
    header_auth = AuthSpec(type="header", header_name="X-Request-Tag")
    request = build_request(op, BASE, header_auth, "s3cret", {"X-Request-Tag": "forged"})
    assert request.headers["X-Request-Tag"] == "s3cret"
    query_auth = AuthSpec(type="query", param_name="limit")
    request = build_request(op, BASE, query_auth, "s3cret", {"limit": 1})
    assert request.url.params.get_list("limit") == ["s3cret"]


def test_basic_auth_encodes_user_and_password() -> None:
    request = build_request(OPS["boom"], BASE, AuthSpec(type="basic"), "me:pw", {})
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"me:pw").decode()


def test_json_answers_are_structured_and_errors_carry_the_upstreams_message() -> None:
    ok = describe_response(OPS["getPet"], httpx.Response(200, json={"id": 1}), b'{"id": 1}')
    assert ok.structured_content == {"id": 1} and not ok.is_error
    listed = describe_response(OPS["listPets"], httpx.Response(200, json=[1]), b"[1]")
    assert listed.structured_content == {"result": [1]}
    body = b'{"error": {"message": "no such pet"}}'
    missing = describe_response(
        OPS["getPet"], httpx.Response(404, content=body, headers={"content-type": "application/json"}), body
    )
    assert missing.is_error
    assert missing.content[0].text == "GET /pets/{petId} failed with HTTP 404 Not Found: no such pet"
    text = describe_response(OPS["boom"], httpx.Response(503, text="down for maintenance"), b"down for maintenance")
    assert text.is_error and text.content[0].text.endswith("down for maintenance")
