// Administration: the organisation's settings (sending, shareable links, the largest file, the
// longest lifetime), for every user at once.

import { $, report, formatSeconds } from "../dom.js";
import { get, patch, errorText } from "../api.js";
import { state } from "../state.js";

const status = $("admin-status");
const FIELDS = ["send_messages", "share_links", "max_file_mb", "max_lifetime"];
const SENDING = {
  with_attachments: "with attachments",
  without_attachments: "without attachments",
  not_allowed: "not allowed",
};
const UNITS = [86400, 3600, 60]; // days, hours, minutes: the largest that divides the lifetime

function showFieldErrors(fields) {
  for (const name of FIELDS) {
    const text = fields[name] || "";
    const el = $(`organisation-${name}-error`);
    el.textContent = text;
    el.hidden = !text;
  }
}

function showLifetimeToggle() {
  const on = $("organisation-lifetime-toggle").checked;
  $("organisation-lifetime").disabled = !on;
  $("organisation-lifetime-unit").disabled = !on;
}

function show(settings) {
  $("organisation-send").value = settings.send_messages;
  $("organisation-share").checked = settings.share_links;
  $("organisation-file").value = String(settings.max_file_mb);
  const lifetime = settings.max_lifetime;
  $("organisation-lifetime-toggle").checked = lifetime !== null;
  if (lifetime !== null) {
    const unit = UNITS.find((u) => lifetime % u === 0) || 60;
    $("organisation-lifetime-unit").value = String(unit);
    $("organisation-lifetime").value = String(Math.max(1, Math.round(lifetime / unit)));
  } else {
    $("organisation-lifetime").value = "";
  }
  showLifetimeToggle();
}

function describe(settings) {
  const parts = [`sending ${SENDING[settings.send_messages]}`,
    settings.share_links ? "shareable links allowed" : "no shareable links",
    `files up to ${settings.max_file_mb} MiB`];
  if (settings.max_lifetime !== null) parts.push(`everything expires within ${formatSeconds(settings.max_lifetime)}`);
  return parts.join(", ");
}

export async function loadOrganisationAdmin() {
  if (!state.me || !state.me.is_admin) return;
  showFieldErrors({});
  try {
    show(await get("/api/admin/settings"));
  } catch (error) {
    report(status, errorText(error), true);
  }
}

// The body to send, or the field errors found before asking the server.
function readForm() {
  const errors = {};
  const size = Number($("organisation-file").value);
  if (!Number.isInteger(size) || size < 1 || size > 25) errors.max_file_mb = "a whole number from 1 to 25";
  let lifetime = null;
  if ($("organisation-lifetime-toggle").checked) {
    const count = Number($("organisation-lifetime").value);
    if ($("organisation-lifetime").value === "" || !Number.isInteger(count) || count < 1) {
      errors.max_lifetime = "a whole number, at least 1";
    } else {
      lifetime = count * Number($("organisation-lifetime-unit").value);
    }
  }
  return {
    errors,
    body: {
      send_messages: $("organisation-send").value,
      share_links: $("organisation-share").checked,
      max_file_mb: size,
      max_lifetime: lifetime,
    },
  };
}

async function save(event) {
  event.preventDefault();
  showFieldErrors({});
  report(status, "");
  const { errors, body } = readForm();
  if (Object.keys(errors).length) {
    showFieldErrors(errors);
    report(status, "Some settings cannot be saved; see below.", true);
    return;
  }
  const button = event.currentTarget.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const saved = await patch("/api/admin/settings", body);
    show(saved);
    report(status, `Organisation settings saved: ${describe(saved)}.`);
  } catch (error) {
    showFieldErrors(error.fields || {});
    report(status, errorText(error), true);
  } finally {
    button.disabled = false;
  }
}

export function resetOrganisationAdmin() {
  $("organisation-settings").reset();
  showLifetimeToggle();
  showFieldErrors({});
}

export function initOrganisationAdmin() {
  $("organisation-settings").addEventListener("submit", save);
  $("organisation-lifetime-toggle").addEventListener("change", () => {
    showLifetimeToggle();
    if ($("organisation-lifetime-toggle").checked) {
      if (!$("organisation-lifetime").value) $("organisation-lifetime").value = "30";
      $("organisation-lifetime").focus();
    }
  });
}
