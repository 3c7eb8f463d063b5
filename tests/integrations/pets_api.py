"""A small HTTP API on loopback (aiohttp) and its OpenAPI document: path, query, header and body parameters,
a `$ref`, bearer auth; it records what it received so tests can check what reached it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.upstream import free_port


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class PetsApi:
    base_url: str
    token: str
    seen: list[Seen] = field(default_factory=list)
    pets: dict[int, dict[str, Any]] = field(default_factory=lambda: {1: {"id": 1, "name": "Rex", "tag": "dog"}})

    def requests_to(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


def document(base_url: str, version: str = "3.0.3") -> dict[str, Any]:
    """The API's OpenAPI document, with the Pet schemas behind `$ref`s."""
    pet_ref = {"$ref": "#/components/schemas/Pet"}
    return {
        "openapi": version,
        "info": {"title": "Pets", "version": "1.0"},
        "servers": [{"url": base_url}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": {
                "PetId": {
                    "name": "petId",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                    "description": "The pet's id",
                }
            },
            "schemas": {
                "NewPet": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "tag": {"type": "string", "nullable": True}},
                },
                "Pet": {
                    "allOf": [
                        {"$ref": "#/components/schemas/NewPet"},
                        {"type": "object", "properties": {"id": {"type": "integer"}}},
                    ]
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/pets": {
                "get": {
                    "operationId": "listPets",
                    "summary": "List pets",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                        {"name": "X-Request-Tag", "in": "header", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": {
                            "description": "pets",
                            "content": {"application/json": {"schema": {"type": "array", "items": pet_ref}}},
                        }
                    },
                },
                "post": {
                    "operationId": "createPet",
                    "summary": "Create a pet",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewPet"}}},
                    },
                    "responses": {"201": {"description": "created"}},
                },
            },
            "/pets/{petId}": {
                "parameters": [{"$ref": "#/components/parameters/PetId"}],
                "get": {
                    "operationId": "getPet",
                    "summary": "Get one pet",
                    "responses": {"200": {"description": "pet", "content": {"application/json": {"schema": pet_ref}}}},
                },
                "delete": {"summary": "Delete a pet", "responses": {"204": {"description": "deleted"}}},
            },
            "/boom": {
                "get": {
                    "operationId": "boom",
                    "summary": "Always fails",
                    "responses": {"500": {"description": "error"}},
                }
            },
            "/big": {
                "get": {
                    "operationId": "big",
                    "summary": "A very large answer",
                    "responses": {"200": {"description": "big"}},
                }
            },
            "/slow": {
                "get": {
                    "operationId": "slow",
                    "summary": "Answers after a while",
                    "parameters": [{"name": "seconds", "in": "query", "required": True, "schema": {"type": "number"}}],
                    "responses": {"200": {"description": "slow"}},
                }
            },
        },
    }


def _app(api: PetsApi) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        api.seen.append(
            Seen(request.method, request.path.removeprefix("/v1"), dict(request.query), dict(request.headers), body)
        )
        query_ok = request.query.get("api_key") == api.token
        if request.headers.get("Authorization") != f"Bearer {api.token}" and not query_ok:
            return web.json_response({"message": "missing or wrong credential"}, status=401)
        return await handler(request)

    async def list_pets(request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "100"))
        return web.json_response(list(api.pets.values())[:limit])

    async def create_pet(request: web.Request) -> web.Response:
        body = await request.json()
        pet = {"id": max(api.pets) + 1, **body}
        api.pets[pet["id"]] = pet
        return web.json_response(pet, status=201)

    async def get_pet(request: web.Request) -> web.Response:
        pet_id = int(request.match_info["pet_id"])
        if pet_id not in api.pets:
            return web.json_response({"message": f"pet {pet_id} not found"}, status=404)
        return web.json_response(api.pets[pet_id])

    async def delete_pet(request: web.Request) -> web.Response:
        api.pets.pop(int(request.match_info["pet_id"]), None)
        return web.Response(status=204)

    async def boom(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "db", "message": "the database is on fire"}}, status=500)

    async def big(request: web.Request) -> web.Response:
        return web.json_response({"data": "x" * (2 * 1024 * 1024)})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query["seconds"]))
        return web.json_response({"slept": float(request.query["seconds"])})

    app = web.Application(middlewares=[record])
    app.router.add_get("/v1/pets", list_pets)
    app.router.add_post("/v1/pets", create_pet)
    app.router.add_get("/v1/pets/{pet_id}", get_pet)
    app.router.add_delete("/v1/pets/{pet_id}", delete_pet)
    app.router.add_get("/v1/boom", boom)
    app.router.add_get("/v1/big", big)
    app.router.add_get("/v1/slow", slow)
    return app


@contextlib.asynccontextmanager
async def running_pets_api(token: str) -> AsyncIterator[PetsApi]:
    port = free_port()
    api = PetsApi(base_url=f"http://127.0.0.1:{port}/v1", token=token)
    runner = web.AppRunner(_app(api), shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield api
    finally:
        await runner.cleanup()
