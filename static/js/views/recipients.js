// The To field: live suggestions of users and groups, chosen ones as removable chips.

import { h, $, clear } from "../dom.js";
import { get } from "../api.js";

const DEBOUNCE_MS = 150;

const input = $("to-input");
const list = $("to-suggestions");
const chipsBox = $("to-chips");

let chosen = []; // [{kind, id, name}]
let suggestions = [];
let active = -1;
let timer = null;
let asked = 0;

export function recipients() {
  return chosen.map(({ kind, id }) => ({ kind, id }));
}

export function recipientNames() {
  return chosen.map((r) => r.name);
}

export function setRecipients(list) {
  chosen = [];
  for (const r of list) addChip(r, false);
  renderChips();
}

export function clearRecipients() {
  chosen = [];
  renderChips();
  input.value = "";
  hide();
}

function key(r) {
  return `${r.kind}:${r.id}`;
}

function addChip(r, render = true) {
  if (chosen.some((c) => key(c) === key(r))) return;
  chosen.push(r);
  if (render) renderChips();
}

function removeChip(index) {
  chosen.splice(index, 1);
  renderChips();
  input.focus();
}

function renderChips() {
  clear(chipsBox);
  chosen.forEach((r, index) => {
    const remove = h("button", { type: "button", class: "remove", "aria-label": `Remove ${r.name}` }, "×");
    remove.addEventListener("click", () => removeChip(index));
    chipsBox.appendChild(
      h("span", { class: `chip ${r.kind}`, dataset: { kind: r.kind, id: r.id } },
        h("span", { class: "chip-name" }, r.name),
        r.kind === "group" ? h("span", { class: "group-tag" }, " (group)") : null,
        remove));
  });
}

function hide() {
  list.hidden = true;
  clear(list);
  suggestions = [];
  active = -1;
  input.setAttribute("aria-expanded", "false");
  input.removeAttribute("aria-activedescendant");
}

function label(result) {
  if (result.kind === "group") {
    const n = result.members;
    return { name: result.name, extra: `group, ${n} ${n === 1 ? "member" : "members"}` };
  }
  return { name: result.display_name, extra: `@${result.username}` };
}

function renderSuggestions() {
  clear(list);
  if (suggestions.length === 0) {
    hide();
    return;
  }
  suggestions.forEach((result, index) => {
    const { name, extra } = label(result);
    const li = h("li", {
      id: `to-option-${index}`,
      role: "option",
      class: index === active ? "active" : "",
      "aria-selected": index === active ? "true" : "false",
      dataset: { kind: result.kind, id: result.id },
    }, h("span", { class: "name" }, name), " ", h("span", { class: "extra" }, extra));
    // mousedown would move the focus out of the input before click.
    li.addEventListener("mousedown", (event) => event.preventDefault());
    li.addEventListener("click", () => pick(index));
    list.appendChild(li);
  });
  list.hidden = false;
  input.setAttribute("aria-expanded", "true");
  if (active >= 0) input.setAttribute("aria-activedescendant", `to-option-${active}`);
  else input.removeAttribute("aria-activedescendant");
}

function pick(index) {
  const result = suggestions[index];
  if (!result) return;
  addChip({ kind: result.kind, id: result.id, name: label(result).name });
  input.value = "";
  hide();
  input.focus();
}

async function lookUp() {
  const q = input.value.trim();
  const ticket = ++asked;
  let answer;
  try {
    answer = await get(`/api/directory?q=${encodeURIComponent(q)}`);
  } catch {
    return;
  }
  if (ticket !== asked || document.activeElement !== input) return;
  const taken = new Set(chosen.map(key));
  suggestions = answer.results.filter((r) => !taken.has(key(r)));
  active = suggestions.length ? 0 : -1;
  renderSuggestions();
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(lookUp, DEBOUNCE_MS);
}

export function initRecipients() {
  input.addEventListener("input", schedule);
  input.addEventListener("focus", () => {
    if (input.value.trim()) schedule();
  });
  input.addEventListener("blur", () => setTimeout(hide, 100));
  input.addEventListener("keydown", (event) => {
    const open = !list.hidden && suggestions.length > 0;
    if (event.key === "ArrowDown") {
      event.preventDefault();
      if (!open) return schedule();
      active = (active + 1) % suggestions.length;
      renderSuggestions();
    } else if (event.key === "ArrowUp" && open) {
      event.preventDefault();
      active = (active - 1 + suggestions.length) % suggestions.length;
      renderSuggestions();
    } else if (event.key === "Enter") {
      if (open && active >= 0) {
        event.preventDefault();
        pick(active);
      }
    } else if (event.key === "Escape" && open) {
      event.preventDefault();
      event.stopPropagation();
      hide();
    } else if (event.key === "Backspace" && input.value === "" && chosen.length > 0) {
      event.preventDefault();
      chosen.pop();
      renderChips();
    }
  });
  chipsBox.addEventListener("click", (event) => {
    if (event.target === chipsBox) input.focus();
  });
}
