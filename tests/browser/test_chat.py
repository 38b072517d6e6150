"""A seeker and a listener talk through the real server, in two browser contexts."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.steps import Pages, listener_box, pair, seeker_box, send

XSS = "<img src=x onerror=alert(1)>"


def test_seeker_and_listener_talk_and_end(pages: Pages) -> None:
    """A seeker and a listener pair, exchange messages both ways, see typing, and end the chat."""
    seeker, listener = pair(pages, note="I can't sleep")
    panel = listener.locator(".room-panel:not([hidden])")
    expect(panel.locator(".first-words")).to_contain_text("I can't sleep")

    seeker_box(seeker).fill("hello there")
    expect(panel.locator(".typing")).to_contain_text("is typing…")
    seeker_box(seeker).press("Enter")
    expect(panel.locator(".log")).to_contain_text("hello there")
    own = seeker.locator("#log .msg.own", has_text="hello there")
    expect(own.locator(".state")).to_have_text("Delivered")

    listener_box(listener).fill("Hi, I'm Sam. I'm listening.")
    expect(seeker.locator("#typing")).to_have_text("Sam is typing…")
    listener_box(listener).press("Enter")
    expect(seeker.locator("#log .msg.peer")).to_contain_text("I'm listening.")
    expect(panel.locator(".msg.own .state")).to_have_text(["Delivered"])

    seeker.get_by_role("button", name="End chat").click()
    expect(seeker.locator("#ended-text")).to_contain_text("You ended the chat")
    expect(seeker.get_by_role("button", name="Start a new chat")).to_be_visible()
    expect(panel.locator(".log")).to_contain_text("has left the chat")
    expect(panel.get_by_role("button", name="Close this tab")).to_be_visible()


def test_markup_in_messages_is_shown_as_text(pages: Pages) -> None:
    """Markup in a note and in messages shows as text and runs nothing."""
    seeker, listener = pair(pages, note=XSS)  # every page records dialogs from its start
    panel = listener.locator(".room-panel:not([hidden])")
    expect(panel.locator(".first-words")).to_contain_text(XSS)

    send(seeker_box(seeker), XSS)
    send(listener_box(listener), XSS + " back")
    expect(panel.locator(".log .msg.peer .text")).to_have_text(XSS)
    expect(seeker.locator("#log .msg.peer .text")).to_have_text(XSS + " back")
    expect(seeker.locator("#log .msg.own .state")).to_have_text("Delivered")

    for page in (seeker, listener):
        assert page.locator("main img").count() == 0
    assert pages.dialogs == []


def test_reload_resumes_without_duplicates(pages: Pages) -> None:
    """A reloaded seeker page resumes its chat and shows each message once."""
    seeker, listener = pair(pages)
    send(seeker_box(seeker), "first words from me")
    send(listener_box(listener), "a reply from Sam")
    expect(seeker.locator("#log .msg.peer .text")).to_have_text(["a reply from Sam"])
    expect(seeker.locator("#log .msg.own .state")).to_have_text(["Delivered"])

    seeker.reload()
    expect(seeker.get_by_role("heading", name="You're talking with Sam")).to_be_visible()
    expect(seeker.locator("#log .msg .text")).to_have_text(
        ["first words from me", "a reply from Sam"])
    send(seeker_box(seeker), "still here after a reload")
    expect(listener.locator(".room-panel:not([hidden]) .log .msg.peer .text")).to_have_text(
        ["first words from me", "still here after a reload"])
    assert seeker.evaluate("() => document.cookie") == ""
    assert seeker.evaluate("() => localStorage.length") == 0


def test_moderator_sees_room_and_joins(pages: Pages) -> None:
    """A moderator sees the room appear, joins it, and the seeker sees a presence note."""
    moderator = pages.moderator()
    expect(moderator.get_by_text("No rooms are open right now.")).to_be_visible()
    seeker, listener = pair(pages)
    send(seeker_box(seeker), "is anyone else here?")

    row = moderator.locator("#room-rows tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("1 seeker, 1 listener")
    row.get_by_role("button", name="Join").click()
    expect(moderator.locator("#room-log")).to_contain_text("is anyone else here?")
    expect(seeker.locator("#log")).to_contain_text("A moderator, Mod Ana, has joined")

    send(moderator.get_by_label("Message to the room (everyone sees it)"),
         "Hello, I'm a moderator.")
    expect(seeker.locator("#log .msg.peer")).to_contain_text("Hello, I'm a moderator.")
    send(moderator.get_by_label("Whisper to the listener (the seeker never sees it)"),
         "You're doing well.")
    whispers = listener.locator(".whispers")
    expect(whispers).to_contain_text("only you can see this")
    expect(whispers).to_contain_text("You're doing well.")
    expect(seeker.locator("main")).not_to_contain_text("You're doing well.")



def test_crisis_message_brings_help_and_alerts(pages: Pages) -> None:
    """A crisis message shows the seeker help, marks the listener's chat and alerts moderators."""
    moderator = pages.moderator()
    seeker, listener = pair(pages, note="just tired")
    send(seeker_box(seeker), "i want to kill myself tonight")

    resources = seeker.get_by_role("complementary", name="Help is here if you need it now")
    expect(resources).to_be_visible()
    expect(resources.locator("li").first).to_be_visible()
    expect(listener.get_by_role("tab")).to_contain_text("Crisis")
    expect(listener.locator("#hold")).to_have_text(
        "You're in a crisis chat — no new chats until it ends.")
    expect(moderator.locator("#alerts li").first).to_contain_text("Crisis")
    expect(moderator.locator("#room-rows tr.row-crisis")).to_have_count(1)


def test_moderator_closes_and_blocks(pages: Pages) -> None:
    """A moderator closes a room with a block: both people are told in plain words."""
    moderator = pages.moderator()
    seeker, listener = pair(pages)
    moderator.locator("#room-rows tr").get_by_role("button", name="Watch").click()
    moderator.get_by_label("Reason").fill("abusive messages")
    moderator.get_by_label("Block this seeker for a while").check()
    moderator.get_by_role("button", name="Close room").click()

    expect(seeker.locator("#ended-text")).to_have_text("A moderator has closed this chat.")
    expect(listener.locator(".room-panel .log")).to_contain_text("A moderator closed this chat.")
    expect(moderator.locator("#room-mode")).to_have_text("This room has ended.")
    expect(moderator.get_by_text("No rooms are open right now.")).to_be_visible()


# Wraps the page's WebSocket so a test can drop it, and hold reconnects off for a while
# (a held socket asks for a path of ours that refuses the upgrade, as a dead network would).
DROPPABLE = r"""(() => {
  const Real = window.WebSocket;
  window.__sockets = [];
  window.__hold = false;
  window.WebSocket = class extends Real {
    constructor(url, protocols) {
      super(window.__hold ? String(url).replace(/\/ws$/, "/ws-held") : url, protocols);
      window.__sockets.push(this);
    }
  };
})();"""


def test_dropped_connection_resumes_and_shows_what_was_missed(pages: Pages) -> None:
    """When the seeker's connection drops, the listener sees them go; the page reconnects by
    itself, resumes, and shows the message sent meanwhile, once."""
    seeker, listener = pair(pages)
    send(listener_box(listener), "before the drop")
    expect(seeker.locator("#log .msg.peer .text")).to_have_text(["before the drop"])
    seeker.context.add_init_script(DROPPABLE)
    seeker.reload()  # resumes, now with a socket the test can drop
    expect(seeker.locator("#log .msg.peer .text")).to_have_text(["before the drop"])

    seeker.evaluate("() => { window.__hold = true; window.__sockets.at(-1).close(4000); }")
    expect(listener.locator(".room-panel:not([hidden]) .log")).to_contain_text("lost connection")
    send(listener_box(listener), "sent while you were away")
    seeker.evaluate("() => { window.__hold = false; }")

    expect(seeker.locator("#log .msg.peer .text")).to_have_text(
        ["before the drop", "sent while you were away"], timeout=20_000)
    expect(listener.locator(".room-panel:not([hidden]) .log")).to_contain_text("is back")
    assert seeker.evaluate("() => document.cookie") == ""
