// Administration: system messages (write one to everyone, list those shown, withdraw one).

import { h, $, clear, report, formatTime, confirmTwice } from "../dom.js";
import { get, post, del, errorText } from "../api.js";
import { state } from "../state.js";

const status = $("admin-status");
const FIELDS = ["subject", "body", "ends"];
let messages = [];

function row(message) {
  const withdraw = h("button", { type: "button", class: "withdraw small danger",
    "aria-label": `Withdraw ${message.subject}` }, "Withdraw");
  confirmTwice(withdraw, () => withdrawMessage(message), "Withdraw from everyone?");
  return h("tr", { dataset: { id: message.id } },
    h("td", {}, h("span", { class: "system-subject" }, message.subject),
      message.body ? h("div", { class: "extra system-body" }, message.body) : null),
    h("td", {}, message.mode === "reminder" ? "at every sign-in" : "until dismissed"),
    h("td", {}, message.ends_at ? formatTime(message.ends_at) : "when withdrawn"),
    h("td", {}, withdraw));
}

function render() {
  const body = clear($("system-messages").tBodies[0]);
  for (const message of messages) body.appendChild(row(message));
  $("system-empty").hidden = messages.length > 0;
}

export async function loadSystemAdmin() {
  if (!state.me || !state.me.is_admin) return;
  try {
    messages = (await get("/api/admin/system-messages")).messages;
  } catch (error) {
    report(status, errorText(error), true);
    return;
  }
  render();
}

async function withdrawMessage(message) {
  try {
    await del(`/api/admin/system-messages/${message.id}`);
    report(status, `Withdrew the system message “${message.subject}”.`);
  } catch (error) {
    if (error.status !== 404) {
      report(status, errorText(error), true);
      return;
    }
  }
  messages = messages.filter((m) => m.id !== message.id);
  render();
}

function showFieldErrors(fields) {
  for (const name of FIELDS) {
    const text = fields[name === "ends" ? "ends_at" : name] || "";
    const el = $(`new-system-${name}-error`);
    el.textContent = text;
    el.hidden = !text;
  }
}

async function postMessage(event) {
  event.preventDefault();
  const form = event.currentTarget;
  showFieldErrors({});
  const body = {
    subject: form.elements.subject.value.trim(),
    body: form.elements.body.value,
    mode: form.elements.mode.value,
    ends_at: null,
  };
  if ($("new-system-ends-toggle").checked) {
    const ends = new Date(form.elements.ends_at.value);
    if (Number.isNaN(ends.getTime())) {
      showFieldErrors({ ends_at: "choose a date and time" });
      return;
    }
    body.ends_at = ends.toISOString();
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const created = await post("/api/admin/system-messages", body);
    form.reset();
    $("new-system-ends").disabled = true;
    report(status, `Posted “${created.subject}” to everyone.`);
    messages = [created, ...messages.filter((m) => m.id !== created.id)];
    render();
  } catch (error) {
    showFieldErrors(error.fields || {});
    report(status, errorText(error), true);
  } finally {
    button.disabled = false;
  }
}

export function resetSystemAdmin() {
  messages = [];
  clear($("system-messages").tBodies[0]);
  showFieldErrors({});
}

export function initSystemAdmin() {
  $("new-system").addEventListener("submit", postMessage);
  $("new-system-ends-toggle").addEventListener("change", (event) => {
    $("new-system-ends").disabled = !event.currentTarget.checked;
  });
}
