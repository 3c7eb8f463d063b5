"""Which redirect URIs a client may register, and when a requested one matches a registered one.

Matching is exact string comparison, with the single exception RFC 8252 §7.3 requires: a loopback `http`
redirect may come back on any port, since a native app picks a free one each time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_URI_TEXT = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*$")
# Schemes a browser would run, read locally or open as a document rather than hand to an app.
_REFUSED_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "about", "blob", "ftp", "ws", "wss"})


def is_uri_text(uri: str) -> bool:
    """Whether `uri` holds only characters a URI may (RFC 3986): no backslash, quote, space or non-ASCII."""
    return bool(_URI_TEXT.match(uri))


def registration_problem(uri: str) -> str | None:
    """Why `uri` cannot be registered as a redirect URI (a sentence), or None when it can."""
    if not isinstance(uri, str) or not uri or any(ch.isspace() for ch in uri):
        return "must be a non-empty URI without spaces"
    try:
        parts = urlsplit(uri)
        _ = parts.port
    except ValueError:
        return "is not a valid URI"
    scheme = parts.scheme.lower()
    if not scheme or not _SCHEME.match(scheme):
        return "must be an absolute URI"
    if "#" in uri:
        return "must not contain a fragment"
    if parts.username or parts.password:
        return "must not carry credentials"
    if scheme == "https":
        return None if parts.hostname else "needs a host"
    if scheme == "http":
        if parts.hostname in LOOPBACK_HOSTS:
            return None
        return "may use http only on a loopback address (127.0.0.1, [::1] or localhost); use https"
    if scheme in _REFUSED_SCHEMES:
        return f"uses the {scheme}: scheme, which cannot receive an authorization response"
    return None


def matches(registered: Iterable[str], requested: str) -> bool:
    """Whether `requested` is one of the registered redirect URIs (any port for a loopback http one)."""
    registered = list(registered)
    if requested in registered:
        return True
    wanted = _loopback_key(requested)
    return wanted is not None and any(_loopback_key(uri) == wanted for uri in registered)


def _loopback_key(uri: str) -> tuple[str, str, str] | None:
    """A loopback http URI without its port, or None for any other URI."""
    try:
        parts = urlsplit(uri)
        _ = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS or parts.fragment:
        return None
    return parts.hostname or "", parts.path, parts.query
