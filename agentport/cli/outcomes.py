"""A call's outcome: waiting it out like `agentport__await_approval`, printing it, and its exit code."""

from __future__ import annotations

import json
import time
from typing import Any

from agentport.cli import output
from agentport.cli.client import Gateway
from agentport.cli.exits import ERROR, STATUS_EXIT

POLL_SECONDS = 50.0


def deadline(timeout: float | None) -> float | None:
    """The monotonic time a wait of `timeout` seconds started now ends (None: no limit)."""
    return None if timeout is None else time.monotonic() + timeout


def first_poll(until: float | None) -> float:
    """How long the first request may wait, never past the deadline."""
    return POLL_SECONDS if until is None else max(0.1, min(POLL_SECONDS, until - time.monotonic()))


def follow(gateway: Gateway, result: dict[str, Any], wait: bool, until: float | None) -> dict[str, Any]:
    """Wait while the call runs and, with `wait`, while a human decides, until the `until` deadline if any."""
    announced: str | None = None
    while result.get("status") in ("approval_required", "pending"):
        request_id = result.get("approval_request_id")
        if request_id and not wait:
            return result
        left = POLL_SECONDS if until is None else min(POLL_SECONDS, until - time.monotonic())
        if left <= 0:
            return result
        if request_id:
            if announced != request_id:
                announce(result)
                announced = request_id
            with output.Spinner(f"waiting for a human to decide: {result.get('approval_url')}"):
                result = gateway.long_poll(f"/api/tool-approvals/requests/{request_id}/await", left)
        else:
            with output.Spinner("waiting for the call to finish"):
                result = gateway.long_poll(f"/api/calls/{result['call_id']}/await", left)
    return result


def announce(result: dict[str, Any]) -> None:
    """The approval URL, once, on stderr: the line a person or agent shares with the approver."""
    output.note(f"Approval needed: share {result.get('approval_url')} with a human; waiting for the decision…")


def exit_code(result: dict[str, Any]) -> int:
    """0 executed (1 if the upstream reported an error), 3 awaiting a human, 4 denied, 5 expired, else 1."""
    status = str(result.get("status"))
    if status == "executed" and result.get("is_error"):
        return ERROR
    if status == "pending" and not result.get("approval_request_id"):
        return ERROR
    return STATUS_EXIT.get(status, ERROR)


def show(result: dict[str, Any], as_json: bool) -> int:
    """Print the outcome (the real result when executed) and return the exit code."""
    if as_json:
        output.emit_json(result)
        return exit_code(result)
    status = result.get("status")
    if status == "executed":
        print(result_text(result.get("result") or {}))
        if result.get("is_error"):
            output.note("agentport: the call ran, and the upstream reported an error (above)")
    elif status in ("approval_required", "pending") and result.get("approval_request_id"):
        request_id = result["approval_request_id"]
        still = "Still waiting for" if status == "pending" else "This call needs"
        print(f"{still} a human's approval. Share this link with a human: {result.get('approval_url')}")
        if result.get("expires_at"):
            print(f"The request expires at {output.when(result['expires_at'])}.")
        print(f"Then wait for the decision and the result: agentport approvals await {request_id}")
    elif status == "pending":
        print(f"Still running when the wait ended (call {result.get('call_id')}); the call was not cancelled.")
    elif status == "error":
        error = result.get("error") or {}
        output.note(f"agentport: the call failed: {error.get('message') or result.get('message')}")
    else:
        print(f"{str(status).capitalize()}: {result.get('message', '')}".rstrip())
    return exit_code(result)


def result_text(result: dict[str, Any]) -> str:
    """An upstream MCP result as text: its text blocks, else its structured content as JSON."""
    parts: list[str] = []
    for block in result.get("content") or []:
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        else:
            parts.append(f"[{block.get('type')} {block.get('mimeType') or ''}]".replace(" ]", "]"))
    if not parts and result.get("structuredContent") is not None:
        parts.append(json.dumps(result["structuredContent"], indent=2))
    return "\n".join(parts)
