// The composer's three modes: in-app, by email, as a shareable link; and which of them the
// account may use. The section's data-mode attribute shows and hides each mode's fields (CSS).

import { $ } from "../dom.js";

export const IN_APP = "in-app";
export const EMAIL = "email";
export const LINK = "link";

const SEND_LABELS = { [IN_APP]: "Send", [EMAIL]: "Send by email", [LINK]: "Create link" };

const section = $("compose");
let onChange = () => {};

function radios() {
  return [...document.querySelectorAll("input[name=compose-mode]")];
}

export function composeMode() {
  return section.dataset.mode || IN_APP;
}

export function isLinkMode(mode = composeMode()) {
  return mode === EMAIL || mode === LINK;
}

function offered(mode) {
  const radio = radios().find((r) => r.value === mode);
  return Boolean(radio) && !radio.closest("label").hidden && !$("compose-modes").hidden;
}

// Switches to `mode` (in-app where the account may not use it); tells the composer if it changed.
export function setMode(mode) {
  const wanted = mode === IN_APP || offered(mode) ? mode : IN_APP;
  for (const radio of radios()) radio.checked = radio.value === wanted;
  const previous = composeMode();
  section.dataset.mode = wanted;
  $("send").textContent = SEND_LABELS[wanted];
  if (previous !== wanted) onChange(wanted, previous);
}

// Offers the link modes the account has; hides the switch when in-app is all there is.
export function applyModeRights(me) {
  const links = Boolean(me.can_share_links);
  $("mode-link-option").hidden = !links;
  $("mode-email-option").hidden = !(links && me.can_email_links);
  $("compose-modes").hidden = !links;
  setMode(composeMode());
}

export function initModes(changed) {
  onChange = changed;
  for (const radio of radios()) {
    radio.addEventListener("change", () => {
      if (radio.checked) setMode(radio.value);
    });
  }
  setMode(IN_APP);
}
