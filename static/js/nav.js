// Which view of the main area is shown; the navigation buttons mirror it.

import { bus } from "./bus.js";

const VIEWS = ["inbox", "sent", "links", "message-view", "compose", "vault", "admin"];
let current = null;

export function showView(name, { focus = true } = {}) {
  for (const id of VIEWS) {
    const section = document.getElementById(id);
    if (section) section.hidden = id !== name;
  }
  for (const button of document.querySelectorAll(".main-nav button[data-view]")) {
    if (button.dataset.view === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  const previous = current;
  current = name;
  bus.emit("view", { name, previous });
  if (focus) {
    const heading = document.querySelector(`#${name} h2`);
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: false });
    }
  }
}

export function currentView() {
  return current;
}
