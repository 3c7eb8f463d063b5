"""One exception hierarchy mapped to the JSON error body and to MCP error results."""

from __future__ import annotations

from typing import Any, ClassVar


class AgentPortError(Exception):
    """Base for errors a user may see: a stable code, an HTTP status and a safe message."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self) -> dict[str, Any]:
        """The JSON error body `{"error": {"code", "message", ...}}`."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class BadRequest(AgentPortError):
    code = "bad_request"
    status = 400


class InvalidArguments(BadRequest):
    code = "invalid_arguments"


class Unauthenticated(AgentPortError):
    code = "unauthenticated"
    status = 401


class Forbidden(AgentPortError):
    code = "forbidden"
    status = 403


class NotFound(AgentPortError):
    code = "not_found"
    status = 404


class Conflict(AgentPortError):
    code = "conflict"
    status = 409


class PayloadTooLarge(AgentPortError):
    """A request (or the event it would become) is larger than the bus or the server accepts."""

    code = "payload_too_large"
    status = 413


class TooManyAttempts(AgentPortError):
    code = "too_many_attempts"
    status = 429


class Unavailable(AgentPortError):
    code = "unavailable"
    status = 503


class UpstreamError(AgentPortError):
    code = "upstream_error"
    status = 502


_BY_CODE: dict[str, type[AgentPortError]] = {}


def _register(cls: type[AgentPortError]) -> None:
    _BY_CODE[cls.code] = cls
    for sub in cls.__subclasses__():
        _register(sub)


def error_from_body(body: dict[str, Any]) -> AgentPortError:
    """Rebuild an error from its JSON body (for errors that crossed the bus)."""
    if not _BY_CODE:
        _register(AgentPortError)
    error = body.get("error") or {}
    cls = _BY_CODE.get(str(error.get("code")), AgentPortError)
    return cls(str(error.get("message", "error")), **(error.get("details") or {}))
