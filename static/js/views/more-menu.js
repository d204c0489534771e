// The composer's More menu: a menu button with arrow-key navigation; Escape closes it.

import { $ } from "../dom.js";

const button = $("more");
const menu = $("more-menu");

// The items the composer's mode shows (a link takes no vault entries).
function items() {
  return [...menu.querySelectorAll("[role=menuitem]")].filter((item) => item.getClientRects().length > 0);
}

export function closeMoreMenu(focusButton = false) {
  menu.hidden = true;
  button.setAttribute("aria-expanded", "false");
  if (focusButton) button.focus();
}

function openMenu() {
  menu.hidden = false;
  button.setAttribute("aria-expanded", "true");
  items()[0].focus();
}

export function initMoreMenu(actions) {
  button.addEventListener("click", () => (menu.hidden ? openMenu() : closeMoreMenu()));
  button.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") {
      event.preventDefault();
      openMenu();
    }
  });
  const wire = (id, action) => $(id).addEventListener("click", () => {
    closeMoreMenu();
    action();
  });
  wire("add-credentials", actions.credentials);
  wire("add-entries", actions.entries);
  wire("add-file", actions.file);
  menu.addEventListener("keydown", (event) => {
    const list = items();
    const index = list.indexOf(document.activeElement);
    if (event.key === "ArrowDown") {
      event.preventDefault();
      list[(index + 1) % list.length].focus();
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      list[(index - 1 + list.length) % list.length].focus();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeMoreMenu(true);
    } else if (event.key === "Tab") {
      closeMoreMenu();
    }
  });
  document.addEventListener("click", (event) => {
    if (!menu.hidden && !menu.contains(event.target) && event.target !== button) closeMoreMenu();
  });
}
