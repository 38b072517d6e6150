// One WebSocket session with the Hearth server: hello, resume, JSON frames,
// reconnect with backoff.
//
// Order of calls: new HearthSocket(options) -> start() -> send(frame)... ->
// goodbye(). The resume token lives in sessionStorage only, under
// options.storageKey; every `welcome` replaces it (a token works once).

/** What a person is told when the server closes the connection. */
export const CLOSE_MESSAGES = {
  4400: "Something went wrong starting the chat. Please reload the page.",
  4401: "Your session has expired. You can start again.",
  4403: "A moderator has ended this chat.",
  4408: "The connection took too long to start. Please try again.",
  4409: "This chat is now open in another tab or window.",
  4429: "Too many messages were sent too quickly, so the connection was closed.",
  4420: "The connection fell behind. Reconnecting…",
  1012: "The service is restarting. Reconnecting…",
};

// Codes after which reconnecting cannot help.
const FINAL_CODES = new Set([1000, 4400, 4401, 4403, 4408, 4409, 4429]);
const BACKOFF_MS = [300, 1000, 2000, 4000, 8000, 15000];

export function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

export class HearthSocket {
  /**
   * @param {object} options
   * @param {string} options.storageKey   sessionStorage key for the resume token
   * @param {() => object|null} options.hello  the first `hello` (null: nothing to start)
   * @param {() => object|number} options.since  `since` for a resuming hello
   * @param {(frame: object) => void} options.onFrame  every frame from the server
   * @param {(state: string, detail: object) => void} options.onState
   *   "connecting" | "open" | "reconnecting" | "closed"; detail has code, message, resumed
   */
  constructor(options) {
    this.options = options;
    this.ws = null;
    this.attempt = 0;
    this.resuming = false;
    this.stopped = false;
    this.timer = null;
    this.welcomed = false;
  }

  get resumeToken() {
    return sessionStorage.getItem(this.options.storageKey);
  }

  get isOpen() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN && this.welcomed);
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  connect() {
    window.clearTimeout(this.timer);
    const ws = new WebSocket(socketUrl());
    this.ws = ws;
    this.welcomed = false;
    this.options.onState(this.attempt ? "reconnecting" : "connecting", {});
    ws.addEventListener("open", () => this.sendHello(ws));
    ws.addEventListener("message", (event) => this.receive(ws, event));
    ws.addEventListener("close", (event) => this.closed(ws, event));
  }

  sendHello(ws) {
    const token = this.resumeToken;
    if (token) {
      this.resuming = true;
      ws.send(JSON.stringify({ type: "hello", resume: token, since: this.options.since() }));
      return;
    }
    this.resuming = false;
    const hello = this.options.hello();
    if (hello) ws.send(JSON.stringify(hello));
    else ws.close(1000);
  }

  receive(ws, event) {
    if (ws !== this.ws || typeof event.data !== "string") return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (!frame || typeof frame.type !== "string") return;
    if (frame.type === "welcome") {
      sessionStorage.setItem(this.options.storageKey, frame.resume);
      this.welcomed = true;
      this.attempt = 0;
      this.options.onState("open", { resumed: this.resuming });
    }
    this.options.onFrame(frame);
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.welcomed = false;
    if (this.stopped) return;
    const code = event.code;
    if (code === 4401 && this.resuming) {
      // The seat is gone (spent or expired resume token). Start afresh if
      // this page knows how (listener and moderator tokens); else report it.
      sessionStorage.removeItem(this.options.storageKey);
      if (this.options.hello()) {
        this.attempt = 1;
        this.connect();
        return;
      }
    }
    if (FINAL_CODES.has(code) || (code === 4401 && !this.resuming)) {
      if (code !== 1000) sessionStorage.removeItem(this.options.storageKey);
      this.stopped = true;
      this.options.onState("closed", { code, message: CLOSE_MESSAGES[code] || "" });
      return;
    }
    if (!this.resumeToken && !this.options.hello()) {
      this.stopped = true;
      this.options.onState("closed", { code, message: "" });
      return;
    }
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.options.onState("reconnecting", {
      code,
      message: CLOSE_MESSAGES[code] || "Connection lost. Reconnecting…",
    });
    this.timer = window.setTimeout(() => this.connect(), delay * (0.8 + Math.random() * 0.4));
  }

  /** Send a frame; false when not connected (the caller keeps it pending). */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Close with 1000: the server ends the seat at once. */
  goodbye() {
    this.stopped = true;
    window.clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
    sessionStorage.removeItem(this.options.storageKey);
  }
}

let counter = 0;
const prefix = Math.random().toString(36).slice(2, 8);

/** A client message id, unique for this page load. */
export function nextId() {
  counter += 1;
  return `c-${prefix}-${counter}`;
}

/** An onState callback that keeps a status line true for a staff page. */
export function showConnection(status, expiredText, onClosed = () => {}) {
  return (state, detail) => {
    if (state === "open") status.textContent = detail.resumed ? "Reconnected." : "Connected.";
    else if (state === "connecting") status.textContent = "Connecting…";
    else if (state === "reconnecting") status.textContent = detail.message || "Connection lost. Reconnecting…";
    else if (state === "closed") {
      status.textContent = detail.code === 4401 ? expiredText : detail.message || "Disconnected.";
      onClosed();
    }
  };
}
