// The listener console: shift controls and several chats as tabs.

import { ChatLog, TypingIndicator, composerForm, wireComposer } from "./chat.js";
import { $, TOPICS, announce, el, languageName, minutesSeconds, tokenFromFragment, topicName } from "./dom.js";
import { HearthSocket, nextId, showConnection } from "./socket.js";

const TOKEN_KEY = "hearth.listener.token";
const RESUME_KEY = "hearth.listener.resume";
const BASE_TITLE = "Hearth listener console";
const STATUS_WORDS = { available: "Available", break: "On a break", off: "Off shift" };
const RISK_WORDS = { normal: "Normal", elevated: "Elevated risk", crisis: "Crisis" };

const token = tokenFromFragment(TOKEN_KEY);
const status = $("#status");
const announcer = $("#announcer");
const tabs = $("#tabs");
const panels = $("#panels");
const rooms = new Map(); // room id -> room view
let active = null;
let me = "";
let socket = null;
let shiftSent = null;
let holdTimer = null;
let domIds = 0;

// ---- Shift -------------------------------------------------------------

const topicBox = $("#topics");
for (const [value, label] of Object.entries(TOPICS)) {
  if (value === "anything") continue;
  const id = `topic-${value}`;
  topicBox.append(el("div", { className: "choice" },
    el("input", { type: "checkbox", id, name: "topics", value }),
    el("label", { for: id }, label)));
}

function shiftFrame() {
  const form = $("#shift-form");
  const checked = (name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
  const capacity = Math.min(5, Math.max(1, Number($("#capacity").value) || 1));
  $("#capacity").value = String(capacity);
  return {
    type: "shift",
    status: form.querySelector('input[name="status"]:checked').value,
    topics: checked("topics"),
    languages: checked("languages"),
    capacity,
  };
}

$("#shift-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const frame = shiftFrame();
  shiftSent = frame;
  if (!socket || !socket.send(frame)) status.textContent = "Not connected yet; your shift will be sent when we reconnect.";
});

function showShift(frame) {
  const radio = $(`#status-${frame.status}`);
  if (radio) radio.checked = true;
  const parts = [STATUS_WORDS[frame.status] || frame.status];
  if (typeof frame.rooms === "number") parts.push(`${frame.rooms} ${frame.rooms === 1 ? "chat" : "chats"} open`);
  if (typeof frame.waiting === "number") {
    parts.push(`${frame.waiting} ${frame.waiting === 1 ? "person" : "people"} waiting`);
  }
  $("#shift-state").textContent = parts.join(" · ");
  showHold(frame.hold);
}

function showHold(hold) {
  const box = $("#hold");
  window.clearInterval(holdTimer);
  if (!hold) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  if (hold.reason === "crisis_room") {
    box.textContent = "You're in a crisis chat — no new chats until it ends.";
  } else if (hold.reason === "cooldown") {
    const until = Date.now() + (hold.remaining_s || 0) * 1000;
    const tick = () => {
      const left = (until - Date.now()) / 1000;
      if (left <= 0) {
        window.clearInterval(holdTimer);
        box.textContent = "Your breather is over; new chats can come in now.";
        return;
      }
      box.textContent = `Taking a breather: new chats in ${minutesSeconds(left)}`;
    };
    tick();
    holdTimer = window.setInterval(tick, 1000);
  } else {
    box.textContent = "New chats are paused for now.";
  }
}

// ---- Rooms -------------------------------------------------------------

function riskBadge(risk) {
  return el("span", { className: `badge risk-${risk || "normal"}` }, RISK_WORDS[risk] || risk || "Normal");
}

function addRoom(frame) {
  if (rooms.has(frame.room)) return rooms.get(frame.room);
  domIds += 1;
  const n = domIds;
  const peer = (frame.peer && frame.peer.alias) || "Seeker";
  const view = { id: frame.room, peer, risk: frame.risk || "normal", unread: 0, ended: false };

  view.badge = riskBadge(view.risk);
  view.count = el("span", { className: "unread", hidden: true });
  view.tab = el("button", {
    type: "button", role: "tab", id: `tab-${n}`, className: "tab",
    "aria-controls": `panel-${n}`, "aria-selected": "false", tabIndex: -1,
    on: { click: () => select(view.id), keydown: tabKeys },
  }, el("span", { className: "tab-name" }, peer), view.count, view.badge.cloneNode(true));

  const logNode = el("div", { className: "log", role: "log", "aria-live": "polite", "aria-label": `Conversation with ${peer}` });
  const typingNode = el("p", { className: "typing" });
  view.whispers = el("div", { className: "whispers", hidden: true, "aria-live": "polite" },
    el("h4", {}, "Moderator whisper — only you can see this"));
  const form = composerForm(`room-${n}`, `Message to ${peer}`);
  const reasonId = `reason-${n}`;
  view.escalateForm = el("form", { className: "card help", hidden: true },
    el("label", { for: reasonId }, "What should the moderators know? (optional)"),
    el("textarea", { id: reasonId, rows: 2, maxLength: 500 }),
    el("button", { type: "submit", className: "primary" }, "Alert moderators"));
  view.escalateButton = el("button", { type: "button", className: "secondary", "aria-expanded": "false" }, "Escalate to a moderator");
  view.leaveButton = el("button", { type: "button", className: "secondary" }, "End chat");
  view.closeButton = el("button", { type: "button", className: "secondary", hidden: true }, "Close this tab");
  view.headBadge = riskBadge(view.risk);

  view.panel = el("section", { className: "room-panel", role: "tabpanel", id: `panel-${n}`, "aria-labelledby": `tab-${n}`, hidden: true },
    el("div", { className: "room-head" },
      el("h3", {}, `Chat with ${peer}`),
      el("p", { className: "meta" }, view.headBadge, ` ${topicName(frame.topic)} · ${languageName(frame.language)}`)),
    el("p", { className: "first-words" }, el("strong", {}, "Their first words: "), frame.note ? frame.note : "(none given)"),
    view.whispers,
    logNode, typingNode, form,
    el("div", { className: "actions" }, view.escalateButton, view.leaveButton, view.closeButton),
    view.escalateForm);

  view.chat = new ChatLog(logNode, (from) => from.role === "listener");
  view.typing = new TypingIndicator(typingNode);
  view.form = form;
  wireComposer(form, {
    onSend(text) {
      if (view.ended) return false;
      const id = nextId();
      const sent = Boolean(socket) && socket.send({ type: "message", room: view.id, text, id });
      view.chat.addPending(id, text, !sent);
      return true;
    },
    onTyping() {
      if (socket && !view.ended) socket.send({ type: "typing", room: view.id });
    },
  });
  view.escalateButton.addEventListener("click", () => {
    view.escalateForm.hidden = !view.escalateForm.hidden;
    view.escalateButton.setAttribute("aria-expanded", String(!view.escalateForm.hidden));
    if (!view.escalateForm.hidden) view.escalateForm.querySelector("textarea").focus();
  });
  view.escalateForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const reason = view.escalateForm.querySelector("textarea").value.trim();
    const out = { type: "escalate", room: view.id };
    if (reason) out.reason = reason;
    if (socket && socket.send(out)) view.escalateForm.hidden = true;
  });
  view.leaveButton.addEventListener("click", () => {
    if (socket && !view.ended) socket.send({ type: "leave", room: view.id });
  });
  view.closeButton.addEventListener("click", () => removeRoom(view));

  rooms.set(view.id, view);
  tabs.append(view.tab);
  panels.append(view.panel);
  $("#no-rooms").hidden = true;
  return view;
}

function tabKeys(event) {
  const list = [...tabs.querySelectorAll('[role="tab"]')];
  const at = list.indexOf(event.currentTarget);
  let next = null;
  if (event.key === "ArrowRight") next = list[(at + 1) % list.length];
  else if (event.key === "ArrowLeft") next = list[(at - 1 + list.length) % list.length];
  else if (event.key === "Home") next = list[0];
  else if (event.key === "End") next = list[list.length - 1];
  if (!next) return;
  event.preventDefault();
  next.click();
  next.focus();
}

function select(id) {
  active = id;
  for (const view of rooms.values()) {
    const on = view.id === id;
    view.tab.setAttribute("aria-selected", String(on));
    view.tab.tabIndex = on ? 0 : -1;
    view.panel.hidden = !on;
    if (on && !document.hidden) {
      view.unread = 0;
      updateUnread(view);
    }
  }
  updateTitle();
}

function removeRoom(view) {
  rooms.delete(view.id);
  view.tab.remove();
  view.panel.remove();
  if (active === view.id) {
    const next = rooms.keys().next();
    if (!next.done) select(next.value);
    else active = null;
  }
  $("#no-rooms").hidden = rooms.size > 0;
  updateTitle();
}

function updateUnread(view) {
  view.count.hidden = view.unread === 0;
  view.count.textContent = view.unread ? `${view.unread} new` : "";
}

function updateTitle() {
  let unread = 0;
  for (const view of rooms.values()) unread += view.unread;
  document.title = unread ? `(${unread}) ${BASE_TITLE}` : BASE_TITLE;
}

function setRisk(view, risk) {
  view.risk = risk;
  const fresh = riskBadge(risk);
  view.tab.replaceChild(fresh.cloneNode(true), view.tab.lastChild);
  view.headBadge.replaceWith(fresh);
  view.headBadge = fresh;
}

function endRoom(view, text) {
  view.ended = true;
  view.typing.clear();
  view.chat.system(text, "ended");
  view.form.hidden = true;
  view.escalateButton.hidden = true;
  view.escalateForm.hidden = true;
  view.leaveButton.hidden = true;
  view.closeButton.hidden = false;
  view.tab.classList.add("ended");
}

const ENDED = {
  left: () => "You ended this chat.",
  peer_left: (peer) => `${peer} has left the chat.`,
  peer_lost: (peer) => `${peer} lost connection and did not come back.`,
  closed: () => "A moderator closed this chat.",
  idle: () => "This chat was closed after a long quiet spell.",
  shutdown: () => "The service is restarting; this chat has ended.",
};

// ---- Frames ------------------------------------------------------------

function roomFor(frame) {
  return rooms.get(frame.room);
}

const handlers = {
  welcome(frame) {
    me = frame.alias || me;
    $("#who").textContent = me ? `Signed in as ${me}` : "";
    for (const room of frame.rooms || []) addRoom(room);
    if (active === null && rooms.size) select(rooms.keys().next().value);
    for (const view of rooms.values()) {
      for (const { id, text } of view.chat.takeQueued()) socket.send({ type: "message", room: view.id, text, id });
    }
    // A fresh seat (the old one expired) starts off shift: restore the shift.
    if (shiftSent && !socket.resuming) socket.send(shiftSent);
  },
  shift: showShift,
  matched(frame) {
    const view = addRoom(frame);
    view.unread += 1;
    updateUnread(view);
    if (active === null) select(view.id);
    updateTitle();
    announce(announcer, `New chat with ${view.peer}: ${topicName(frame.topic)}.`);
  },
  message(frame) {
    const view = roomFor(frame);
    if (!view || !view.chat.addMessage(frame)) return;
    if (frame.from && frame.from.role === "seeker") view.typing.clear();
    if (frame.from && frame.from.role !== "listener" && (active !== view.id || document.hidden)) {
      view.unread += 1;
      updateUnread(view);
      updateTitle();
    }
  },
  typing(frame) {
    const view = roomFor(frame);
    if (view && frame.from && frame.from.role !== "listener") view.typing.show(frame.from);
  },
  presence(frame) {
    const view = roomFor(frame);
    if (!view) return;
    const who = frame.who || {};
    const name = who.role === "moderator" ? `Moderator ${who.alias || ""}`.trim() : who.alias || "Someone";
    const words = { joined: "joined", left: "left", away: "lost connection (may come back)", back: "is back" };
    view.chat.system(`${name} ${words[frame.state] || frame.state}.`, "presence");
  },
  ended(frame) {
    const view = roomFor(frame);
    if (view) endRoom(view, (ENDED[frame.reason] || (() => "This chat has ended."))(view.peer));
  },
  escalated(frame) {
    const view = roomFor(frame);
    if (view) view.chat.system("Moderators have been alerted to this chat.", "notice");
  },
  risk(frame) {
    const view = roomFor(frame);
    if (!view) return;
    setRisk(view, frame.risk);
    view.chat.system(`Risk is now: ${RISK_WORDS[frame.risk] || frame.risk}.`, frame.risk === "crisis" ? "warning" : "notice");
  },
  whisper(frame) {
    const view = roomFor(frame);
    if (!view) return;
    view.whispers.hidden = false;
    view.whispers.append(el("p", { className: "whisper" },
      el("strong", {}, `${(frame.from && frame.from.alias) || "Moderator"}: `), frame.text));
    if (active !== view.id) {
      view.unread += 1;
      updateUnread(view);
      updateTitle();
    }
  },
  notice(frame) {
    const view = roomFor(frame);
    if (view) view.chat.system(frame.message || "Contact details were removed from your message.", "notice");
  },
  error(frame) {
    const view = roomFor(frame);
    const text = frame.message || frame.code;
    if (view) view.chat.system(`Not done: ${text}`, "warning");
    else status.textContent = `Not done: ${text}`;
  },
};

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && active !== null) select(active);
});

// ---- Connection ----------------------------------------------------------

if (!token) {
  $("#no-token").hidden = false;
  $("#shift-form").querySelector('button[type="submit"]').disabled = true;
} else {
  socket = new HearthSocket({
    storageKey: RESUME_KEY,
    hello: () => ({ type: "hello", role: "listener", token }),
    since: () => Object.fromEntries([...rooms.values()].map((v) => [v.id, v.chat.lastSeq])),
    onFrame: (frame) => (handlers[frame.type] || (() => {}))(frame),
    onState: showConnection(status, "Your listener link has expired. Please ask for a new one.",
      () => { for (const view of rooms.values()) view.chat.markUndelivered(); }),
  });
  socket.start();
}
