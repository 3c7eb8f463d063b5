"""Session fixtures: real NATS and PostgreSQL (from the environment, or embedded), a fresh namespace and
database, every service running as its own process, and a counting upstream MCP server."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import error_logs
from tests.support.stack import Stack, isolated_stack
from tests.support.upstream import Upstream, running_upstream

ARTIFACTS = Path(__file__).parent / "artifacts"
PLANTED_SECRET = "planted-" + secrets.token_hex(16)


@pytest.fixture(scope="session")
def infra() -> Iterator[dict[str, str]]:
    """NATS_URL and DATABASE_URL: from the environment, else embedded servers started for the session.

    Their data lives outside pytest's temporary tree: another pytest session on the machine resets that tree's
    permissions, which the embedded PostgreSQL (running as its own user) cannot survive."""
    nats_url, db_url = os.environ.get("NATS_URL"), os.environ.get("DATABASE_URL")
    started, data_dir = None, None
    if not (nats_url and db_url):
        from shared.embedded import start_embedded

        data_dir = Path(tempfile.mkdtemp(prefix="agentport-test-embedded-"))
        started = start_embedded(data_dir, nats=not nats_url, postgres=not db_url)
        nats_url = nats_url or started.nats_url
        db_url = db_url or started.database_url
    assert nats_url and db_url
    yield {"NATS_URL": nats_url, "DATABASE_URL": db_url}
    if started is not None:
        started.stop()
    if data_dir is not None:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def stack(infra: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """Every service, each in its own process, on a namespace and database of the session's own."""
    workdir = tmp_path_factory.mktemp("stack")
    async with isolated_stack(infra["NATS_URL"], infra["DATABASE_URL"], workdir, artifacts=ARTIFACTS) as s:
        yield s


@pytest.fixture(scope="session")
async def upstream() -> AsyncIterator[Upstream]:
    """The counting upstream MCP server, which insists on the planted token."""
    async with running_upstream(PLANTED_SECRET) as up:
        yield up


@pytest.fixture(scope="session")
async def open_upstream() -> AsyncIterator[Upstream]:
    """An upstream that needs no credential."""
    async with running_upstream(None) as up:
        yield up


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as client:
        yield client


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", error_logs.MARKER_HELP)
    config.stash[error_logs.EXPECTED] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Note when a test that declared `expects_error_logs` ran (its fixtures' set-up and teardown included)."""
    start = error_logs.now()
    yield
    expected = error_logs.declared(item, start)
    if expected is not None:
        item.config.stash[error_logs.EXPECTED].append(expected)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Suite-wide invariant checks run after everything else has exercised the stack."""
    items.sort(key=lambda item: item.get_closest_marker("suite_end") is not None)
