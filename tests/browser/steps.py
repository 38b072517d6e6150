"""What the browser tests share: the people's steps, the Pages opener, the request record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    Locator,
    Page,
    Route,
    ViewportSize,
)

from tests.support.procs import Server

ROOT = Path(__file__).resolve().parents[2]
EXIT_URL = "https://www.bbc.co.uk/weather"
AXE = ROOT / "build" / "node" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "build" / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

# Every request any page made in this session: (url, the origin it had to stay on).
REQUESTS: list[tuple[str, str]] = []


def off_origin(requests: list[tuple[str, str]]) -> list[str]:
    """Request URLs that left their server's origin (the quick-exit URL excepted)."""
    return [url for url, origin in requests
            if not (url.startswith(origin + "/") or url == origin or url.startswith(EXIT_URL))]


@dataclass
class Pages:
    """Opens pages of one server in separate browser contexts (separate people)."""

    browser: Browser
    server: Server
    contexts: list[BrowserContext] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    # While a list: requests for the exit URL wait here, unanswered, so that the
    # page the exit left behind can be looked at before the neutral site loads.
    held_exits: list[Route] | None = None

    def open(self, path: str = "/", *, viewport: ViewportSize | None = None,
             bypass_csp: bool = False) -> Page:
        ctx = self.browser.new_context(viewport=viewport or DESKTOP, bypass_csp=bypass_csp,
                                       service_workers="block")
        self.contexts.append(ctx)
        origin = self.server.url
        ctx.on("request", lambda r: REQUESTS.append((r.url, origin)))
        ctx.route(EXIT_URL + "**", self._blank_exit)
        page = ctx.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda e: self.errors.append(f"{path}: {e}"))
        page.on("dialog", self._dialog)
        page.on("websocket",
                lambda ws: REQUESTS.append((ws.url.replace("ws://", "http://", 1), origin)))
        page.goto(origin + path)
        return page

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _blank_exit(self, route: Route) -> None:
        self.exits.append(route.request.url)
        if self.held_exits is not None:
            self.held_exits.append(route)
            return
        self._fulfil_exit(route)

    @staticmethod
    def _fulfil_exit(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html",
                      body="<!doctype html><title>Weather</title><p>Weather</p>")

    def release_exits(self) -> None:
        """Answer the held exit requests, and answer later ones at once."""
        held, self.held_exits = self.held_exits or [], None
        for route in held:
            self._fulfil_exit(route)

    def seeker(self, **kw: Any) -> Page:
        return self.open("/", **kw)

    def listener(self, name: str = "Sam", **kw: Any) -> Page:
        page = self.open(f"/listener#token={self.server.token('listener', name)}", **kw)
        page.get_by_text(f"Signed in as {name}").wait_for()
        return page

    def moderator(self, name: str = "Mod Ana", **kw: Any) -> Page:
        page = self.open(f"/moderator#token={self.server.token('moderator', name)}", **kw)
        page.get_by_text(f"Signed in as {name}").wait_for()
        return page

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()


# ---- Steps a person takes ---------------------------------------------------


def go_available(listener: Page, capacity: int = 2) -> None:
    listener.get_by_label("Available for new chats").check()
    listener.get_by_label("Chats at once (1 to 5)").fill(str(capacity))
    listener.get_by_role("button", name="Update my shift").click()
    listener.locator("#shift-state").filter(has_text="Available").wait_for()


def start_chat(seeker: Page, note: str = "", topic: str = "anything") -> None:
    seeker.get_by_label("What would you like to talk about?").select_option(topic)
    if note:
        seeker.get_by_label("What's on your mind?").fill(note)
    seeker.get_by_role("button", name="Start a chat").click()
    seeker.locator("#view-waiting, #view-chat").filter(visible=True).wait_for()


def pair(pages: Pages, note: str = "I can't sleep", **kw: Any) -> tuple[Page, Page]:
    """A listener on shift and a seeker in a chat with them."""
    listener = pages.listener(**kw)
    go_available(listener)
    seeker = pages.seeker(**kw)
    start_chat(seeker, note)
    seeker.get_by_role("heading", name="You're talking with Sam").wait_for()
    listener.get_by_role("tab").first.wait_for()
    return seeker, listener


def seeker_box(seeker: Page) -> Locator:
    return seeker.get_by_label("Your message")


def listener_box(listener: Page) -> Locator:
    return listener.locator(".room-panel:not([hidden]) .composer textarea")


def send(box: Locator, text: str) -> None:
    """Type into a chat box and press Enter."""
    box.fill(text)
    box.press("Enter")


Walk = Callable[[str, Page], None]


def walk(pages: Pages, visit: Walk, viewport: ViewportSize | None = None,
         bypass_csp: bool = False) -> None:
    """Drive all three pages through their states, calling ``visit(name, page)`` at each.

    States: moderator-empty, seeker-start, seeker-waiting (nobody on shift),
    listener-off-shift, seeker-chat, listener-room, moderator-room,
    moderator-watching, seeker-ended.
    """
    kw: dict[str, Any] = {"viewport": viewport, "bypass_csp": bypass_csp}
    moderator = pages.moderator(**kw)
    visit("moderator-empty", moderator)

    seeker = pages.seeker(**kw)
    visit("seeker-start", seeker)
    start_chat(seeker, "Everything feels too much tonight and I can't sleep.", "anxiety")
    seeker.get_by_text("Nobody is on shift right now.").wait_for()
    seeker.locator("#wait-resources li").first.wait_for()
    visit("seeker-waiting", seeker)

    listener = pages.listener(**kw)
    visit("listener-off-shift", listener)
    go_available(listener)
    seeker.get_by_role("heading", name="You're talking with Sam").wait_for()
    send(seeker_box(seeker), "Hi. I don't really know where to start.")
    listener.get_by_text("I don't really know where to start.").wait_for()
    send(listener_box(listener), "That's okay. I'm here, and there's no rush at all.")
    seeker.get_by_text("there's no rush at all").wait_for()
    seeker.get_by_role("button", name="Report or get help").click()
    seeker.get_by_role("button", name="Ask a moderator for help").click()
    seeker.get_by_text("A moderator has been alerted").wait_for()
    visit("seeker-chat", seeker)
    visit("listener-room", listener)

    moderator.locator("#room-rows tr").first.wait_for()
    moderator.locator("#alerts li").first.wait_for()
    visit("moderator-room", moderator)
    moderator.get_by_role("button", name="Watch").first.click()
    moderator.locator("#room-log").get_by_text("I'm here, and there's no rush").wait_for()
    visit("moderator-watching", moderator)

    seeker.get_by_role("button", name="End chat").click()
    seeker.get_by_role("button", name="Start a new chat").wait_for()
    visit("seeker-ended", seeker)
