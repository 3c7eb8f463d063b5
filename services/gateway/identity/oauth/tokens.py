"""OAuth tokens the gateway issues, and how `/mcp` turns an access token into the human who consented.

Tokens are random strings with a recognisable prefix (so secret scanners and `authenticate` can tell them
apart); only their SHA-256 is stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.gateway.identity.secrets_at_rest import token_hash
from shared.errors import Unauthenticated
from shared.events import Actor, utcnow

ACCESS_PREFIX = "apo_"
REFRESH_PREFIX = "apr_"
CODE_PREFIX = "apc_"
CLIENT_SECRET_PREFIX = "apcs_"  # noqa: S105 - a prefix, not a secret


class InvalidToken(Unauthenticated):
    """A bearer token that is not (or no longer) valid for this resource (RFC 6750 `invalid_token`)."""

    code = "invalid_token"


@dataclass(frozen=True)
class TokenOwner:
    """Who an access token acts for: the consenting human's org, and the client as actor."""

    org_id: str
    actor: Actor


def new_secret(prefix: str) -> str:
    """A fresh token, code or client secret."""
    return prefix + secrets.token_urlsafe(32)


def canonical_resource(uri: str) -> str:
    """A resource URI as compared (RFC 8707): lower-case scheme and host, no fragment, no trailing slash."""
    parts = urlsplit(uri.strip())
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


async def verify_access_token(pool: asyncpg.Pool, token: str, resource: str) -> TokenOwner:
    """The owner of a live access token issued for `resource`, or InvalidToken saying why not."""
    row = await pool.fetchrow(
        """SELECT t.expires_at, t.revoked_at, g.revoked_at AS grant_revoked_at, g.org_id, g.user_id, g.client_id,
                  g.client_name, g.resource
           FROM oauth_tokens t JOIN oauth_grants g USING (grant_id)
           WHERE t.token_hash=$1 AND t.kind='access'""",
        token_hash(token),
    )
    if row is None:
        raise InvalidToken("this OAuth access token is not valid")
    if row["revoked_at"] is not None or row["grant_revoked_at"] is not None:
        raise InvalidToken("this OAuth access token was revoked; sign in again")
    if row["expires_at"] <= utcnow():
        raise InvalidToken("this OAuth access token has expired; refresh it")
    if canonical_resource(row["resource"]) != canonical_resource(resource):
        raise InvalidToken(f"this OAuth access token was issued for another resource, not {resource}")
    actor = Actor(kind="oauth_client", id=row["client_id"], name=row["client_name"], user_id=row["user_id"])
    return TokenOwner(org_id=row["org_id"], actor=actor)
