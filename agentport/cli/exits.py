"""Exit codes of the `agentport` command and the one error type its commands raise."""

from __future__ import annotations

OK = 0
ERROR = 1
USAGE = 2
APPROVAL_REQUIRED = 3
DENIED = 4
EXPIRED = 5

STATUS_EXIT = {
    "executed": OK,
    "approval_required": APPROVAL_REQUIRED,
    "pending": APPROVAL_REQUIRED,
    "denied": DENIED,
    "expired": EXPIRED,
    "error": ERROR,
}


class CliError(Exception):
    """A failure shown to the user as one line, `agentport: <message>`, with its exit code.

    `error_code` names the failure for `--json` readers (the gateway's own code when it gave one).
    """

    def __init__(self, message: str, code: int = ERROR, error_code: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error_code = error_code

    def as_json(self) -> dict[str, object]:
        """What `--json` prints on stdout for this failure."""
        return {"status": "error", "error": {"code": self.error_code, "message": self.message}}


class UsageError(CliError):
    """Bad input that the gateway never saw: exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, USAGE, "usage")
