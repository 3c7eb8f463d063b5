"""A hosted MCP server as the tests need one: an authorization server (authlib, in memory, dynamic registration,
PKCE, rotating refresh tokens) and an MCP server that only answers bearer tokens that server issued for it.

Both listen on loopback on their own ports, as a real service's auth and API hosts would. The authorization
page approves at once, as a human already signed in upstream would; tests can expire or revoke every token.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from mcp.server.mcpserver import Context, MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.upstream import free_port, serving_on_loopback


@dataclass
class FakeClient(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    auth_method: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class Grant:
    """What a code, access token or refresh token was issued for."""

    client_id: str
    resource: str | None
    scope: str
    redirect_uri: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    expires_at: float = 0.0
    revoked: bool = False

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def check_client(self, client: FakeClient) -> bool:
        return client.client_id == self.client_id


@dataclass
class FakeAuthServer:
    """State and knobs of the fake authorization server."""

    url: str = ""
    access_seconds: int = 3600
    clients: dict[str, FakeClient] = field(default_factory=dict)
    codes: dict[str, Grant] = field(default_factory=dict)
    access: dict[str, Grant] = field(default_factory=dict)
    refresh: dict[str, Grant] = field(default_factory=dict)
    grants_by_type: dict[str, int] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)

    def expire_access_tokens(self) -> None:
        for grant in self.access.values():
            grant.expires_at = 0.0

    def revoke_everything(self) -> None:
        for grant in [*self.access.values(), *self.refresh.values()]:
            grant.revoked = True

    def valid(self, token: str, resource: str) -> bool:
        grant = self.access.get(token)
        return grant is not None and not grant.revoked and grant.expires_at > time.time() and grant.resource == resource


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, params: list[tuple[str, str]]) -> None:
        self._data = dict(reversed(params))
        self._datalist: dict[str, list[str]] = {}
        for k, v in params:
            self._datalist.setdefault(k, []).append(v)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, method: str, uri: str, headers: Any, params: list[tuple[str, str]], body: Any = None) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = _Payload(params)
        self.json_body = body

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data  # type: ignore[no-any-return]


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        self.server.fake.codes[code] = Grant(
            request.client.client_id,
            data.get("resource"),
            request.scope or "",
            request.payload.redirect_uri,
            data.get("code_challenge"),
            data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: FakeClient) -> Grant | None:
        grant: Grant | None = self.server.fake.codes.pop(code, None)
        return grant if grant is not None and grant.client_id == client.client_id else None

    def delete_authorization_code(self, authorization_code: Grant) -> None:
        return None

    def authenticate_user(self, authorization_code: Grant) -> str:
        return "upstream-user"


class _RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Grant | None:
        grant: Grant | None = self.server.fake.refresh.get(refresh_token)
        return grant if grant is not None and not grant.revoked else None

    def authenticate_user(self, refresh_token: Grant) -> str:
        return "upstream-user"

    def revoke_old_credential(self, refresh_token: Grant) -> None:
        refresh_token.revoked = True


class _Registration(ClientRegistrationEndpoint):  # type: ignore[misc]
    def authenticate_token(self, request: Any) -> bool:
        return True

    def get_server_metadata(self) -> dict[str, Any]:
        return {}

    def create_endpoint_request(self, request: Any) -> Any:
        return request

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any) -> FakeClient:
        client = FakeClient(
            client_info["client_id"],
            client_info.get("client_secret"),
            client_metadata["redirect_uris"],
            client_metadata["token_endpoint_auth_method"],
        )
        self.server.fake.clients[client.client_id] = client
        self.server.fake.issued.append(client_info.get("client_secret") or "")
        return client


class _Server(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, fake: FakeAuthServer) -> None:
        super().__init__()
        self.fake = fake
        self.register_token_generator("default", self._token)
        self.register_grant(_CodeGrant, [CodeChallenge(required=True)])
        self.register_grant(_RefreshGrant)
        self.register_endpoint(_Registration)

    def _token(
        self,
        grant_type: str,
        client: FakeClient,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        token = {
            "token_type": "Bearer",
            "access_token": "up-at-" + secrets.token_urlsafe(24),
            "expires_in": self.fake.access_seconds,
        }
        if include_refresh_token:
            token["refresh_token"] = "up-rt-" + secrets.token_urlsafe(24)
        return token

    def query_client(self, client_id: str) -> FakeClient | None:
        return self.fake.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        source: Grant = request.authorization_code or request.refresh_token
        self.fake.grants_by_type[request.payload.grant_type] = (
            self.fake.grants_by_type.get(request.payload.grant_type, 0) + 1
        )
        access = Grant(source.client_id, source.resource, source.scope, expires_at=time.time() + token["expires_in"])
        self.fake.access[token["access_token"]] = access
        self.fake.issued += [token["access_token"], token.get("refresh_token", "")]
        if token.get("refresh_token"):
            self.fake.refresh[token["refresh_token"]] = Grant(source.client_id, source.resource, source.scope)

    def create_oauth2_request(self, request: Any) -> Any:
        return request

    def create_json_request(self, request: Any) -> Any:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        if isinstance(body, dict):
            return JSONResponse(body, status_code=status, headers=dict(headers))
        return Response(body or "", status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


class _Json:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data


def auth_app(fake: FakeAuthServer) -> Starlette:
    server = _Server(fake)

    async def oauth_request(request: Request) -> _Request:
        params = list(request.query_params.multi_items())
        if request.method == "POST" and request.headers.get("content-type", "").startswith("application/x-www-form"):
            params += [(k, str(v)) for k, v in (await request.form()).multi_items()]
        return _Request(request.method, str(request.url), request.headers, params)

    async def metadata(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": fake.url,
                "authorization_endpoint": f"{fake.url}/authorize",
                "token_endpoint": f"{fake.url}/token",
                "registration_endpoint": f"{fake.url}/register",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                "scopes_supported": ["mcp"],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def authorize(request: Request) -> Response:
        req = await oauth_request(request)
        grant = server.get_consent_grant(req)
        response: Response = server.create_authorization_response(req, grant_user="upstream-user", grant=grant)
        location = response.headers.get("location")
        if location:
            response.headers["location"] = f"{location}&iss={fake.url}"
        return response

    async def token(request: Request) -> Response:
        return server.create_token_response(await oauth_request(request))  # type: ignore[no-any-return]

    async def register(request: Request) -> Response:
        req = _Request("POST", str(request.url), request.headers, [])
        req.payload = _Json(await request.json())
        return server.create_endpoint_response("client_registration", req)  # type: ignore[no-any-return]

    return Starlette(
        routes=[
            Route("/.well-known/oauth-authorization-server", metadata),
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
            Route("/register", register, methods=["POST"]),
        ]
    )


@dataclass
class ProtectedUpstream:
    """The running pair: where they are, what they saw."""

    auth: FakeAuthServer
    mcp_url: str
    tokens_seen: list[str] = field(default_factory=list)
    rejected: int = 0
    calls: list[str] = field(default_factory=list)


def mcp_app(up: ProtectedUpstream) -> Any:
    server = MCPServer("protected-upstream")

    @server.tool(description="Echo the text back.")
    def echo(text: str, ctx: Context) -> str:
        up.calls.append(text)
        return f"echo: {text}"

    app = server.streamable_http_app(stateless_http=True)
    origin = up.mcp_url.rsplit("/mcp", 1)[0]
    metadata_path = "/.well-known/oauth-protected-resource/mcp"
    challenge = f'Bearer resource_metadata="{origin}{metadata_path}", scope="mcp"'.encode()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == metadata_path:
            body = JSONResponse(
                {"resource": up.mcp_url, "authorization_servers": [up.auth.url], "scopes_supported": ["mcp"]}
            )
            await body(scope, receive, send)
            return
        if scope["type"] == "http":
            auth = dict(scope["headers"]).get(b"authorization", b"").decode()
            token = auth[7:] if auth.startswith("Bearer ") else ""
            up.tokens_seen.append(token)
            if not up.auth.valid(token, up.mcp_url):
                up.rejected += 1
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", challenge)],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"error":"invalid_token"}'})
                return
        await app(scope, receive, send)

    return guarded


@contextlib.asynccontextmanager
async def protected_upstream() -> AsyncIterator[ProtectedUpstream]:
    """The fake authorization server and its protected MCP server, running on loopback."""
    auth_port, mcp_port = free_port(), free_port()
    fake = FakeAuthServer(url=f"http://127.0.0.1:{auth_port}")
    up = ProtectedUpstream(auth=fake, mcp_url=f"http://127.0.0.1:{mcp_port}/mcp")
    async with serving_on_loopback(auth_app(fake), auth_port), serving_on_loopback(mcp_app(up), mcp_port):
        yield up
