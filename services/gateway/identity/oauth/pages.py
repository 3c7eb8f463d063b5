"""The few HTML pages of the OAuth flows: consent, a problem, and the end of an upstream sign-in."""

from __future__ import annotations

from html import escape
from string import Template
from urllib.parse import urlencode

from aiohttp import web

from services.gateway.http import safe_next

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

_LAYOUT = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title · AgentPort</title>
<style>
body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1f2328}
.box{border:1px solid #d0d7de;border-radius:8px;padding:1.25rem 1.5rem}
code{background:#f6f8fa;padding:.1rem .3rem;border-radius:4px;word-break:break-all}
.warn{color:#9a6700}.error{color:#cf222e;font-weight:600}
label{display:block;margin:.6rem 0 .2rem}input:not([type=hidden]){width:100%;padding:.4rem}
button{margin:1rem .5rem 0 0;padding:.5rem 1.1rem;font-size:1rem}
</style></head><body><div class="box">$body</div></body></html>""")

_CONSENT = Template("""<h1>Allow $client_name to use AgentPort as you?</h1>
$error
<p>After you decide, your browser goes back to <code>$redirect_uri</code>.</p>
<p class="warn">The name above is chosen by the application itself. Allow only if you started this sign-in
and recognise that address.</p>
<p>If you allow it, <strong>$client_name</strong> can do what one of your API keys can on
AgentPort's <code>/mcp</code>: discover and install integrations and call their tools, under your organization's
approval policies. It cannot change policies or approve calls. You can revoke it at any time.</p>
<p><small>Client id <code>$client_id</code>$scope</small></p>
<form method="post" action="/authorize">
$hidden
$who
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>""")


_SIGN_IN = """<p>Sign in with your AgentPort account to decide, or <a href="$login_url">sign in to AgentPort
first</a>.</p>
<label for="email">Email</label><input id="email" name="email" type="email" autocomplete="username">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password">
<label for="totp_code">Two-factor code (if you turned it on)</label>
<input id="totp_code" name="totp_code" inputmode="numeric" autocomplete="one-time-code">"""


def _html(title: str, body: str, status: int) -> web.Response:
    text = _LAYOUT.substitute(title=escape(title), body=body)
    return web.Response(status=status, text=text, content_type="text/html", headers=HEADERS)


def consent(
    *,
    client_name: str,
    client_id: str,
    redirect_uri: str,
    scope: str,
    params: list[tuple[str, str]],
    csrf: str,
    signed_in_as: str | None,
    error: str | None,
    status: int,
) -> web.Response:
    """The consent page, with the authorization request carried in hidden fields."""
    authorize = "/authorize?" + urlencode(params)
    sign_in = Template(_SIGN_IN).substitute(login_url=escape("/login?" + urlencode({"next": safe_next(authorize)})))
    fields = [*params, ("csrf", csrf)]
    hidden = "\n".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields)
    body = _CONSENT.substitute(
        client_name=escape(client_name),
        client_id=escape(client_id),
        redirect_uri=escape(redirect_uri),
        scope=f", scope <code>{escape(scope)}</code>" if scope else "",
        error=f'<p class="error">{escape(error)}</p>' if error else "",
        hidden=hidden,
        who=f"<p>Signed in as <strong>{escape(signed_in_as)}</strong>.</p>" if signed_in_as else sign_in,
    )
    return _html("Connect an application", body, status)


def problem(message: str, *, status: int = 400) -> web.Response:
    """A page explaining why a flow cannot go on."""
    return _html("Sign-in problem", f"<h1>Sign-in problem</h1><p>{escape(message)}</p>", status)


def done(title: str, message: str, *, status: int = 200) -> web.Response:
    """The page a browser lands on at the end of a flow."""
    return _html(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>", status)
