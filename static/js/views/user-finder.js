// A search box that finds accounts as one types (the admin user list, by prefix of username or
// display name) and offers a few to pick: for group members and the audit trail's user filter,
// where a list of every user would not do for thousands.

import { h, clear } from "../dom.js";
import { get } from "../api.js";

const DEBOUNCE_MS = 120;
const SHOWN = 8;
let finders = 0;

// label: the input's accessible name; onPick(user) gets the chosen user; skip(user) hides some
// (those already chosen); query: extra filters of /api/admin/users.
export function userFinder({ label, placeholder = "Find a user…", onPick, skip = () => false, query = {} }) {
  const number = ++finders;
  const list = h("ul", { class: "suggestions user-finder-results", role: "listbox", id: `user-finder-${number}`, hidden: true });
  const input = h("input", {
    type: "search", class: "user-finder-input", placeholder, autocomplete: "off", spellcheck: "false",
    role: "combobox", "aria-label": label, "aria-autocomplete": "list", "aria-expanded": "false",
    "aria-controls": list.id,
  });
  let found = [];
  let active = -1;
  let asked = 0;
  let timer = null;

  function hide() {
    list.hidden = true;
    clear(list);
    found = [];
    active = -1;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }

  function render() {
    clear(list);
    if (!found.length) {
      list.appendChild(h("li", { class: "user-finder-none", role: "option", "aria-disabled": "true" }, "No user matches."));
    }
    found.forEach((user, index) => {
      const option = h("li", {
        id: `${list.id}-${index}`, role: "option", class: index === active ? "active user-finder-option" : "user-finder-option",
        "aria-selected": index === active ? "true" : "false", dataset: { id: user.id },
      }, h("span", { class: "name" }, user.display_name), " ", h("span", { class: "extra" }, `@${user.username}`));
      option.addEventListener("mousedown", (event) => event.preventDefault()); // keep the focus
      option.addEventListener("click", () => pick(index));
      list.appendChild(option);
    });
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    if (active >= 0) input.setAttribute("aria-activedescendant", `${list.id}-${active}`);
    else input.removeAttribute("aria-activedescendant");
  }

  function pick(index) {
    const user = found[index];
    if (!user) return;
    input.value = "";
    hide();
    onPick(user);
    input.focus();
  }

  async function lookUp() {
    const q = input.value.trim();
    const ticket = ++asked;
    if (!q) {
      hide();
      return;
    }
    let answer;
    try {
      answer = await get(`/api/admin/users?${new URLSearchParams({ ...query, q, limit: String(SHOWN * 2) })}`);
    } catch {
      return;
    }
    if (ticket !== asked || document.activeElement !== input) return;
    found = answer.users.filter((user) => !skip(user)).slice(0, SHOWN);
    active = found.length ? 0 : -1;
    render();
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(lookUp, DEBOUNCE_MS);
  });
  input.addEventListener("blur", () => setTimeout(hide, 100));
  input.addEventListener("keydown", (event) => {
    const open = !list.hidden && found.length > 0;
    if (event.key === "ArrowDown" && open) {
      event.preventDefault();
      active = (active + 1) % found.length;
      render();
    } else if (event.key === "ArrowUp" && open) {
      event.preventDefault();
      active = (active - 1 + found.length) % found.length;
      render();
    } else if (event.key === "Enter") {
      event.preventDefault(); // never submits the form around it
      if (open) pick(Math.max(active, 0));
    } else if (event.key === "Escape" && !list.hidden) {
      event.preventDefault();
      hide();
    }
  });
  return h("div", { class: "user-finder field" }, input, list);
}
