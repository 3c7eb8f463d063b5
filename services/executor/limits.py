"""What one upstream call may cost: how long it may take and how much it may send back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import mcp_types as types

MAX_TIMEOUT_SECONDS = 600.0


class LimitExceeded(Exception):
    """An upstream call broke a limit; `code` is the call.failed error code, the message says which limit."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Limits:
    """The limits of one integration's calls."""

    timeout: float
    max_bytes: int

    @classmethod
    def of(cls, timeout: float | None, default_timeout: float, max_bytes: int) -> Limits:
        """The integration's own timeout (bounded), else the executor's default."""
        chosen = min(timeout, MAX_TIMEOUT_SECONDS) if timeout else default_timeout
        return cls(timeout=chosen, max_bytes=max_bytes)

    def timed_out(self) -> LimitExceeded:
        return LimitExceeded(
            "timeout", f"the upstream did not answer within {self.timeout:g} seconds (this integration's call timeout)"
        )

    def too_large(self) -> LimitExceeded:
        return LimitExceeded(
            "response_too_large",
            f"the upstream's response is larger than the {self.max_bytes} byte limit; ask it for less data "
            "(an operator can raise AGENTPORT_MAX_RESPONSE_BYTES)",
        )


async def read_capped(response: httpx.Response, limits: Limits) -> bytes:
    """The response body, refusing to buffer more than the limit."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise limits.too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limits.max_bytes:
            raise limits.too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def check_result_size(result: types.CallToolResult, limits: Limits) -> types.CallToolResult:
    """Refuse an MCP result larger than the limit (it would also be too large to travel on the bus).

    Counted in bytes of UTF-8, as it is sent: a character can take four."""
    if len(result.model_dump_json(by_alias=True, exclude_none=True).encode()) > limits.max_bytes:
        raise limits.too_large()
    return result


def text_result(text: str, structured: dict[str, Any] | None, is_error: bool) -> types.CallToolResult:
    """A tool result with one text block and, when there is one, the structured value."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured, is_error=is_error
    )
