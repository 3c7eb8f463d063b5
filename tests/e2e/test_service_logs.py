"""Across the whole suite: no service logged an error that no test caused on purpose.

A retry can hide a failure from every other assertion (the call succeeds on the second attempt); the error it
logged the first time is still a bug. Tests that cause errors on purpose declare them with
`@pytest.mark.expects_error_logs(...)` (tests/support/error_logs.py)."""

from __future__ import annotations

import pytest

from tests.support.error_logs import EXPECTED, unexpected_errors
from tests.support.stack import SERVICES, Stack


@pytest.mark.suite_end
async def test_no_service_logged_an_error_that_no_test_expected(stack: Stack, request: pytest.FixtureRequest) -> None:
    await stack.settled()  # what the services do in reaction to the last tests is logged by now
    found, read = unexpected_errors(stack.workdir, request.config.stash[EXPECTED])
    assert set(SERVICES) <= set(read), f"every service has a log: {sorted(read)}"
    assert all(read.values()), f"every log is in a format this check reads (structured entries: {read})"
    listed = "\n".join(str(entry) for entry in found[:40])
    assert not found, f"{len(found)} error lines no test declared (first {min(len(found), 40)}):\n{listed}"
