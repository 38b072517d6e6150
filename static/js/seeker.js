// The seeker page: start, wait, chat, end, with quick exit on every screen.

import { ChatLog, TypingIndicator, renderResources, wireComposer } from "./chat.js";
import { $, showOnly } from "./dom.js";
import { installQuickExit } from "./quickexit.js";
import { HearthSocket, nextId } from "./socket.js";

const RESUME_KEY = "hearth.seeker.resume";

const views = {
  start: $("#view-start"),
  waiting: $("#view-waiting"),
  chat: $("#view-chat"),
};
const status = $("#status");
const log = $("#log");
const typing = new TypingIndicator($("#typing"));

let socket = null;
let pendingRequest = null;
let language = "en";
let me = "";
let room = null; // {id, peer, chat: ChatLog, ended: boolean}

installQuickExit($("#quick-exit"), () => {
  log.replaceChildren();
  if (socket) socket.goodbye();
});

// ---- Views -------------------------------------------------------------

function show(name, focus) {
  showOnly(Object.values(views), views[name]);
  if (focus) focus.focus();
}

function say(text) {
  status.textContent = text;
}

function showStart(message = "") {
  room = null;
  typing.clear();
  say(message);
  show("start");
}

function waitText(seconds) {
  if (seconds === null || seconds === undefined) return "We can't estimate the wait yet.";
  if (seconds < 60) return `Expected wait: about ${Math.max(5, Math.round(seconds / 5) * 5)} seconds.`;
  const minutes = Math.round(seconds / 60);
  return minutes === 1 ? "Expected wait: about a minute." : `Expected wait: about ${minutes} minutes.`;
}

function showWaiting(frame) {
  if (room && !room.ended) return;
  room = null;
  const position = frame.position;
  $("#wait-position").textContent =
    position === 1 ? "You're next in the queue." : `You're number ${position} in the queue.`;
  $("#wait-estimate").textContent = waitText(frame.estimate_s);
  const nobody = frame.on_shift === 0;
  $("#nobody").hidden = !nobody;
  if (nobody) loadResources($("#wait-resources"));
  else $("#wait-resources").hidden = true;
  if (views.waiting.hidden) show("waiting");
}

async function loadResources(list) {
  try {
    const response = await fetch(`/api/resources?language=${encodeURIComponent(language)}`);
    if (!response.ok) return;
    const body = await response.json();
    renderResources(list, body.items);
    list.hidden = !list.children.length;
  } catch {
    // Offline: the wording around the list still says what to do.
  }
}

// ---- Starting ----------------------------------------------------------

const note = $("#note");
const noteCount = $("#note-count");
note.addEventListener("input", () => {
  noteCount.textContent = `${note.value.length} of ${note.maxLength} characters`;
});

$("#start-form").addEventListener("submit", (event) => {
  event.preventDefault();
  language = $("#language").value;
  const request = { type: "request", language };
  const topic = $("#topic").value;
  if (topic !== "anything") request.topic = topic;
  const text = note.value.trim();
  if (text) request.note = text;
  $("#wait-position").textContent = "Connecting…";
  $("#wait-estimate").textContent = "";
  $("#wait-back").hidden = true;
  $("#nobody").hidden = true;
  $("#wait-resources").hidden = true;
  say("");
  show("waiting", $("#waiting-title"));
  if (socket && socket.send(request)) return;
  pendingRequest = request;
  if (!socket) connect();
});

$("#cancel").addEventListener("click", () => {
  pendingRequest = null;
  if (!socket || !socket.send({ type: "cancel" })) {
    if (socket) socket.goodbye();
    socket = null;
    showStart("You've stopped waiting. You can start again whenever you're ready.");
  }
});

function connect() {
  socket = new HearthSocket({
    storageKey: RESUME_KEY,
    hello: () => ({ type: "hello", role: "seeker" }),
    since: () => (room ? { [room.id]: room.chat.lastSeq } : 0),
    onFrame: receive,
    onState: connectionState,
  });
  socket.start();
}

function connectionState(state, detail) {
  if (state === "reconnecting") {
    say(detail.message || "Connection lost. Reconnecting…");
  } else if (state === "open") {
    say("");
  } else if (state === "closed") {
    socket = null;
    const message = detail.message || "The connection has closed.";
    if (room) {
      if (room.ended) say(message);
      else endChat(message);
    } else if (detail.code === 4401 && views.start.hidden === false) say("Your earlier chat has ended. You can start a new one.");
    else if (detail.code !== 1000) showStart(message);
  }
}

// ---- Frames from the server ----------------------------------------------

function receive(frame) {
  const handler = handlers[frame.type];
  if (handler) handler(frame);
}

const handlers = {
  welcome(frame) {
    me = frame.alias || "";
    if (frame.rooms && frame.rooms.length) {
      openChat(frame.rooms[0]);
    } else if (pendingRequest) {
      socket.send(pendingRequest);
      pendingRequest = null;
    }
    if (room) {
      for (const { id, text } of room.chat.takeQueued()) {
        socket.send({ type: "message", room: room.id, text, id });
      }
      const chat = room.chat;
      window.setTimeout(() => chat.markUndelivered(), 4000);
    }
  },
  queued: showWaiting,
  cancelled() {
    showStart("You've stopped waiting. You can start again whenever you're ready.");
  },
  matched: openChat,
  message(frame) {
    if (!room || frame.room !== room.id) return;
    if (room.chat.addMessage(frame) && frame.from && frame.from.role !== "seeker") typing.clear();
  },
  typing(frame) {
    if (room && frame.room === room.id && frame.from && frame.from.role !== "seeker") {
      typing.show(frame.from);
    }
  },
  presence(frame) {
    if (!room || frame.room !== room.id) return;
    room.chat.system(presenceText(frame), "presence");
  },
  ended(frame) {
    if (!room || frame.room !== room.id) return;
    endChat(endedText(frame.reason), frame.reason);
  },
  escalated() {
    const done = $("#help-done");
    done.textContent =
      "Thank you for telling us. A moderator has been alerted and will look in on this chat. You can keep talking, or end the chat at any time.";
    done.hidden = false;
  },
  resources(frame) {
    renderResources($("#resource-items"), frame.items);
    $("#resources").hidden = false;
  },
  notice(frame) {
    if (!room) return;
    room.chat.system(
      frame.message ||
        "To keep you safe, we removed contact details (like phone numbers or e-mail addresses) from your message.",
      "notice",
    );
  },
  error(frame) {
    const text = errorText(frame);
    if (room && !room.ended) room.chat.system(text, "warning");
    else say(text);
    if (frame.ref === "request") showStart(text);
  },
};

function peerName() {
  return (room && room.peer && room.peer.alias) || "Your listener";
}

function presenceText(frame) {
  const who = frame.who || {};
  const name = who.alias || "Someone";
  if (who.role === "moderator") {
    if (frame.state === "joined") return `A moderator, ${name}, has joined the chat to help keep it safe.`;
    if (frame.state === "left") return `The moderator, ${name}, has left the chat.`;
  }
  if (frame.state === "away") return `${name}'s connection dropped. Waiting for them to come back…`;
  if (frame.state === "back") return `${name} is back.`;
  if (frame.state === "joined") return `${name} has joined the chat.`;
  if (frame.state === "left") return `${name} has left the chat.`;
  return `${name}: ${frame.state}`;
}

function endedText(reason) {
  const name = peerName();
  switch (reason) {
    case "left": return "You ended the chat. Thank you for talking with us.";
    case "peer_left": return `${name} has left the chat.`;
    case "peer_lost": return `${name} lost connection; we've put you back at the front of the queue.`;
    case "idle": return "This chat was closed because it had been quiet for a long time.";
    case "closed": return "A moderator has closed this chat.";
    case "shutdown": return "The service is restarting, so this chat has ended. We're sorry.";
    default: return "This chat has ended.";
  }
}

function errorText(frame) {
  switch (frame.code) {
    case "rate_limited": return "You're sending messages very quickly. Please wait a moment, then try again.";
    case "too_long": return "That message is too long. Please make it shorter.";
    case "unavailable": return "We couldn't reach the service just now. Please try again in a moment.";
    case "not_allowed": return frame.ref === "request"
      ? "We can't start a new chat for you right now."
      : "That can't be done right now.";
    default: return frame.message || "Something went wrong. Please try again.";
  }
}

// ---- The chat ----------------------------------------------------------

function openChat(frame) {
  if (room && room.id === frame.room && !room.ended) return;
  log.replaceChildren();
  typing.clear();
  room = {
    id: frame.room,
    peer: frame.peer || {},
    ended: false,
    chat: new ChatLog(log, (from) => from.role === "seeker" && (!me || from.alias === me)),
  };
  $("#chat-title").textContent = `You're talking with ${peerName()}`;
  room.chat.system(`${peerName()} is here to listen. Say as much or as little as you like.`);
  $("#composer").hidden = false;
  $("#ended").hidden = true;
  $("#chat-actions").hidden = false;
  $("#help-done").hidden = true;
  say("");
  show("chat", $("#message"));
}

function endChat(text, reason) {
  if (!room) return;
  room.ended = true;
  typing.clear();
  room.chat.system(text, "ended");
  $("#help-form").hidden = true;
  $("#help-open").setAttribute("aria-expanded", "false");
  if (reason === "peer_lost") {
    // The server puts the seeker back at the head of the queue and says so.
    const back = $("#wait-back");
    back.textContent = text;
    back.hidden = false;
    $("#wait-position").textContent = "Finding someone new…";
    $("#wait-estimate").textContent = "";
    show("waiting", $("#waiting-title"));
    return;
  }
  $("#composer").hidden = true;
  $("#chat-actions").hidden = true;
  $("#help-done").hidden = true;
  $("#chat-title").textContent = `Your chat with ${peerName()}`;
  $("#ended-text").textContent = text;
  $("#ended").hidden = false;
  $("#again").focus();
}

wireComposer($("#composer"), {
  onSend(text) {
    if (!room || room.ended) return false;
    const id = nextId();
    const sent = Boolean(socket) && socket.send({ type: "message", room: room.id, text, id });
    room.chat.addPending(id, text, !sent);
    return true;
  },
  onTyping() {
    if (room && !room.ended && socket) socket.send({ type: "typing", room: room.id });
  },
});

$("#end-chat").addEventListener("click", () => {
  if (!room || room.ended) return;
  if (!socket || !socket.send({ type: "leave", room: room.id })) endChat(endedText("left"), "left");
});

$("#again").addEventListener("click", () => {
  note.value = "";
  note.dispatchEvent(new Event("input"));
  $("#resources").hidden = true;
  showStart();
  $("#note").focus();
});

const helpForm = $("#help-form");
$("#help-open").addEventListener("click", () => {
  helpForm.hidden = !helpForm.hidden;
  $("#help-open").setAttribute("aria-expanded", String(!helpForm.hidden));
  if (!helpForm.hidden) $("#help-reason").focus();
});
$("#help-cancel").addEventListener("click", () => {
  helpForm.hidden = true;
  $("#help-open").setAttribute("aria-expanded", "false");
  $("#help-open").focus();
});
helpForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!room || room.ended) return;
  const frame = { type: "escalate", room: room.id };
  const reason = $("#help-reason").value.trim();
  if (reason) frame.reason = reason;
  if (socket && socket.send(frame)) {
    helpForm.hidden = true;
    $("#help-open").setAttribute("aria-expanded", "false");
    $("#help-reason").value = "";
    const done = $("#help-done");
    done.textContent = "Asking a moderator for help…";
    done.hidden = false;
  }
});

// ---- On load: pick up where this tab left off ----------------------------

if (sessionStorage.getItem(RESUME_KEY)) {
  say("Reconnecting to your chat…");
  connect();
}
