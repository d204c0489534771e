// The composer: a message in-app (recipients, subject, message, expiry, priority, attachments),
// or, in the link modes, the same content as a shareable link or a link sent by email.

import { h, $, clear, report, randomKey, localInputValue, formatSeconds } from "../dom.js";
import { post, errorText, ApiError } from "../api.js";
import { bus } from "../bus.js";
import { largestFileMb } from "../state.js";
import { showView } from "../nav.js";
import { recipients, recipientNames, setRecipients, clearRecipients, initRecipients } from "./recipients.js";
import { initGenerator } from "./generator.js";
import { initPicker, openPicker } from "./picker.js";
import { initMoreMenu, closeMoreMenu } from "./more-menu.js";
import {
  attach, attached, attachmentsPayload, clearAttachments, forgetUploads, initFiles, uploadFiles,
} from "./compose-attachments.js";
import { hideCredentialForm, initCredentials, openCredentialForm } from "./credential-form.js";
import { IN_APP, EMAIL, composeMode, isLinkMode, setMode, applyModeRights, initModes } from "./compose-mode.js";
import { clearFieldErrors, initLinkOptions, resetLinkOptions } from "./link-options.js";
import { hideLinkResult, initLinkResult } from "./link-result.js";
import { createLink } from "./link-create.js";

let replyTo = null;
let sending = false;
let rights = null; // the latest /api/me

const errorBox = $("compose-error");
const statusBox = $("compose-status");
const progress = $("compose-progress");

function showError(lines) {
  clear(errorBox);
  const list = Array.isArray(lines) ? lines : [lines];
  for (const line of list.filter(Boolean)) errorBox.appendChild(h("p", {}, line));
  errorBox.hidden = errorBox.childNodes.length === 0;
}

// Empties the draft; the mode stays where `keepMode`, else it goes back to in-app.
export function resetComposer({ keepMode = false } = {}) {
  clearRecipients();
  $("subject").value = "";
  $("body").value = "";
  $("expires-toggle").checked = false;
  $("expires-at").value = "";
  $("expires-at").disabled = true;
  $("high-priority").checked = false;
  clearAttachments();
  replyTo = null;
  hideCredentialForm();
  $("file-panel").hidden = true;
  showError([]);
  progress.hidden = true;
  resetLinkOptions();
  hideLinkResult();
  if (!keepMode) setMode(IN_APP);
}

function focusFirstField() {
  if (!isLinkMode() && recipients().length === 0) $("to-input").focus();
  else if (composeMode() === EMAIL && !$("email-to").value) $("email-to").focus();
  else if (!$("subject").value) $("subject").focus();
  else $("body").focus();
}

// Recipients, a reply or a vault attachment make an in-app message; `mode` picks one.
export function openComposer({ to = null, subject = null, reply = null, attachment = null, mode = null } = {}) {
  if (to || reply !== null || attachment || mode) {
    hideLinkResult();
    setMode(mode || IN_APP);
  }
  if (to) setRecipients(to);
  if (subject !== null) $("subject").value = subject;
  if (reply !== null) replyTo = reply;
  if (attachment) attach(attachment);
  report(statusBox, "");
  showView("compose", { focus: false });
  if ($("link-result").hidden) focusFirstField();
  else $("link-url").focus();
}

function replyTo_(message) {
  const subject = /^re:/i.test(message.subject) ? message.subject : `Re: ${message.subject}`;
  resetComposer();
  openComposer({
    to: [{ kind: "user", id: message.sender.id, name: message.sender.display_name }],
    subject: subject.slice(0, 255),
    reply: message.id,
  });
}

export function describeField(path) {
  const names = { to: "To", subject: "Subject", body: "Message", expires_at: "Expires", reply_to: "Reply", attachments: "Attachments" };
  const parts = path.split(".");
  if (parts[0] === "to" && parts.length > 1) {
    const name = recipientNames()[Number(parts[1])];
    return name ? `To (${name})` : "To";
  }
  if (parts[0] === "attachments" && parts.length > 1) {
    const a = attached()[Number(parts[1])];
    const rest = parts.slice(2).join(" ");
    return a ? `Attachment “${a.label}”${rest ? ` (${rest})` : ""}` : "Attachments";
  }
  return names[parts[0]] || path;
}

function validate() {
  const problems = [];
  if (recipients().length === 0) problems.push("Add at least one recipient.");
  if (!$("subject").value.trim()) problems.push("Write a subject.");
  if ($("expires-toggle").checked) {
    const when = new Date($("expires-at").value);
    if (!$("expires-at").value || Number.isNaN(when.getTime())) problems.push("Choose when the message expires.");
    else if (when.getTime() <= Date.now()) problems.push("The expiry time must be in the future.");
  }
  return problems;
}

function payload() {
  const expires = $("expires-toggle").checked ? new Date($("expires-at").value).toISOString() : null;
  return {
    to: recipients(),
    subject: $("subject").value,
    body: $("body").value,
    expires_at: expires,
    high_priority: $("high-priority").checked,
    reply_to: replyTo,
    attachments: attachmentsPayload(),
  };
}

async function sendInApp() {
  const problems = validate();
  if (problems.length) {
    showError(problems);
    return;
  }
  try {
    await uploadFiles(progress, statusBox);
    report(statusBox, "Sending…");
    const answer = await post("/api/messages", payload(), { headers: { "Idempotency-Key": randomKey() } });
    resetComposer({ keepMode: true });
    const n = answer.recipients;
    report(statusBox, `Sent to ${n} ${n === 1 ? "recipient" : "recipients"}.`);
    bus.emit("sent", answer);
    // A send the tab thought forbidden went: the rights were given back meanwhile.
    if (rights && !rights.can_send) bus.emit("rights-changed");
  } catch (error) {
    report(statusBox, "");
    showError(error instanceof ApiError ? error.lines(describeField) : [errorText(error)]);
    if (error.status === 404) forgetUploads();
    if (error.status === 403) bus.emit("rights-changed"); // the rights may have changed meanwhile
  }
}

async function send() {
  if (sending) return;
  showError([]);
  clearFieldErrors();
  report(statusBox, "");
  sending = true;
  $("send").disabled = true;
  try {
    if (isLinkMode()) {
      await createLink(composeMode(), {
        showError, statusBox, progress, describeField, resetDraft: () => resetComposer({ keepMode: true }),
      });
    } else {
      await sendInApp();
    }
  } finally {
    sending = false;
    $("send").disabled = false;
    progress.hidden = true;
  }
}

function setExpiryMin() {
  const input = $("expires-at");
  const now = new Date(Date.now() + 60_000);
  input.min = localInputValue(now);
}

function showNotice() {
  const notice = $("compose-notice");
  const me = rights;
  if (!me) return;
  if (isLinkMode()) {
    notice.textContent = "Your account may create links without attachments.";
    notice.hidden = me.can_attach;
    return;
  }
  if (!me.can_send) {
    notice.textContent = "Your account may not send messages.";
  } else if (!me.can_attach) {
    notice.textContent = "Your account may send messages without attachments.";
  }
  // The server has the last word (rights may change while the page is open): nothing is
  // disabled here, a refused send says why.
  notice.hidden = me.can_send && me.can_attach;
}

function applyRights(me) {
  rights = me;
  const wasLink = isLinkMode();
  applyModeRights(me);
  if (wasLink && !isLinkMode()) report(statusBox, "Your account may no longer create shareable links.");
  // Everything the More menu adds is an attachment: without the right, it is not offered.
  $("more").closest(".more-wrap").hidden = !me.can_attach;
  if (!me.can_attach) {
    closeMoreMenu();
    $("file-panel").hidden = true;
    hideCredentialForm();
  }
  $("file-limit").textContent = `At most ${largestFileMb()} MiB per file.`;
  const lifetime = me.max_lifetime;
  $("lifetime-hint").hidden = !lifetime;
  $("lifetime-hint").textContent = lifetime
    ? `Your organisation has everything expire within ${formatSeconds(lifetime)}: a later expiry is refused, and a message without one expires then.`
    : "";
  showNotice();
}

function modeChanged() {
  hideLinkResult();
  showError([]);
  clearFieldErrors();
  report(statusBox, "");
  closeMoreMenu();
  showNotice();
}

export function initCompose() {
  initRecipients();
  initGenerator();
  initPicker();
  initCredentials(showError);
  initFiles(showError);
  initLinkOptions();
  initModes(modeChanged);
  initLinkResult({ done: focusFirstField, showLinks: () => showView("links") });
  initMoreMenu({
    credentials: openCredentialForm,
    entries: async () => {
      const failure = await openPicker((picked) => {
        for (const p of picked) {
          if (p.kind === "folder") attach({ kind: "folder", folder_id: p.id, label: p.name });
          else attach({ kind: "entry", entry_id: p.id, label: p.name });
        }
        $("more").focus();
      });
      if (failure) showError(failure);
    },
    file: () => {
      $("file-panel").hidden = false;
      $("file-input").focus();
    },
  });
  $("expires-toggle").addEventListener("change", () => {
    const on = $("expires-toggle").checked;
    const input = $("expires-at");
    input.disabled = !on;
    setExpiryMin();
    if (on && !input.value) input.value = localInputValue(new Date(Date.now() + 24 * 3600_000));
    if (on) input.focus();
  });
  $("expires-at").addEventListener("focus", setExpiryMin);
  $("send").addEventListener("click", send);
  $("compose-clear").addEventListener("click", () => {
    resetComposer({ keepMode: true });
    report(statusBox, "Draft discarded.");
    closeMoreMenu();
    focusFirstField();
  });
  bus.on("reply", replyTo_);
  bus.on("me", applyRights);
}
