// The conversation of one room, shared by the three pages: message log,
// typing indicator and message box.
//
// Messages are keyed by room and seq, so a replay after resume never shows a
// message twice; a message sent here stays "sending" until its echo (same
// client id) arrives, then shows "delivered".

import { clock, el } from "./dom.js";

const TYPING_SHOW_MS = 4000;
const TYPING_SEND_MS = 3000;

export class ChatLog {
  /**
   * @param {HTMLElement} node   an element with role="log" aria-live="polite"
   * @param {(from: object, id: string) => boolean} isOwn  is this message mine?
   */
  constructor(node, isOwn) {
    this.node = node;
    this.isOwn = isOwn;
    this.bySeq = new Map();
    this.pending = new Map();
    this.lastSeq = 0;
  }

  /**
   * Show a message this page is sending, before the server echoes it.
   * `queued`: not handed to the socket yet (offline); see takeQueued().
   */
  addPending(id, text, queued = false) {
    const item = bubble(text, "You", "own", queued ? "Waiting for the connection…" : "Sending…");
    item.classList.add("pending");
    if (queued) item.classList.add("queued");
    this.pending.set(id, item);
    this.place(item);
  }

  /** A `message` frame (live or replayed); returns false for a duplicate. */
  addMessage(frame) {
    if (this.bySeq.has(frame.seq)) return false;
    this.lastSeq = Math.max(this.lastSeq, frame.seq);
    const waiting = frame.id ? this.pending.get(frame.id) : undefined;
    const mine = Boolean(waiting) || this.isOwn(frame.from || {}, frame.id);
    let item = waiting;
    if (waiting) {
      // Update in place: the log announces the message once, not twice.
      this.pending.delete(frame.id);
      waiting.classList.remove("pending", "queued", "undelivered");
      setState(waiting, "Delivered");
    } else {
      item = bubble(
        frame.text,
        mine ? "You" : aliasOf(frame.from),
        mine ? "own" : `peer role-${(frame.from && frame.from.role) || "unknown"}`,
        mine ? "Delivered" : clock(frame.ts),
      );
      this.place(item);
    }
    item.dataset.seq = String(frame.seq);
    this.bySeq.set(frame.seq, item);
    return true;
  }

  /** Messages typed while offline, to send now: [{id, text}]. */
  takeQueued() {
    const queued = [...this.pending.entries()].filter(([, item]) => item.classList.contains("queued"));
    return queued.map(([id, item]) => {
      item.classList.remove("queued");
      setState(item, "Sending…");
      return { id, text: item.querySelector(".text").textContent };
    });
  }

  /** Messages sent before a dropped connection whose echo never came back. */
  markUndelivered() {
    for (const item of this.pending.values()) {
      if (!item.classList.contains("queued")) {
        item.classList.add("undelivered");
        setState(item, "Not delivered. Please send it again.");
      }
    }
  }

  /** A quiet line from Hearth itself (presence, notices, endings). */
  system(text, tone = "") {
    const item = el("p", { className: `system ${tone}`.trim() }, text);
    this.place(item);
    return item;
  }

  place(item) {
    const nearBottom = this.node.scrollHeight - this.node.scrollTop - this.node.clientHeight < 80;
    this.node.append(item);
    if (nearBottom || item.classList.contains("own")) this.node.scrollTop = this.node.scrollHeight;
  }
}

function setState(item, text) {
  const state = item.querySelector(".state");
  if (state) state.textContent = text;
}

function aliasOf(from) {
  if (!from) return "Someone";
  if (from.role === "moderator") return `${from.alias || "Moderator"} (moderator)`;
  return from.alias || "Someone";
}

function bubble(text, who, side, stateText) {
  return el(
    "div",
    { className: `msg ${side}` },
    el("p", { className: "who" }, who),
    el("p", { className: "text" }, text),
    el("p", { className: "state" }, stateText),
  );
}

/** "Sam is typing…" for a few seconds after each `typing` frame. */
export class TypingIndicator {
  constructor(node) {
    this.node = node;
    this.timer = null;
  }

  show(from) {
    this.node.textContent = `${(from && from.alias) || "Someone"} is typing…`;
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.clear(), TYPING_SHOW_MS);
  }

  clear() {
    window.clearTimeout(this.timer);
    this.node.textContent = "";
  }
}

/**
 * Wire a <form> holding a <textarea> and a submit button: Enter sends,
 * Shift+Enter makes a new line, typing is reported at most every 3 s.
 *
 * @param {HTMLFormElement} form
 * @param {{onSend: (text: string) => boolean|void, onTyping?: () => void,
 *          counter?: HTMLElement}} handlers
 */
export function wireComposer(form, { onSend, onTyping, counter }) {
  const box = form.querySelector("textarea");
  let lastTyping = 0;
  const count = () => {
    if (counter) counter.textContent = `${box.value.length} of ${box.maxLength} characters`;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = box.value.trim();
    if (!text) return;
    if (onSend(text) !== false) {
      box.value = "";
      lastTyping = 0;
      count();
    }
    box.focus();
  });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  box.addEventListener("input", () => {
    count();
    const now = Date.now();
    if (onTyping && box.value.trim() && now - lastTyping >= TYPING_SEND_MS) {
      lastTyping = now;
      onTyping();
    }
  });
  count();
  return box;
}

/** Build the DOM of a room's message box (used where rooms come and go). */
export function composerForm(idBase, label, maxLength = 2000) {
  const boxId = `${idBase}-text`;
  return el(
    "form",
    { className: "composer" },
    el("label", { for: boxId }, label),
    el(
      "div",
      { className: "composer-row" },
      el("textarea", { id: boxId, rows: 2, maxLength, autocomplete: "off" }),
      el("button", { type: "submit", className: "primary" }, "Send"),
    ),
  );
}

/** Render crisis resources ({name, contact, url}) into a list element. */
export function renderResources(list, items) {
  list.replaceChildren();
  for (const item of items || []) {
    const li = el("li", {}, el("strong", {}, item.name || ""));
    if (item.contact) li.append(el("span", { className: "contact" }, item.contact));
    if (item.url && /^https?:\/\//i.test(item.url)) {
      li.append(
        el("a", { href: item.url, target: "_blank", rel: "noopener noreferrer" },
          `${item.name || "Website"} website (opens in a new tab)`),
      );
    }
    list.append(li);
  }
}
