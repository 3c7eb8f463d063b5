"""The authorization server proper: authlib's grants and endpoints with what OAuth 2.1 and MCP require on top.

Beyond authlib's defaults: PKCE is mandatory and S256 only; the RFC 8707 `resource` must name our `/mcp`;
refresh tokens rotate, and presenting a used refresh token or authorization code revokes the whole grant;
authorization responses carry `iss` (RFC 9207). Every hook here runs in authlib's worker thread and reaches
the database through the bridge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import (
    ClientMetadataClaims,
    ClientRegistrationEndpoint,
    InvalidClientMetadataError,
    InvalidRedirectURIError,
)
from authlib.oauth2.rfc7636 import CodeChallenge

from services.gateway.identity.oauth import redirect_uris, store
from services.gateway.identity.oauth.adapter import Bridge
from services.gateway.identity.oauth.grants import Grants
from services.gateway.identity.oauth.tokens import (
    ACCESS_PREFIX,
    CLIENT_SECRET_PREFIX,
    CODE_PREFIX,
    REFRESH_PREFIX,
    canonical_resource,
    new_secret,
)
from services.gateway.identity.secrets_at_rest import token_hash

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
GRANT_TYPES = ("authorization_code", "refresh_token")
CLIENT_NAME_MAX = 100
REDIRECT_URIS_MAX = 10


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707: the requested resource is not one this server issues tokens for."""

    error = "invalid_target"


@dataclass(frozen=True)
class Lifetimes:
    code: int
    access: int
    refresh: int


class GatewayAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's server wired to our store; requests arrive already built by the adapter."""

    def __init__(
        self, pool: Any, bridge: Bridge, grants: Grants, issuer: str, resource: str, lifetimes: Lifetimes
    ) -> None:
        super().__init__()
        self.pool = pool
        self.bridge = bridge
        self.grants = grants
        self.issuer = issuer
        self.resource = resource
        self.lifetimes = lifetimes
        self.register_token_generator("default", self._generate_token)
        self.register_grant(CodeGrant, [PkceS256(), ResourceIndicator()])
        self.register_grant(RefreshGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Registration)

    def query_client(self, client_id: str) -> store.Client | None:
        return self.bridge.wait(store.get_client(self.pool, client_id))

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        holder: store.GrantHolder = request.user
        refresh = token.get("refresh_token")
        self.bridge.wait(
            store.save_tokens(
                self.pool,
                holder.grant_id,
                holder.client_id,
                (token["access_token"], self.lifetimes.access),
                (refresh, self.lifetimes.refresh) if refresh else None,
            )
        )

    def _generate_token(
        self,
        grant_type: str,
        client: store.Client,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": new_secret(ACCESS_PREFIX),
            "expires_in": self.lifetimes.access,
        }
        if scope:
            token["scope"] = scope
        if include_refresh_token:
            token["refresh_token"] = new_secret(REFRESH_PREFIX)
        return token

    def create_oauth2_request(self, request: Any) -> Any:
        return request

    def create_json_request(self, request: Any) -> Any:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> tuple[int, Any, Any]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def with_issuer(self, location: str) -> str:
        """An authorization response's redirect, naming this issuer (RFC 9207)."""
        return f"{location}{'&' if '?' in location else '?'}{urlencode({'iss': self.issuer})}"


def _matches_resource(server: GatewayAuthorizationServer, requested: str) -> bool:
    return canonical_resource(requested) == canonical_resource(server.resource)


class PkceS256(CodeChallenge):  # type: ignore[misc]
    """PKCE is required, and only with S256 (OAuth 2.1): `plain` and a missing challenge are refused."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def __init__(self) -> None:
        super().__init__(required=True)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class ResourceIndicator:
    """RFC 8707: tokens are only for our `/mcp`; an absent `resource` means it, any other is `invalid_target`."""

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.on_authorize)
        grant.register_hook("after_validate_token_request", self.on_token)

    def on_authorize(self, grant: Any, redirect_uri: str) -> None:
        requested = grant.request.payload.datalist.get("resource", [])
        if len(requested) > 1:
            raise InvalidTargetError("this server issues tokens for one resource only")
        if requested and not _matches_resource(grant.server, requested[0]):
            raise InvalidTargetError(f"this server issues tokens only for {grant.server.resource}")
        grant.request.resource = grant.server.resource

    def on_token(self, grant: Any, result: Any) -> None:
        requested = grant.request.payload.data.get("resource")
        code: store.AuthorizationCode = grant.request.authorization_code
        if requested and canonical_resource(requested) != canonical_resource(code.resource):
            raise InvalidTargetError(f"this code was issued for {code.resource}")


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    """Authorization code grant; a code is consumed when first presented, and a reused one revokes its grant."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    @staticmethod
    def validate_authorization_redirect_uri(request: Any, client: store.Client) -> str:
        # authlib quotes the URI in its refusal, whose text may not hold some of these characters (a 500).
        uri = request.payload.redirect_uri
        if uri and not redirect_uris.is_uri_text(uri):
            raise InvalidRequestError("redirect_uri is not a URI: it holds a backslash, quote, space or non-ASCII")
        redirect_uri: str = AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)
        return redirect_uri

    def create_authorization_response(self, redirect_uri: str, grant_user: Any) -> tuple[int, str, Any]:
        status, body, headers = super().create_authorization_response(redirect_uri, grant_user)
        server: GatewayAuthorizationServer = self.server
        return status, body, [(k, server.with_issuer(v) if k == "Location" else v) for k, v in headers]

    def save_authorization_code(self, code: str, request: Any) -> None:
        server: GatewayAuthorizationServer = self.server
        holder: store.GrantHolder = request.user
        item = store.AuthorizationCode(
            grant_id=holder.grant_id,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            code_challenge=request.payload.data["code_challenge"],
            resource=request.resource or server.resource,
            scope=request.scope or "",
        )
        server.bridge.wait(store.save_code(server.pool, code, holder.grant_id, item, server.lifetimes.code))

    def generate_authorization_code(self) -> str:
        return new_secret(CODE_PREFIX)

    def query_authorization_code(self, code: str, client: store.Client) -> store.AuthorizationCode | None:
        server: GatewayAuthorizationServer = self.server
        item, reused_grant = server.bridge.wait(store.consume_code(server.pool, code, client.client_id))
        if reused_grant is not None:
            server.bridge.wait(server.grants.revoke_quietly(reused_grant, "code_reused"))
        return item

    def delete_authorization_code(self, authorization_code: store.AuthorizationCode) -> None:
        return None  # consumed when presented

    def authenticate_user(self, authorization_code: store.AuthorizationCode) -> store.GrantHolder | None:
        server: GatewayAuthorizationServer = self.server
        return server.bridge.wait(store.grant_holder(server.pool, authorization_code.grant_id))


class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    """Refresh with rotation: each refresh token works once; a second use revokes the whole grant."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> store.StoredToken | None:
        server: GatewayAuthorizationServer = self.server
        token = server.bridge.wait(store.find_token(server.pool, refresh_token, "refresh"))
        if token is None or token.is_revoked() or token.is_expired():
            return None
        if token.used_at is not None:
            server.bridge.wait(server.grants.revoke_quietly(token.grant_id, "refresh_token_reused"))
            return None
        requested = self.request.payload.data.get("resource")
        if requested and canonical_resource(requested) != canonical_resource(token.resource):
            raise InvalidTargetError(f"this refresh token was issued for {token.resource}")
        return token

    def authenticate_user(self, refresh_token: store.StoredToken) -> store.GrantHolder | None:
        server: GatewayAuthorizationServer = self.server
        # Consumed only now, once every check has passed, so a malformed request does not burn the token.
        if not server.bridge.wait(store.use_refresh_token(server.pool, refresh_token)):
            server.bridge.wait(server.grants.revoke_quietly(refresh_token.grant_id, "refresh_token_reused"))
            raise InvalidGrantError("this refresh token was already used")
        return server.bridge.wait(store.grant_holder(server.pool, refresh_token.grant_id))

    def revoke_old_credential(self, refresh_token: store.StoredToken) -> None:
        return None  # marked used in authenticate_user


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009: revoking a refresh token ends its grant; revoking an access token ends that token."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> store.StoredToken | None:
        server: GatewayAuthorizationServer = self.server
        return server.bridge.wait(store.find_token(server.pool, token_string))

    def revoke_token(self, token: store.StoredToken, request: Any) -> None:
        server: GatewayAuthorizationServer = self.server
        if token.kind == "refresh":
            server.bridge.wait(server.grants.revoke_quietly(token.grant_id, "revoked_by_client"))
        else:
            server.bridge.wait(store.revoke_token(server.pool, token))


class _ClientClaims(ClientMetadataClaims):  # type: ignore[misc]
    """authlib's metadata checks, except redirect URIs: ours allow private-use schemes (RFC 8252 §7.1)."""

    def validate_redirect_uris(self) -> None:
        return None


class Registration(ClientRegistrationEndpoint):  # type: ignore[misc]
    """RFC 7591 dynamic registration, open to anyone: what a client may ask for is checked here."""

    def __init__(self, server: Any = None) -> None:
        super().__init__(server, claims_classes=[_ClientClaims])

    def authenticate_token(self, request: Any) -> bool:
        return True  # open registration: MCP clients register before any human signs in

    def get_server_metadata(self) -> dict[str, Any]:
        return {}

    def extract_client_metadata(self, request: Any) -> dict[str, Any]:
        metadata: dict[str, Any] = super().extract_client_metadata(request)
        uris = metadata.get("redirect_uris")
        if not isinstance(uris, list) or not uris or len(uris) > REDIRECT_URIS_MAX:
            raise InvalidRedirectURIError(f"register 1 to {REDIRECT_URIS_MAX} redirect_uris")
        for uri in uris:
            problem = redirect_uris.registration_problem(uri)
            if problem:
                raise InvalidRedirectURIError(_description(f"redirect URI {uri} {problem}"))
        grant_types = metadata.setdefault("grant_types", list(GRANT_TYPES))
        if not grant_types or not set(grant_types) <= set(GRANT_TYPES) or "authorization_code" not in grant_types:
            raise InvalidClientMetadataError("grant_types must be authorization_code, optionally with refresh_token")
        if not set(metadata.setdefault("response_types", ["code"])) <= {"code"}:
            raise InvalidClientMetadataError('response_types must be ["code"]')
        if metadata["token_endpoint_auth_method"] not in AUTH_METHODS:
            raise InvalidClientMetadataError(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
        name = metadata.get("client_name")
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > CLIENT_NAME_MAX):
            raise InvalidClientMetadataError(f"client_name must be 1 to {CLIENT_NAME_MAX} characters")
        return metadata

    def generate_client_id(self, request: Any) -> str:
        return "apc-" + new_secret("")[:32]

    def generate_client_info(self, request: Any) -> dict[str, Any]:
        info: dict[str, Any] = super().generate_client_info(request)
        if info.get("client_secret") is None:
            info.pop("client_secret", None)
            info.pop("client_secret_expires_at", None)
        return info

    def generate_client_secret(self, request: Any) -> str | None:
        method = request.payload.data.get("token_endpoint_auth_method", "client_secret_basic")
        return None if method == "none" else new_secret(CLIENT_SECRET_PREFIX)

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any) -> store.Client:
        server: GatewayAuthorizationServer = self.server
        secret = client_info.get("client_secret")
        client = store.Client(
            client_id=client_info["client_id"],
            client_name=(client_metadata.get("client_name") or client_info["client_id"]).strip(),
            redirect_uris=tuple(client_metadata["redirect_uris"]),
            grant_types=tuple(client_metadata["grant_types"]),
            token_endpoint_auth_method=client_metadata["token_endpoint_auth_method"],
            secret_hash=token_hash(secret) if secret else None,
        )
        server.bridge.wait(store.insert_client(server.pool, client, client_metadata))
        return client


def _description(text: str) -> str:
    """Text fit for `error_description` (RFC 6749 allows printable ASCII but `"` and `\\`)."""
    return "".join(ch if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\' else "?" for ch in text)[:300]
