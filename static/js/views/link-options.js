// The options of a link, in both link modes: expiry, views and passphrase; by email also the
// addresses and the note. Reads them for POST /api/links and shows each field's error beside it.

import { $, localInputValue } from "../dom.js";
import { EMAIL } from "./compose-mode.js";

const DAY_MS = 24 * 3600_000;
const MAX_AHEAD_MS = 30 * DAY_MS;
// "30 days" is sent a minute short, so that a clock a little ahead of the server's stays within.
const CLOCK_MARGIN_MS = 60_000;
export const MAX_ADDRESSES = 20;
const MAX_NOTE = 1000;
const ADDRESS = /^[^\s@]+@[^\s@]+$/; // a first check only: the server decides

// Where a field's error shows, by the server's field path (its longest known prefix).
const ERROR_BOX = {
  subject: "subject-error",
  body: "body-error",
  expires_at: "link-expiry-error",
  max_views: "link-views-error",
  passphrase: "link-passphrase-error",
  email: "email-to-error",
  "email.to": "email-to-error",
  "email.note": "email-note-error",
};

function inputOf(box) {
  if (box === "link-expiry-error") return $("link-expiry").value === "custom" ? $("link-expires-at") : $("link-expiry");
  return $(box.replace(/-error$/, ""));
}

export function addresses() {
  const seen = new Set();
  return $("email-to").value.split(/[\s,;]+/).filter((a) => {
    const key = a.toLowerCase();
    if (!a || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function expiry(problems) {
  const choice = $("link-expiry").value;
  if (choice !== "custom") {
    const ahead = Number(choice) * 1000;
    return new Date(Date.now() + (ahead >= MAX_AHEAD_MS ? ahead - CLOCK_MARGIN_MS : ahead));
  }
  const when = new Date($("link-expires-at").value);
  if (!$("link-expires-at").value || Number.isNaN(when.getTime())) problems.expires_at = "Choose when the link expires.";
  else if (when.getTime() <= Date.now()) problems.expires_at = "The expiry must be in the future.";
  else if (when.getTime() > Date.now() + MAX_AHEAD_MS) problems.expires_at = "A link expires within 30 days.";
  else return when;
  return null;
}

function views(problems) {
  const text = $("link-views").value.trim();
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 100) {
    problems.max_views = "Views: a whole number from 1 to 100.";
    return null;
  }
  return n;
}

function passphrase(problems) {
  const value = $("link-passphrase").value;
  if (!value) return null;
  if (value.length < 8) problems.passphrase = "A passphrase has at least 8 characters (or leave it empty).";
  else if (value.length > 128) problems.passphrase = "A passphrase has at most 128 characters.";
  return value;
}

function email(problems) {
  const to = addresses();
  const wrong = to.filter((a) => !ADDRESS.test(a));
  if (to.length === 0) problems["email.to"] = "Add at least one email address.";
  else if (to.length > MAX_ADDRESSES) problems["email.to"] = `At most ${MAX_ADDRESSES} addresses (${to.length} given).`;
  else if (wrong.length) problems["email.to"] = `Not an email address: ${wrong.join(", ")}`;
  const note = $("email-note").value;
  if (note.length > MAX_NOTE) problems["email.note"] = `The note has at most ${MAX_NOTE} characters.`;
  return { to, note };
}

// {values: the link fields of POST /api/links, problems: {field path: message}} for `mode`.
export function readLinkOptions(mode) {
  const problems = {};
  const when = expiry(problems);
  const values = {
    expires_at: when ? when.toISOString() : null,
    max_views: views(problems),
    passphrase: passphrase(problems),
    email: mode === EMAIL ? email(problems) : null,
  };
  return { values, problems };
}

function boxFor(path) {
  const parts = path.split(".");
  for (let n = parts.length; n > 0; n -= 1) {
    const box = ERROR_BOX[parts.slice(0, n).join(".")];
    if (box) return box;
  }
  return null;
}

// The message for a path, naming the address an "email.to.N" error is about.
function described(path, message) {
  const match = /^email\.to\.(\d+)$/.exec(path);
  const address = match ? addresses()[Number(match[1])] : null;
  return address ? `${address}: ${message}` : message;
}

// Shows each error beside its field; answers the [path, message] pairs that have no field here.
export function showFieldErrors(fields) {
  const byBox = new Map();
  const elsewhere = [];
  for (const [path, message] of Object.entries(fields)) {
    const box = boxFor(path);
    if (!box) elsewhere.push([path, message]);
    else byBox.set(box, [...(byBox.get(box) || []), described(path, message)]);
  }
  for (const [box, lines] of byBox) {
    $(box).textContent = lines.join("\n");
    $(box).hidden = false;
    const input = inputOf(box);
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", box);
  }
  return elsewhere;
}

export function clearFieldError(box) {
  $(box).textContent = "";
  $(box).hidden = true;
  for (const input of [inputOf(box), $("link-expiry"), $("link-expires-at")]) {
    if (input.getAttribute("aria-describedby") === box) {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    }
  }
}

export function clearFieldErrors() {
  for (const box of new Set(Object.values(ERROR_BOX))) clearFieldError(box);
}

// Focuses the first field (in page order) that shows an error; answers whether there was one.
export function focusFirstError() {
  const shown = [...document.querySelectorAll("#compose .field-error:not([hidden])")];
  if (shown.length === 0) return false;
  inputOf(shown[0].id).focus();
  return true;
}

function updateCounts() {
  const n = addresses().length;
  $("email-to-count").textContent = n ? `${n} of ${MAX_ADDRESSES} addresses` : `Up to ${MAX_ADDRESSES} addresses`;
  $("email-note-count").textContent = `${$("email-note").value.length} / ${MAX_NOTE}`;
}

function showCustomExpiry() {
  const custom = $("link-expiry").value === "custom";
  const input = $("link-expires-at");
  input.hidden = !custom;
  input.min = localInputValue(new Date(Date.now() + 60_000));
  input.max = localInputValue(new Date(Date.now() + MAX_AHEAD_MS - CLOCK_MARGIN_MS));
  if (custom && !input.value) input.value = localInputValue(new Date(Date.now() + 7 * DAY_MS));
  if (custom) input.focus();
}

function showPassphrase(show) {
  $("link-passphrase").type = show ? "text" : "password";
  $("link-passphrase-show").textContent = show ? "Hide" : "Show";
  $("link-passphrase-show").setAttribute("aria-pressed", String(show));
}

export function resetLinkOptions() {
  $("link-expiry").value = "86400";
  $("link-expires-at").value = "";
  $("link-expires-at").hidden = true;
  $("link-views").value = "1";
  $("link-passphrase").value = "";
  showPassphrase(false);
  $("email-to").value = "";
  $("email-note").value = "";
  clearFieldErrors();
  updateCounts();
}

export function initLinkOptions() {
  $("link-expiry").addEventListener("change", () => {
    clearFieldError("link-expiry-error");
    showCustomExpiry();
  });
  $("link-passphrase-show").addEventListener("click", () => showPassphrase($("link-passphrase").type === "password"));
  for (const box of new Set(Object.values(ERROR_BOX))) {
    const input = inputOf(box);
    input.addEventListener("input", () => clearFieldError(box));
  }
  $("link-expires-at").addEventListener("input", () => clearFieldError("link-expiry-error"));
  $("email-to").addEventListener("input", updateCounts);
  $("email-note").addEventListener("input", updateCounts);
  updateCounts();
}
