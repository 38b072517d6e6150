// Small DOM helpers shared by the three pages.
//
// Every piece of text from the network goes through text nodes (textContent);
// nothing here ever parses a string as HTML.

/** Build an element: el("p", {className: "note"}, "text", childNode). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "on") {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Show exactly one of `views` (elements), hide the rest. */
export function showOnly(views, shown) {
  for (const view of views) view.hidden = view !== shown;
}

/** Say something through a polite live region (re-set so repeats are read). */
export function announce(region, text) {
  region.textContent = "";
  window.setTimeout(() => { region.textContent = text; }, 50);
}

/** "14:05" in the reader's own clock. */
export function clock(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** "4:07" for a number of seconds. */
export function minutesSeconds(total) {
  const s = Math.max(0, Math.round(total));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** "3 min" / "45 s" / "1 h 5 min" for an age in seconds. */
export function age(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A token from the link's #token=... fragment, kept in sessionStorage, never in the URL. */
export function tokenFromFragment(storageKey) {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const fromHash = params.get("token");
  if (fromHash) {
    sessionStorage.setItem(storageKey, fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(storageKey);
}

/** The topic names a person sees. */
export const TOPICS = {
  anything: "Anything",
  anxiety: "Anxiety",
  depression: "Feeling low or depressed",
  loneliness: "Loneliness",
  relationships: "Relationships",
  grief: "Grief or loss",
  "self-harm": "Self-harm",
  other: "Something else",
};

export const LANGUAGES = { en: "English", es: "Español" };

export function topicName(topic) {
  return TOPICS[topic] || (topic ? String(topic) : "Anything");
}

export function languageName(language) {
  return LANGUAGES[language] || (language ? String(language) : "Any");
}
