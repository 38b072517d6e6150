"""Quick exit, and pages that never talk to another host."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.steps import EXIT_URL, REQUESTS, Pages, off_origin, pair, seeker_box, send, walk

RESUME_KEY = "hearth.seeker.resume"


@pytest.mark.parametrize("how", ["button", "shift"])
def test_quick_exit_leaves_nothing_behind(pages: Pages, how: str) -> None:
    """Quick exit (button or Shift×3) blanks the page, forgets the session and ends the chat."""
    seeker, listener = pair(pages)
    send(seeker_box(seeker), "something private")
    expect(seeker.locator("#log .msg.own .state")).to_have_text("Delivered")
    assert seeker.evaluate(f"() => sessionStorage.getItem('{RESUME_KEY}')")

    # Record the page the moment it is blanked, before the neutral site loads. The
    # neutral site's answer is held back until the record has come: a navigation
    # that commits first drops the binding call (it failed make test once so).
    seen: list[dict[str, Any]] = []
    seeker.expose_function("recordExit", lambda state: seen.append(state))
    seeker.evaluate("""() => new MutationObserver(() => {
        if (document.body.children.length === 0) window.recordExit({
          storage: sessionStorage.length, text: document.body.textContent, url: location.href });
      }).observe(document.body, { childList: true })""")
    pages.held_exits = []
    if how == "button":  # not waiting for the navigation, which is held
        seeker.get_by_role("button", name="Quick exit").click(no_wait_after=True)
    else:
        seeker.locator("#message").focus()
        for _ in range(3):
            seeker.keyboard.press("Shift")
    deadline = time.monotonic() + 5
    while not (seen and pages.held_exits) and time.monotonic() < deadline:
        seeker.wait_for_timeout(20)  # lets Playwright deliver the binding call and the route
    assert pages.exits == [EXIT_URL]
    assert seen == [{"storage": 0, "text": "", "url": pages.server.url + "/"}]
    pages.release_exits()
    seeker.wait_for_url(EXIT_URL)

    # The goodbye close ends the seat at once: the listener is told.
    expect(listener.locator(".room-panel .log")).to_contain_text("has left the chat")

    # Same tab, back on our origin: no token to resume, nothing of the chat.
    seeker.goto(pages.server.url + "/")
    assert seeker.evaluate("() => sessionStorage.length") == 0
    expect(seeker.get_by_role("button", name="Start a chat")).to_be_visible()
    expect(seeker.locator("body")).not_to_contain_text("something private")


def test_no_page_requests_another_host(pages: Pages) -> None:
    """No page requests anything from another host; every asset is on the server's origin."""
    first = len(REQUESTS)
    walk(pages, lambda name, page: None)
    mine = [url for url, _ in REQUESTS[first:]]
    assert any(url.endswith("/static/css/hearth.css") for url in mine)
    assert any(url.endswith("/ws") for url in mine)
    assert not any(url.endswith("/favicon.ico") for url in mine)
    # Every request this session recorded, from every test run so far.
    assert off_origin(REQUESTS) == []
