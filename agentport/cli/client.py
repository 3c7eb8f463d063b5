"""HTTP to the gateway's REST API: JSON in, JSON out, every failure turned into one readable line."""

from __future__ import annotations

from typing import Any

import httpx

from agentport.cli.config import LOGGING_IN, Credential
from agentport.cli.exits import CliError

CONNECT_SECONDS = 10.0
READ_SECONDS = 60.0
# A long-poll is answered by the gateway within its budget; this is the slack on top for the network.
POLL_SLACK_SECONDS = 15.0


class Gateway:
    """A session with the gateway at `url`, authenticated by `credential` when there is one."""

    def __init__(self, url: str, credential: Credential | None) -> None:
        self.url = url
        self.credential = credential
        # The gateway records calls that carry this header as made through the CLI channel.
        headers = {"User-Agent": "agentport-cli", "Accept": "application/json", "X-AgentPort-Client": "cli"}
        if credential is not None:
            headers.update(credential.headers())
        self.http = httpx.Client(
            base_url=url, headers=headers, timeout=httpx.Timeout(READ_SECONDS, connect=CONNECT_SECONDS)
        )

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body if body is not None else {}, **kwargs)

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def long_poll(
        self, path: str, seconds: float, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        """POST with `?timeout=seconds`, waiting a little longer than the gateway's own budget."""
        return self.request(
            "POST",
            path,
            json=body if body is not None else {},
            params={"timeout": f"{seconds:g}"},
            timeout=httpx.Timeout(seconds + POLL_SLACK_SECONDS, connect=CONNECT_SECONDS),
            headers=headers,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; the parsed JSON body on success, else a CliError with the gateway's message."""
        params = {k: v for k, v in (kwargs.pop("params", None) or {}).items() if v is not None}
        try:
            response = self.http.request(method, path, params=params, **kwargs)
        except httpx.ConnectError as exc:
            raise CliError(
                f"cannot reach the AgentPort gateway at {self.url} (is it running? `make run`)",
                error_code="unavailable",
            ) from exc
        except httpx.TimeoutException as exc:
            raise CliError(f"the AgentPort gateway at {self.url} did not answer in time", error_code="timeout") from exc
        except httpx.HTTPError as exc:
            raise CliError(
                f"talking to the AgentPort gateway at {self.url} failed: {exc}", error_code="unavailable"
            ) from exc
        if response.status_code >= 400:
            raise self._failure(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(
                f"the gateway at {self.url} answered HTTP {response.status_code} without JSON; is that AgentPort?"
            ) from exc

    def _failure(self, response: httpx.Response) -> CliError:
        """The gateway's `{"error": {"code", "message"}}` as one error, with a hint on what to do about
        authentication; without such a body, a code derived from the HTTP status."""
        try:
            error = response.json().get("error") or {}
            message = str(error.get("message") or f"HTTP {response.status_code}")
            code = error.get("code")
        except (ValueError, AttributeError):
            message, code = f"the gateway at {self.url} answered HTTP {response.status_code}", None
        source = self.credential.source if self.credential else None
        if response.status_code == 401 and source == "environment":
            message += " (check AGENTPORT_API_KEY)"
        elif response.status_code == 401 and source not in (None, LOGGING_IN):
            message += " (run `agentport login`)"
        elif response.status_code == 403 and self.credential and self.credential.kind == "api_key":
            message += " (log in as a human: `agentport login --email you@example.com`)"
        return CliError(message, error_code=str(code) if code else f"http_{response.status_code}")
