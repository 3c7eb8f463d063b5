"""Agents that follow the contract's retry rules, half on REST and half on MCP.

Each call has its own idempotency key, which is also the echo text, so the upstream's record names the key. On
a transport error, a 5xx or an `internal`/`unavailable` error an agent asks again with the same key (or awaits
the same call id again); on `pending` it awaits the call id until the outcome is terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.agentport import mcp_client

INTEGRATION, TOOL = "up", "echo"
TERMINAL = frozenset({"executed", "error", "denied", "expired"})
RETRYABLE_CODES = frozenset({"internal", "unavailable"})
ATTEMPT_TIMEOUT = 25.0
MAX_PAUSE = 1.0

Send = Callable[[str, str], Awaitable[dict[str, Any]]]
"""Sends ("call", key) or ("await", call id) and returns the gateway's answer."""


@dataclass
class Call:
    """One call an agent wants made, under its own idempotency key, and what the agent learned about it."""

    key: str
    call_id: str | None = None  # the call to await, once the gateway named one
    call_ids: set[str] = field(default_factory=set)  # every call id the gateway named for this key
    answer: dict[str, Any] | None = None  # the terminal answer
    refused: str | None = None  # why the gateway refused to take the call at all
    attempts: int = 0
    first_sent: float | None = None  # monotonic times: the first attempt, and the terminal answer
    ended: float | None = None
    streak: int = 0  # problems in a row, for the pause before the next attempt
    problems: Counter[str] = field(default_factory=Counter)
    last_problem: str = ""

    @property
    def done(self) -> bool:
        return self.answer is not None or self.refused is not None

    @property
    def pause(self) -> float:
        return 0.0 if self.streak == 0 else min(0.1 * 2**self.streak, MAX_PAUSE)

    def trouble(self, what: str) -> None:
        self.problems[what] += 1
        self.last_problem = what
        self.streak += 1

    def take(self, answer: dict[str, Any]) -> None:
        """Act on one answer of the gateway, as the contract tells an agent to."""
        status, call_id = answer.get("status"), answer.get("call_id")
        error = answer.get("error")
        error = error if isinstance(error, dict) else {}
        if call_id:
            self.call_ids.add(str(call_id))
        if status == "error" and not call_id:  # the request failed, not the call
            code, http_status = error.get("code"), int(answer.get("http_status") or 0)
            if code in RETRYABLE_CODES or http_status >= 500 or http_status == 429:
                self.trouble(f"{http_status or 'mcp'} {code}")
            elif self.call_id is not None and code == "not_found":
                self.trouble(f"await {code}: re-asked with the key")
                self.call_id = None
            else:
                self.refused = f"{code}: {str(error.get('message'))[:120]}"
            return
        if status in TERMINAL:
            self.answer = answer
        elif status in ("pending", "approval_required") and call_id:
            self.call_id = str(call_id)
            self.streak = 0
        else:
            self.trouble(f"unexpected answer {status}" + ("" if call_id else " without call_id"))


@contextlib.asynccontextmanager
async def rest_session(base_url: str, headers: dict[str, str]) -> AsyncIterator[Send]:
    """An agent on REST: `Idempotency-Key` header, `POST /api/calls/{id}/await`."""
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=ATTEMPT_TIMEOUT) as http:

        async def send(kind: str, ident: str) -> dict[str, Any]:
            if kind == "call":
                r = await http.post(
                    f"/api/tools/{INTEGRATION}/{TOOL}/call",
                    json={"arguments": {"text": ident}},
                    headers={"Idempotency-Key": ident},
                )
            else:
                r = await http.post(f"/api/calls/{ident}/await")
            return _rest_answer(r)

        yield send


def _rest_answer(r: httpx.Response) -> dict[str, Any]:
    """The answer, with a failed request shaped like an MCP error result (plus its HTTP status)."""
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.is_success and isinstance(body, dict) and "status" in body:
        return body
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"code": "http", "message": r.text[:200]}
    return {"status": "error", "error": error, "http_status": r.status_code}


@contextlib.asynccontextmanager
async def mcp_session(base_url: str, headers: dict[str, str]) -> AsyncIterator[Send]:
    """An agent on MCP: `agentport__call_tool(idempotency_key=…)`, `agentport__await_approval(request_id=<call id>)`."""
    async with mcp_client(base_url, headers) as client:

        async def send(kind: str, ident: str) -> dict[str, Any]:
            if kind == "call":
                arguments = {
                    "integration_id": INTEGRATION,
                    "tool_name": TOOL,
                    "arguments": {"text": ident},
                    "idempotency_key": ident,
                }
                result = await client.call_tool("agentport__call_tool", arguments)
            else:
                result = await client.call_tool("agentport__await_approval", {"request_id": ident})
            if result.structured_content is None:
                raise RuntimeError(f"an answer without structuredContent: {str(result.content)[:200]}")
            return dict(result.structured_content)

        yield send


class Agents:
    """`count` agents (even ones on REST, odd ones on MCP) calling echo back to back, each call under its own key."""

    def __init__(self, base_url: str, headers: dict[str, str], prefix: str, count: int, think: float = 0.05) -> None:
        self.base_url, self.headers, self.prefix, self.count, self.think = base_url, headers, prefix, count, think
        self.calls: list[Call] = []
        self.successes: list[tuple[float, float]] = []  # (sent, answered) of each `executed` answer
        self._stopping = False
        self._give_up_at = float("inf")
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._agent(i)) for i in range(self.count)]

    async def stop(self, grace: float) -> None:
        """Start no new call; give the calls in flight `grace` seconds to end, then give up on them."""
        self._stopping = True
        self._give_up_at = time.monotonic() + grace
        if not self._tasks:
            return
        _, hung = await asyncio.wait(self._tasks, timeout=grace + ATTEMPT_TIMEOUT + 10)
        for task in hung:  # stuck opening or closing a session: its call stays without an outcome
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def recovered_at(self, fault_end: float) -> float | None:
        """When the first call attempt sent after the fault ended was answered `executed`."""
        return min((answered for sent, answered in self.successes if sent >= fault_end), default=None)

    async def wait_recovered(self, fault_end: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while (at := self.recovered_at(fault_end)) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return at

    async def _agent(self, n: int) -> None:
        session = rest_session if n % 2 == 0 else mcp_session
        call: Call | None = None
        made = 0
        while time.monotonic() < self._give_up_at:
            try:
                async with session(self.base_url, self.headers) as send:
                    while time.monotonic() < self._give_up_at:
                        if call is None or call.done:
                            if self._stopping:
                                return
                            await asyncio.sleep(self.think)
                            call = Call(f"{self.prefix}/{n}/{made}")
                            made += 1
                            self.calls.append(call)
                        await self._attempt(call, send)
                        await asyncio.sleep(call.pause)
                return
            except Exception as exc:  # the session broke (transport, timeout): a new one asks again
                if call is None or call.done:
                    if self._stopping:
                        return
                    await asyncio.sleep(MAX_PAUSE)
                else:
                    call.trouble(_describe(exc))
                    await asyncio.sleep(call.pause)

    async def _attempt(self, call: Call, send: Send) -> None:
        kind, ident = ("await", call.call_id) if call.call_id else ("call", call.key)
        call.attempts += 1
        sent = time.monotonic()
        call.first_sent = call.first_sent or sent
        async with asyncio.timeout(ATTEMPT_TIMEOUT):
            answer = await send(kind, ident)
        call.take(answer)
        if call.answer is not None:
            call.ended = time.monotonic()
            if call.answer.get("status") == "executed":
                self.successes.append((sent, call.ended))


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"session {type(exc).__name__} {str(exc)[:40]}".strip()
