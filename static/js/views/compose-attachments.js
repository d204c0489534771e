// What the composer will attach: credentials, vault entries and folders, files; and their uploads.

import { h, $, clear, report, formatSize } from "../dom.js";
import { upload } from "../api.js";
import { largestFileBytes, largestFileMb } from "../state.js";

let attachments = []; // {kind, label, ...what the server takes; a file keeps its File}
let onRefused = () => {};

const KINDS = { credential: "Credentials", entry: "Entry", folder: "Folder", file: "File" };

export function attached() {
  return attachments;
}

export function clearAttachments() {
  attachments = [];
  renderAttachments();
}

function renderAttachments() {
  const list = clear($("compose-attachments"));
  $("compose-attachments-title").hidden = attachments.length === 0;
  attachments.forEach((a, index) => {
    const remove = h("button", { type: "button", class: "remove small", "aria-label": `Remove ${a.label}` }, "Remove");
    remove.addEventListener("click", () => {
      attachments.splice(index, 1);
      renderAttachments();
      $("more").focus();
    });
    list.appendChild(h("li", { dataset: { kind: a.kind } },
      h("span", { class: "kind" }, KINDS[a.kind]), " ",
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
    const largest = largestFileBytes();
    if (file.size > largest) {
      refused.push(`“${file.name}” is too large to send: a file may be at most ${largestFileMb()} MiB (${largest.toLocaleString()} bytes).`);
      continue;
    }
    attach({ kind: "file", label: file.name, file });
  }
  onRefused(refused);
}

// Uploads the files not uploaded yet, showing the progress of them all.
export async function uploadFiles(progress, statusBox) {
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

// An upload older than an hour is gone: upload again next time.
export function forgetUploads() {
  for (const a of attachments) delete a.upload_id;
}

// The attachments as the server takes them.
export function attachmentsPayload() {
  return attachments.map((a) => {
    if (a.kind === "credential") {
      return { kind: "credential", title: a.title, username: a.username, password: a.password, url: "", notes: "" };
    }
    if (a.kind === "entry") return { kind: "entry", entry_id: a.entry_id };
    if (a.kind === "folder") return { kind: "folder", folder_id: a.folder_id };
    return { kind: "file", upload_id: a.upload_id };
  });
}

export function hasVaultAttachments() {
  return attachments.some((a) => a.kind === "entry" || a.kind === "folder");
}

export function initFiles(refused) {
  onRefused = refused;
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
