// System messages: an administrator's announcements to everyone, shown as banners under the
// header (never a modal: that is the high-priority popup's). A dismissible one goes for good
// when dismissed, a reminder until the next sign-in; the server tells this user's other tabs.

import { h, $, clear, formatTime } from "../dom.js";
import { get, post, errorText } from "../api.js";
import { bus } from "../bus.js";

const region = $("system-banners");
const shown = new Map(); // id -> system message, in the order they came
const endTimers = new Map(); // id -> the timer that takes it down at its end
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's longest wait

function banner(message) {
  const reminder = message.mode === "reminder";
  const dismiss = h("button", {
    type: "button", class: "small system-dismiss",
    "aria-label": `${reminder ? "Hide for now" : "Dismiss"}: ${message.subject}`,
  }, reminder ? "Hide for now" : "Dismiss");
  dismiss.addEventListener("click", () => dismissMessage(message, dismiss));
  return h("div", { class: `system-banner ${reminder ? "reminder" : "dismissible"}`, role: "region",
    "aria-label": `Announcement: ${message.subject}`, dataset: { id: message.id } },
    h("div", { class: "system-text" },
      h("p", { class: "system-kind" }, reminder ? "Reminder" : "Announcement",
        message.ends_at ? h("span", { class: "system-until" }, ` · until ${formatTime(message.ends_at)}`) : null),
      h("p", { class: "system-subject" }, message.subject),
      message.body ? h("p", { class: "system-body" }, message.body) : null),
    dismiss);
}

function render() {
  clear(region);
  for (const message of shown.values()) region.appendChild(banner(message));
  region.hidden = shown.size === 0;
}

function scheduleEnd(message) {
  clearTimeout(endTimers.get(message.id));
  if (!message.ends_at) return;
  const wait = new Date(message.ends_at).getTime() - Date.now();
  if (wait > MAX_TIMER_MS) return; // the server's system.withdrawn comes first
  endTimers.set(message.id, setTimeout(() => removeSystem(message.id), Math.max(0, wait)));
}

function ended(message) {
  return message.ends_at && new Date(message.ends_at).getTime() <= Date.now();
}

// Every system message to show now, replacing what was shown (a hello, a reload).
export function showSystem(messages) {
  for (const timer of endTimers.values()) clearTimeout(timer);
  endTimers.clear();
  shown.clear();
  for (const message of messages || []) {
    if (ended(message)) continue;
    shown.set(message.id, message);
    scheduleEnd(message);
  }
  render();
}

export function addSystem(message) {
  if (!message || ended(message)) return;
  shown.set(message.id, message);
  scheduleEnd(message);
  render();
}

export function removeSystem(id) {
  clearTimeout(endTimers.get(id));
  endTimers.delete(id);
  if (shown.delete(id)) render();
}

export async function reloadSystem() {
  try {
    showSystem((await get("/api/system-messages")).messages);
  } catch {
    // the next hello carries the same
  }
}

async function dismissMessage(message, button) {
  button.disabled = true;
  try {
    await post(`/api/system-messages/${message.id}/dismiss`);
    removeSystem(message.id);
  } catch (error) {
    if (error.status === 404) {
      removeSystem(message.id); // withdrawn or ended meanwhile
      return;
    }
    button.disabled = false;
    bus.emit("notice", errorText(error));
  }
}

export function resetSystem() {
  showSystem([]);
}
