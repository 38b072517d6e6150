// The moderator dashboard: live rooms, alerts, and one room to watch or join.

import { ChatLog, TypingIndicator, wireComposer } from "./chat.js";
import { $, age, clock, el, languageName, tokenFromFragment, topicName } from "./dom.js";
import { HearthSocket, nextId, showConnection } from "./socket.js";

const TOKEN_KEY = "hearth.moderator.token";
const RESUME_KEY = "hearth.moderator.resume";
const RISK_ORDER = { crisis: 0, elevated: 2, normal: 3 };
const RISK_WORDS = { normal: "Normal", elevated: "Elevated", crisis: "Crisis" };

const token = tokenFromFragment(TOKEN_KEY);
const status = $("#status");
const rows = new Map(); // room id -> {room, receivedAt, tr, ageCell}
let alerts = [];
let me = "";
let socket = null;
let current = null; // {id, mode: "watch"|"join", chat, ended}
const typing = new TypingIndicator($("#room-typing"));

function send(frame) {
  if (socket && socket.send(frame)) return true;
  status.textContent = "Not connected. Please wait for the connection to come back.";
  return false;
}

const shortId = (id) => String(id).slice(0, 8);

function riskBadge(risk) {
  return el("span", { className: `badge risk-${risk || "normal"}` }, RISK_WORDS[risk] || risk || "Normal");
}

function members(counts) {
  return Object.entries(counts || {})
    .filter(([, n]) => n > 0)
    .map(([role, n]) => `${n} ${role}${n === 1 ? "" : "s"}`)
    .join(", ") || "none";
}

// ---- Rooms table -------------------------------------------------------

function rank(room) {
  if (room.risk === "crisis") return 0;
  if (room.escalated) return 1;
  return RISK_ORDER[room.risk] ?? 3;
}

function ageOf(entry) {
  return entry.room.age_s + (Date.now() - entry.receivedAt) / 1000;
}

function showRooms(list) {
  const now = Date.now();
  const seen = new Set();
  for (const room of list || []) {
    seen.add(room.room);
    let entry = rows.get(room.room);
    if (!entry) {
      entry = makeRow(room);
      rows.set(room.room, entry);
    }
    entry.room = room;
    entry.receivedAt = now;
    fillRow(entry);
  }
  for (const [id, entry] of rows) {
    if (!seen.has(id)) {
      entry.tr.remove();
      rows.delete(id);
    }
  }
  const body = $("#room-rows");
  const sorted = [...rows.values()].sort((a, b) => rank(a.room) - rank(b.room) || ageOf(b) - ageOf(a));
  sorted.forEach((entry, i) => {
    if (body.children[i] !== entry.tr) body.insertBefore(entry.tr, body.children[i] || null);
  });
  $("#rooms-wrap").hidden = rows.size === 0;
  $("#no-live-rooms").hidden = rows.size > 0;
}

function makeRow(room) {
  const id = room.room;
  const entry = { cells: {} };
  for (const name of ["room", "risk", "topic", "language", "escalated", "age", "members"]) {
    const label = name[0].toUpperCase() + name.slice(1);
    entry.cells[name] = el(name === "room" ? "th" : "td", name === "room" ? { scope: "row", dataset: { label } } : { dataset: { label } });
  }
  const label = `room ${shortId(id)}`;
  const actions = el("td", { className: "row-actions" },
    el("button", { type: "button", className: "secondary small", "aria-label": `Watch ${label}`, on: { click: () => open(id, "watch") } }, "Watch"),
    el("button", { type: "button", className: "secondary small", "aria-label": `Join ${label}`, on: { click: () => open(id, "join") } }, "Join"));
  entry.tr = el("tr", { dataset: { room: id } }, ...Object.values(entry.cells), actions);
  return entry;
}

function fillRow(entry) {
  const { room, cells, tr } = entry;
  cells.room.textContent = shortId(room.room);
  cells.risk.replaceChildren(riskBadge(room.risk));
  cells.topic.textContent = topicName(room.topic);
  cells.language.textContent = languageName(room.language);
  cells.escalated.textContent = room.escalated ? "Yes" : "No";
  cells.age.textContent = age(ageOf(entry));
  cells.members.textContent = members(room.members);
  tr.className = room.risk === "crisis" ? "row-crisis" : room.escalated ? "row-escalated" : room.risk === "elevated" ? "row-elevated" : "";
}

window.setInterval(() => {
  for (const entry of rows.values()) entry.cells.age.textContent = age(ageOf(entry));
}, 1000);

// ---- Alerts ------------------------------------------------------------

function addAlert(frame) {
  alerts.push({ ...frame, key: nextId(), ts: frame.ts || Date.now() });
  showAlerts();
}

function showAlerts() {
  alerts.sort((a, b) => (a.risk === "crisis" ? 0 : 1) - (b.risk === "crisis" ? 0 : 1) || b.ts - a.ts);
  const list = $("#alerts");
  list.replaceChildren(...alerts.map((alert) => {
    const by = { seeker: "the seeker", listener: "the listener", system: "the risk check" }[alert.by] || alert.by;
    const label = `room ${shortId(alert.room)}`;
    return el("li", { className: `alert risk-${alert.risk || "normal"}` },
      el("p", {}, riskBadge(alert.risk), ` Room ${shortId(alert.room)}, raised by ${by} at ${clock(alert.ts)}`),
      alert.reason ? el("p", { className: "reason" }, `Reason: ${alert.reason}`) : null,
      el("div", { className: "actions" },
        el("button", { type: "button", className: "secondary small", "aria-label": `Watch ${label}`, on: { click: () => open(alert.room, "watch") } }, "Watch"),
        el("button", { type: "button", className: "secondary small", "aria-label": `Join ${label}`, on: { click: () => open(alert.room, "join") } }, "Join"),
        el("button", { type: "button", className: "secondary small", on: { click: () => dismiss(alert.key) } }, "Dismiss")));
  }));
  $("#no-alerts").hidden = alerts.length > 0;
}

function dismiss(key) {
  alerts = alerts.filter((a) => a.key !== key);
  showAlerts();
  $("#alerts-title").focus();
}

// ---- One room, watched or joined -----------------------------------------

function open(id, mode) {
  if (current && current.id !== id && !current.ended) send({ type: "leave", room: current.id });
  if (!send({ type: mode, room: id })) return;
  if (!current || current.id !== id) {
    $("#room-log").replaceChildren();
    $("#whisper-list").replaceChildren();
    typing.clear();
    current = {
      id, ended: false,
      chat: new ChatLog($("#room-log"), (from) => from.role === "moderator" && from.alias === me),
    };
  }
  current.mode = mode;
  showRoomView();
  $("#room-title").focus();
}

function showRoomView() {
  const view = $("#room-view");
  view.hidden = !current;
  if (!current) return;
  const joined = current.mode === "join" && !current.ended;
  $("#room-title").textContent = `Room ${shortId(current.id)}`;
  $("#room-title").tabIndex = -1;
  $("#room-mode").textContent = current.ended
    ? "This room has ended."
    : joined ? "Joined: the seeker and listener know you're here." : "Watching silently: nobody in the room is told.";
  $("#room-join").hidden = joined || current.ended;
  $("#room-leave").textContent = current.ended ? "Close this view" : "Leave room";
  $("#mod-composer").hidden = !joined;
  $("#whisper-panel").hidden = !joined && !$("#whisper-list").children.length;
  $("#whisper-composer").hidden = !joined;
  $("#close-form").hidden = current.ended;
}

$("#room-join").addEventListener("click", () => current && open(current.id, "join"));
$("#room-leave").addEventListener("click", () => {
  if (!current) return;
  if (!current.ended) send({ type: "leave", room: current.id });
  current = null;
  typing.clear();
  showRoomView();
  $("#rooms-title").tabIndex = -1;
  $("#rooms-title").focus();
});

wireComposer($("#mod-composer"), {
  onSend(text) {
    if (!current || current.mode !== "join") return false;
    const id = nextId();
    const sent = Boolean(socket) && socket.send({ type: "message", room: current.id, text, id });
    current.chat.addPending(id, text, !sent);
    return true;
  },
  onTyping() {
    if (current && current.mode === "join" && socket) socket.send({ type: "typing", room: current.id });
  },
});

wireComposer($("#whisper-composer"), {
  onSend(text) {
    if (!current) return false;
    return send({ type: "whisper", room: current.id, text });
  },
});

$("#close-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!current) return;
  const frame = { type: "close", room: current.id };
  const reason = $("#close-reason").value.trim();
  if (reason) frame.reason = reason;
  if ($("#close-block").checked) frame.block = true;
  if (send(frame)) {
    $("#close-reason").value = "";
    $("#close-block").checked = false;
  }
});

// ---- Frames ------------------------------------------------------------

const inCurrent = (frame) => current && frame.room === current.id;

const handlers = {
  welcome(frame) {
    me = frame.alias || me;
    $("#who").textContent = me ? `Signed in as ${me}` : "";
    socket.send({ type: "rooms" });
    if (current && !current.ended && !socket.resuming) {
      // A fresh seat is in no room: take the room up again.
      socket.send({ type: current.mode, room: current.id });
    }
  },
  rooms(frame) {
    showRooms(frame.rooms);
  },
  escalation: addAlert,
  history(frame) {
    if (!inCurrent(frame)) return;
    for (const message of frame.messages || []) current.chat.addMessage(message);
  },
  message(frame) {
    if (!inCurrent(frame)) return;
    if (current.chat.addMessage(frame)) typing.clear();
  },
  typing(frame) {
    if (inCurrent(frame) && !(frame.from && frame.from.role === "moderator" && frame.from.alias === me)) {
      typing.show(frame.from);
    }
  },
  presence(frame) {
    if (!inCurrent(frame)) return;
    const who = frame.who || {};
    current.chat.system(`${who.alias || "Someone"} (${who.role || "member"}) ${frame.state}.`, "presence");
  },
  ended(frame) {
    if (!inCurrent(frame)) return;
    current.ended = true;
    typing.clear();
    current.chat.system(`This room has ended (${String(frame.reason || "ended").replace("_", " ")}).`, "ended");
    showRoomView();
  },
  risk(frame) {
    if (inCurrent(frame)) current.chat.system(`Risk is now ${RISK_WORDS[frame.risk] || frame.risk}.`, "notice");
  },
  whisper(frame) {
    if (!inCurrent(frame)) return;
    $("#whisper-list").append(el("p", { className: "whisper" },
      el("strong", {}, `${(frame.from && frame.from.alias) || "Moderator"}: `), frame.text));
    showRoomView();
  },
  notice(frame) {
    if (inCurrent(frame)) current.chat.system(frame.message || "Contact details were removed.", "notice");
  },
  error(frame) {
    const text = `Not done: ${frame.message || frame.code}`;
    if (inCurrent(frame)) current.chat.system(text, "warning");
    else status.textContent = text;
  },
};

if (!token) {
  $("#no-token").hidden = false;
} else {
  socket = new HearthSocket({
    storageKey: RESUME_KEY,
    hello: () => ({ type: "hello", role: "moderator", token }),
    since: () => (current ? { [current.id]: current.chat.lastSeq } : 0),
    onFrame: (frame) => (handlers[frame.type] || (() => {}))(frame),
    onState: showConnection(status, "Your moderator link has expired. Please ask for a new one."),
  });
  socket.start();
}
