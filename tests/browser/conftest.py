"""Browser fixtures: one headless Chromium per session, pages on a real server.

Every page opened through ``pages`` is watched: each request URL is recorded
(and must stay on the server's own origin, except the intercepted quick-exit
site), and an uncaught script error fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser.steps import REQUESTS, Pages, off_origin
from tests.support.procs import Server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope, not session: while sync Playwright is open it keeps an event loop
    # running in this thread, and the asyncio tests that follow could not start theirs.
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            headless=True,
        )
        yield b
        b.close()


@pytest.fixture
def pages(browser: Browser, server: Server) -> Iterator[Pages]:
    """Pages on a fresh server; fails the test on script errors or off-origin requests."""
    p = Pages(browser, server)
    first = len(REQUESTS)
    yield p
    p.close()
    assert not p.errors, p.errors
    assert not p.dialogs, p.dialogs
    assert not off_origin(REQUESTS[first:])


