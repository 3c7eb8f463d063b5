"""Who is asking: an API key, a human's session, and what each may do."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from services.gateway.http import Handler
from services.gateway.identity.accounts import KEY_PREFIX
from services.gateway.identity.oauth.tokens import ACCESS_PREFIX, InvalidToken, verify_access_token
from services.gateway.identity.secrets_at_rest import token_hash
from services.gateway.identity.sessions import SESSION_COOKIE, check_session_request
from shared.errors import Forbidden, Unauthenticated
from shared.events import Actor, Role
from shared.runner import CTX_KEY

MANAGE: tuple[Role, ...] = ("owner", "admin")
DECIDE: tuple[Role, ...] = ("owner", "admin", "approver")
READ: tuple[Role, ...] = ("owner", "admin", "approver", "viewer")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its org, its actor identity, and (for humans) its role."""

    org_id: str
    actor: Actor
    role: Role | None
    client_ip: str | None

    @property
    def is_human(self) -> bool:
        return self.actor.kind == "user"

    def require_human(self, roles: tuple[Role, ...], what: str) -> None:
        """Refuse agents (API keys, OAuth clients) and humans without one of `roles`."""
        if not self.is_human:
            agent = "an OAuth client" if self.actor.kind == "oauth_client" else "an API key"
            raise Forbidden(f"only a human can {what}; {agent} cannot")
        if self.role not in roles:
            raise Forbidden(f"your role ({self.role}) cannot {what}")


PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
PUBLIC_PATHS = frozenset(
    {"/health", "/ready", "/metrics", "/api/auth/token", "/api/auth/callback", "/api/invitations/accept"}
)
FORWARDED_IP = "X-AgentPort-Client-IP"
PROXY_AUTH_HEADER = "X-AgentPort-Proxy-Secret"


def client_ip(request: web.Request) -> str | None:
    """The address the request came from (the proxy's, unless a trusted proxy sets it)."""
    forwarded = request.headers.get(FORWARDED_IP)
    if forwarded and from_trusted_proxy(request):
        return forwarded
    return request.remote


def from_trusted_proxy(request: web.Request) -> bool:
    """Whether the approvals web UI sent this request on a human's behalf (it holds the shared secret)."""
    expected = request.app[CTX_KEY].state.get("ui_proxy_secret")
    sent = request.headers.get(PROXY_AUTH_HEADER)
    return bool(
        expected and sent and hmac.compare_digest(str(expected).encode(), sent.encode(errors="surrogateescape"))
    )


async def authenticate(pool: asyncpg.Pool, request: web.Request) -> Principal:
    """Resolve X-API-Key or a Bearer token to a principal, or raise Unauthenticated."""
    key = _credential(request.headers.get("X-API-Key"), "the X-API-Key header")
    bearer = request.headers.get("Authorization", "")
    token = _credential(bearer[7:], "the bearer token") if bearer[:7].lower() == "bearer " else None
    if key:
        return await _from_key(pool, key, request)
    if token and token.startswith(KEY_PREFIX):
        return await _from_key(pool, token, request)
    if token and token.startswith(ACCESS_PREFIX):
        return await _from_oauth(pool, token, request)
    if token:
        return await _from_session(pool, token, request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and request.path.startswith("/api/"):
        who = await _from_session(pool, cookie, request)
        await check_session_request(request, cookie, request.app[CTX_KEY].settings)  # type: ignore[arg-type]
        return who
    raise Unauthenticated("send an API key in X-API-Key, or a bearer token")


def _credential(value: str | None, where: str) -> str | None:
    """A key or token as sent, trimmed; one with characters no key or token has (not printable ASCII: often raw
    UTF-8 or binary bytes in a header) is refused here, as matching nothing."""
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isprintable()):
        raise Unauthenticated(f"{where} holds characters no AgentPort key or token has; send it as printable ASCII")
    return value


async def session_human(pool: asyncpg.Pool, request: web.Request) -> Principal | None:
    """The human signed in through the session cookie, if any (a state change still needs its own CSRF check)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        return await _from_session(pool, cookie, request)
    except Unauthenticated:
        return None


async def _from_oauth(pool: asyncpg.Pool, token: str, request: web.Request) -> Principal:
    """An OAuth access token acts like an API key of the human who consented, and only on `/mcp`."""
    if request.path != "/mcp" and not request.path.startswith("/mcp/"):
        raise InvalidToken("an OAuth access token is only valid for /mcp; use an API key here")
    base_url = request.app[CTX_KEY].settings.base_url.rstrip("/")  # type: ignore[attr-defined]
    owner = await verify_access_token(pool, token, f"{base_url}/mcp")
    return Principal(org_id=owner.org_id, actor=owner.actor, role=None, client_ip=client_ip(request))


async def _from_key(pool: asyncpg.Pool, key: str, request: web.Request) -> Principal:
    row = await pool.fetchrow(
        "SELECT key_id, org_id, user_id, name FROM api_keys WHERE key_hash=$1 AND revoked_at IS NULL",
        token_hash(key.strip()),
    )
    if row is None:
        raise Unauthenticated("this API key is not valid (unknown or revoked)")
    actor = Actor(kind="api_key", id=row["key_id"], name=row["name"], user_id=row["user_id"])
    return Principal(org_id=row["org_id"], actor=actor, role=None, client_ip=client_ip(request))


async def _from_session(pool: asyncpg.Pool, token: str, request: web.Request) -> Principal:
    token = _credential(token, "the session token") or ""
    row = await pool.fetchrow(
        """SELECT u.user_id, u.org_id, u.email, u.role FROM sessions s JOIN users u USING (user_id)
           WHERE s.token_hash=$1 AND s.expires_at > now()""",
        token_hash(token),
    )
    if row is None:
        raise Unauthenticated("this token is not valid (unknown, expired or logged out)")
    actor = Actor(kind="user", id=row["user_id"], name=row["email"], user_id=row["user_id"])
    return Principal(org_id=row["org_id"], actor=actor, role=row["role"], client_ip=client_ip(request))


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the caller for /api and /mcp; the rest is public."""
    path = request.path
    if path in PUBLIC_PATHS or not (path.startswith("/api/") or path == "/mcp" or path.startswith("/mcp/")):
        return await handler(request)
    pool = request.app[CTX_KEY].pool
    request[PRINCIPAL] = await authenticate(pool, request)
    return await handler(request)


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]
