// Administration: the organisation's settings (sending, links, largest file, longest lifetime).

import { $, report } from "../dom.js";
import { get, patch, errorText } from "../api.js";
import { state } from "../state.js";

const status = $("admin-status");
const UNITS = [86400, 3600, 60];

function showFieldErrors(fields) {
  for (const [id, name] of [["organisation-file", "max_file_mb"], ["organisation-lifetime", "max_lifetime"]]) {
    const el = $(`${id}-error`);
    el.textContent = fields[name] || "";
    el.hidden = !fields[name];
  }
}

function setLifetimeEnabled(on) {
  $("organisation-lifetime").disabled = !on;
  $("organisation-lifetime-unit").disabled = !on;
}

function show(settings) {
  const form = $("organisation");
  form.elements.send_messages.value = settings.send_messages;
  form.elements.share_links.checked = settings.share_links;
  form.elements.max_file_mb.value = settings.max_file_mb;
  const lifetime = settings.max_lifetime;
  $("organisation-lifetime-toggle").checked = lifetime !== null;
  setLifetimeEnabled(lifetime !== null);
  if (lifetime !== null) {
    const unit = UNITS.find((seconds) => lifetime % seconds === 0) || 1;
    form.elements.unit.value = String(unit === 1 ? 60 : unit);
    form.elements.lifetime.value = unit === 1 ? Math.ceil(lifetime / 60) : lifetime / unit;
  } else {
    form.elements.lifetime.value = "";
  }
}

export async function loadOrganisationAdmin() {
  if (!state.me || !state.me.is_admin) return;
  try {
    show(await get("/api/admin/settings"));
  } catch (error) {
    report(status, errorText(error), true);
  }
}

async function save(event) {
  event.preventDefault();
  const form = event.currentTarget;
  showFieldErrors({});
  const body = {
    send_messages: form.elements.send_messages.value,
    share_links: form.elements.share_links.checked,
    max_file_mb: Number(form.elements.max_file_mb.value),
    max_lifetime: null,
  };
  if ($("organisation-lifetime-toggle").checked) {
    const amount = Number(form.elements.lifetime.value);
    if (!Number.isInteger(amount) || amount < 1) {
      showFieldErrors({ max_lifetime: "a whole number, 1 or more" });
      return;
    }
    body.max_lifetime = amount * Number(form.elements.unit.value);
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    show(await patch("/api/admin/settings", body));
    report(status, "Saved the organisation's settings: they hold from every user's next request.");
  } catch (error) {
    showFieldErrors(error.fields || {});
    report(status, errorText(error), true);
  } finally {
    button.disabled = false;
  }
}

export function resetOrganisationAdmin() {
  $("organisation").reset();
  setLifetimeEnabled(false);
  showFieldErrors({});
}

export function initOrganisationAdmin() {
  $("organisation").addEventListener("submit", save);
  $("organisation-lifetime-toggle").addEventListener("change", (event) => {
    setLifetimeEnabled(event.currentTarget.checked);
  });
}
