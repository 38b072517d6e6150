// Quick exit: a button, and the Shift key pressed three times within 1.5 s
// (the GOV.UK "Exit this page" pattern).
//
// In this order, at once: say goodbye on the socket (close 1000 ends the
// seat), forget the session, blank the page, and replace this history entry
// with a neutral site. Browser history itself is not erased; the page says so.

const SHIFT_PRESSES = 3;
const SHIFT_WINDOW_MS = 1500;

export function exitUrl() {
  const meta = document.querySelector('meta[name="hearth-exit-url"]');
  return (meta && meta.content) || "https://www.bbc.co.uk/weather";
}

/**
 * @param {HTMLElement} button
 * @param {() => void} closeSocket  closes the live socket with code 1000
 */
export function installQuickExit(button, closeSocket) {
  let presses = [];
  let leaving = false;

  const leave = () => {
    if (leaving) return;
    leaving = true;
    try {
      closeSocket();
    } finally {
      sessionStorage.clear();
      document.title = "Weather";
      document.body.replaceChildren();
      location.replace(exitUrl());
    }
  };

  button.addEventListener("click", (event) => {
    event.preventDefault();
    leave();
  });

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Shift" || event.repeat) return;
    const now = Date.now();
    presses = presses.filter((t) => now - t < SHIFT_WINDOW_MS);
    presses.push(now);
    if (presses.length >= SHIFT_PRESSES) leave();
  });
}
