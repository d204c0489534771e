// The composer: recipients, subject, message, expiry, priority, attachments, and sending.

import { h, $, clear, report, formatSize, randomKey } from "../dom.js";
import { post, upload, errorText, ApiError, MAX_UPLOAD } from "../api.js";
import { bus } from "../bus.js";
import { showView } from "../nav.js";
import { recipients, recipientNames, setRecipients, clearRecipients, initRecipients } from "./recipients.js";
import { initGenerator, openGenerator } from "./generator.js";
import { initPicker, openPicker } from "./picker.js";
import { initMoreMenu, closeMoreMenu } from "./more-menu.js";

let attachments = []; // {kind, label, ...what the server takes; a file keeps its File}
let replyTo = null;
let sending = false;

const errorBox = $("compose-error");
const statusBox = $("compose-status");
const progress = $("compose-progress");

function localInputValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`
    + `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function showError(lines) {
  clear(errorBox);
  const list = Array.isArray(lines) ? lines : [lines];
  for (const line of list.filter(Boolean)) errorBox.appendChild(h("p", {}, line));
  errorBox.hidden = errorBox.childNodes.length === 0;
}

function renderAttachments() {
  const list = clear($("compose-attachments"));
  $("compose-attachments-title").hidden = attachments.length === 0;
  const kinds = { credential: "Credentials", entry: "Entry", folder: "Folder", file: "File" };
  attachments.forEach((a, index) => {
    const remove = h("button", { type: "button", class: "remove small", "aria-label": `Remove ${a.label}` }, "Remove");
    remove.addEventListener("click", () => {
      attachments.splice(index, 1);
      renderAttachments();
      $("more").focus();
    });
    list.appendChild(h("li", { dataset: { kind: a.kind } },
      h("span", { class: "kind" }, kinds[a.kind]), " ",
      h("span", { class: "name" }, a.label),
      a.file ? h("span", { class: "size" }, ` (${formatSize(a.file.size)})`) : null,
      " ", remove));
  });
}

export function attach(item) {
  const same = (a) => a.kind === item.kind && (
    (item.kind === "entry" && a.entry_id === item.entry_id) ||
    (item.kind === "folder" && a.folder_id === item.folder_id));
  if (attachments.some(same)) return;
  attachments.push(item);
  renderAttachments();
}

function addFiles(files) {
  const refused = [];
  for (const file of files) {
    if (file.size > MAX_UPLOAD) {
      refused.push(`“${file.name}” is too large to send: a file may be at most 25 MiB (${MAX_UPLOAD.toLocaleString()} bytes).`);
      continue;
    }
    attach({ kind: "file", label: file.name, file });
  }
  showError(refused);
}

export function resetComposer() {
  clearRecipients();
  $("subject").value = "";
  $("body").value = "";
  $("expires-toggle").checked = false;
  $("expires-at").value = "";
  $("expires-at").disabled = true;
  $("high-priority").checked = false;
  attachments = [];
  replyTo = null;
  renderAttachments();
  hideCredentialForm();
  $("file-panel").hidden = true;
  showError([]);
  progress.hidden = true;
}

export function openComposer({ to = null, subject = null, reply = null, attachment = null } = {}) {
  if (to) setRecipients(to);
  if (subject !== null) $("subject").value = subject;
  if (reply !== null) replyTo = reply;
  if (attachment) attach(attachment);
  report(statusBox, "");
  showView("compose", { focus: false });
  if (recipients().length === 0) $("to-input").focus();
  else if (!$("subject").value) $("subject").focus();
  else $("body").focus();
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

function hideCredentialForm() {
  const form = $("credential-form");
  form.reset();
  form.hidden = true;
  openGenerator(false);
  $("cred-password").type = "password";
  $("cred-show").textContent = "Show";
}

function describeField(path) {
  const names = { to: "To", subject: "Subject", body: "Message", expires_at: "Expires", reply_to: "Reply", attachments: "Attachments" };
  const parts = path.split(".");
  if (parts[0] === "to" && parts.length > 1) {
    const name = recipientNames()[Number(parts[1])];
    return name ? `To (${name})` : "To";
  }
  if (parts[0] === "attachments" && parts.length > 1) {
    const a = attachments[Number(parts[1])];
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

async function uploadFiles() {
  const files = attachments.filter((a) => a.kind === "file" && !a.upload_id);
  if (files.length === 0) return;
  const total = files.reduce((sum, a) => sum + a.file.size, 0) || 1;
  let done = 0;
  progress.hidden = false;
  progress.value = 0;
  for (const a of files) {
    report(statusBox, `Uploading ${a.label}…`);
    const answer = await upload(a.file, (loaded) => {
      progress.value = Math.min(1, (done + loaded) / total);
    });
    a.upload_id = answer.upload_id;
    done += a.file.size;
    progress.value = Math.min(1, done / total);
  }
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
    attachments: attachments.map((a) => {
      if (a.kind === "credential") {
        return { kind: "credential", title: a.title, username: a.username, password: a.password, url: "", notes: "" };
      }
      if (a.kind === "entry") return { kind: "entry", entry_id: a.entry_id };
      if (a.kind === "folder") return { kind: "folder", folder_id: a.folder_id };
      return { kind: "file", upload_id: a.upload_id };
    }),
  };
}

async function send() {
  if (sending) return;
  showError([]);
  report(statusBox, "");
  const problems = validate();
  if (problems.length) {
    showError(problems);
    return;
  }
  sending = true;
  $("send").disabled = true;
  try {
    await uploadFiles();
    report(statusBox, "Sending…");
    const answer = await post("/api/messages", payload(), { headers: { "Idempotency-Key": randomKey() } });
    resetComposer();
    const n = answer.recipients;
    report(statusBox, `Sent to ${n} ${n === 1 ? "recipient" : "recipients"}.`);
    bus.emit("sent", answer);
  } catch (error) {
    report(statusBox, "");
    showError(error instanceof ApiError ? error.lines(describeField) : [errorText(error)]);
    if (error.status === 404) {
      // An upload older than an hour is gone: upload again next time.
      for (const a of attachments) delete a.upload_id;
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

function initCredentials() {
  const form = $("credential-form");
  $("cred-show").addEventListener("click", () => {
    const field = $("cred-password");
    const reveal = field.type === "password";
    field.type = reveal ? "text" : "password";
    $("cred-show").textContent = reveal ? "Hide" : "Show";
    $("cred-show").setAttribute("aria-pressed", String(reveal));
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const title = $("cred-title").value.trim();
    if (!title) {
      showError("Credentials need a title.");
      $("cred-title").focus();
      return;
    }
    attach({
      kind: "credential", label: title, title,
      username: $("cred-username").value, password: $("cred-password").value,
    });
    showError([]);
    hideCredentialForm();
    $("more").focus();
  });
  $("cred-cancel").addEventListener("click", () => {
    hideCredentialForm();
    $("more").focus();
  });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.defaultPrevented) {
      hideCredentialForm();
      $("more").focus();
    }
  });
}

function initFiles() {
  const zone = $("drop-zone");
  $("file-input").addEventListener("change", () => {
    addFiles([...$("file-input").files]);
    $("file-input").value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    addFiles([...(event.dataTransfer?.files || [])]);
  });
}

function applyRights(me) {
  const notice = $("compose-notice");
  if (!me.can_send) {
    notice.textContent = "Your account may not send messages.";
  } else if (!me.can_attach) {
    notice.textContent = "Your account may send messages without attachments.";
  }
  // The server has the last word (rights may change while the page is open): nothing is
  // disabled here, a refused send says why.
  notice.hidden = me.can_send && me.can_attach;
}

export function initCompose() {
  initRecipients();
  initGenerator();
  initPicker();
  initCredentials();
  initFiles();
  initMoreMenu({
    credentials: () => {
      $("credential-form").hidden = false;
      $("cred-title").focus();
    },
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
    resetComposer();
    report(statusBox, "Draft discarded.");
    closeMoreMenu();
    $("to-input").focus();
  });
  bus.on("reply", replyTo_);
  bus.on("me", applyRights);
}
