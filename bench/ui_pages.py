"""Server-side render time of the web UI's pages with 1,000 logged calls and 100 pending approvals (goal: < 100 ms)."""

from __future__ import annotations

import asyncio
import logging
import re
import statistics
import time

import httpx

from bench.harness import running_stack
from tests.support.agentport import add_custom_upstream, new_tenant, set_mode
from tests.support.upstream import running_upstream

LOGGED_CALLS = 1000
PENDING = 100
SAMPLES = 30
GOAL_MS = 100.0
SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _seed(http: httpx.AsyncClient, agent: dict[str, str]) -> tuple[str, str]:
    """1,000 executed calls and 100 held ones; returns one pending request id and one call id."""
    slots = asyncio.Semaphore(16)

    async def one(path: str, arguments: dict[str, object]) -> dict[str, object]:
        async with slots:
            r = await http.post(path, json={"arguments": arguments, "additional_info": "bench"}, headers=agent)
            return dict(r.json())

    executed = await asyncio.gather(
        *(one("/api/tools/up/echo/call", {"text": f"bench {i}"}) for i in range(LOGGED_CALLS))
    )
    held = await asyncio.gather(*(one("/api/tools/up/add/call", {"a": i, "b": 1}) for i in range(PENDING)))
    assert all(r["status"] == "executed" for r in executed), executed[:3]
    assert all(r["status"] == "approval_required" for r in held), held[:3]
    return str(held[0]["approval_request_id"]), str(executed[0]["call_id"])


async def _audited(http: httpx.AsyncClient, human: dict[str, str], total: int) -> None:
    """Wait until the audit log holds every seeded call (it is written asynchronously)."""
    for _ in range(600):
        if int((await http.get("/api/logs", headers=human)).headers["X-Total-Count"]) >= total:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the audit log never caught up")


async def _browser(base_url: str, email: str, password: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base_url, timeout=60)
    token = CSRF.search((await client.get("/login")).text)
    assert token
    r = await client.post(
        "/login",
        data={"csrf_token": token.group(1), "email": email, "password": password},
        headers={"Origin": base_url},
    )
    assert r.status_code in (200, 303) and "agentport_session" in client.cookies
    return client


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * q) - 1)]


async def run() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    async with running_upstream(None) as upstream, running_stack() as stack:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=120) as http:
            tenant = await new_tenant(stack, http, "bench-ui")
            await add_custom_upstream(http, tenant, upstream.url, "up", bearer=False)
            assert (await http.post("/api/installed", json={"integration_id": "up"}, headers=tenant.agent)).is_success
            await set_mode(http, tenant, "up", "echo", "allow")
            started = time.perf_counter()
            request_id, call_id = await _seed(http, tenant.agent)
            await _audited(http, tenant.human, LOGGED_CALLS + PENDING)
            took = time.perf_counter() - started
            print(f"seeded {LOGGED_CALLS} calls and {PENDING} pending approvals in {took:.1f} s")
        browser = await _browser(stack.base_url, tenant.email, tenant.password)
        pages = {
            "approvals queue": "/ui/approvals",
            "queue rows (live refresh)": "/ui/approvals/rows",
            "approval page": f"/approve/{request_id}",
            "logs": "/ui/logs",
            "logs, filtered": "/ui/logs?tool_name=echo&status=completed&offset=500",
            "one call's story": f"/ui/logs/{call_id}",
            "integrations": "/ui/integrations",
            "API keys": "/ui/keys",
            "settings": "/ui/settings",
            "people": "/ui/users",
        }
        baseline: list[float] = []
        for _ in range(SAMPLES):
            start = time.perf_counter()
            assert (await browser.get("/api/users/me")).status_code == 200
            baseline.append((time.perf_counter() - start) * 1000)
        base = statistics.median(baseline)
        print(f"{'page':28} {'server p50':>11} {'server p95':>11} {'round trip p50':>15} {'vs /api/users/me':>17}")
        worst = 0.0
        for name, path in pages.items():
            server, total = [], []
            for _ in range(SAMPLES):
                start = time.perf_counter()
                r = await browser.get(path)
                total.append((time.perf_counter() - start) * 1000)
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
                timing = SERVER_TIMING.search(r.headers.get("server-timing", ""))
                assert timing, path
                server.append(float(timing.group(1)))
            worst = max(worst, _p(server, 0.95))
            print(
                f"{name:28} {statistics.median(server):8.1f} ms {_p(server, 0.95):8.1f} ms "
                f"{statistics.median(total):12.1f} ms {statistics.median(total) / base:15.1f}x"
            )
        await browser.aclose()
        verdict = "within" if worst < GOAL_MS else "OVER"
        print(
            f"worst server-side p95 {worst:.1f} ms: {verdict} the {GOAL_MS:.0f} ms goal "
            f"(baseline /api/users/me round trip p50 {base:.1f} ms)"
        )
