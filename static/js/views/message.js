// One message: its text, its attachments, and what can be done with it.

import { h, $, clear, setText, formatTime, formatSize, report, wireDialog, openDialog, folderPaths } from "../dom.js";
import { get, post, del, errorText } from "../api.js";
import { bus } from "../bus.js";
import { state } from "../state.js";
import { showView } from "../nav.js";
import { entryDetails } from "../secrets.js";

let current = null; // {id, box, detail}

const status = $("message-status");

export function currentMessageId() {
  return current && !$("message-view").hidden ? current.id : null;
}

export async function openMessage(id, box = "inbox") {
  report(status, "");
  let detail;
  try {
    detail = await get(`/api/messages/${id}`);
  } catch (error) {
    bus.emit("notice", error.status === 404 ? "That message is gone." : errorText(error));
    if (error.status === 404) bus.emit("message-gone", { id, reason: "deleted" });
    return;
  }
  current = { id, box, detail };
  render(detail);
  showView("message-view");
}

function render(m) {
  const mine = state.me && m.sender.id === state.me.id;
  setText($("message-subject"), m.subject);
  setText($("message-sender"), m.sender.display_name);
  const to = (m.recipients || []).map((r) => r.name).join(", ");
  $("message-to").hidden = $("message-to-label").hidden = !to;
  setText($("message-to"), to);
  const sent = $("message-sent");
  clear(sent).appendChild(h("time", { datetime: m.sent_at }, formatTime(m.sent_at)));
  setText($("message-expires"), m.expires_at ? formatTime(m.expires_at) : "Never");
  $("message-priority").hidden = !m.high_priority;
  setText($("message-body"), m.body);
  renderAttachments(m);
  const hasAttachments = m.attachments.length > 0;
  $("save-vault").hidden = !hasAttachments;
  $("save-as").hidden = !hasAttachments;
  $("delete-message").hidden = mine;
  $("recall-message").hidden = !mine;
  $("reply").hidden = false;
}

function renderAttachments(m) {
  const list = clear($("message-attachments"));
  $("message-attachments-title").hidden = m.attachments.length === 0;
  for (const a of m.attachments) {
    const href = `/api/messages/${m.id}/attachments/${a.id}`;
    const kind = { file: "File", credential: "Credentials", entry: "Entry", folder: "Folder" }[a.kind] || a.kind;
    const li = h("li", { dataset: { id: a.id, kind: a.kind } },
      h("span", { class: "kind" }, kind),
      " ",
      h("span", { class: "name" }, a.name),
      a.size !== null && a.size !== undefined ? h("span", { class: "size" }, ` (${formatSize(a.size)})`) : null,
      " ");
    if (a.kind === "file") {
      li.appendChild(h("a", { href, download: a.name || "file", class: "download" }, "Download"));
    } else {
      const detail = h("div", { class: "attachment-detail", hidden: true });
      const button = h("button", { type: "button", class: "small show", "aria-expanded": "false" }, "Show");
      button.addEventListener("click", () => toggleAttachment(href, m.id, a, button, detail));
      li.append(button, detail);
    }
    list.appendChild(li);
  }
}

async function toggleAttachment(href, messageId, attachment, button, detail) {
  if (!detail.hidden) {
    detail.hidden = true;
    button.textContent = "Show";
    button.setAttribute("aria-expanded", "false");
    return;
  }
  if (!detail.firstChild) {
    try {
      const data = await get(href);
      const entryFile = (entry) => `${href}/entries/${entry.id}/file`;
      if (data.kind === "credential") detail.appendChild(entryDetails(data));
      else if (data.kind === "entry") detail.appendChild(entryDetails(data.entry, entryFile(data.entry)));
      else if (data.kind === "folder") detail.appendChild(folderDetails(data.folder, entryFile));
    } catch (error) {
      report(status, errorText(error), true);
      return;
    }
  }
  detail.hidden = false;
  button.textContent = "Hide";
  button.setAttribute("aria-expanded", "true");
}

function folderDetails(folder, entryFile) {
  return h("div", { class: "folder-copy" },
    h("p", { class: "folder-name" }, h("span", { class: "icon folder-icon", "aria-hidden": "true" }, "📁"), folder.name),
    h("ul", {},
      (folder.entries || []).map((entry) => h("li", {}, entryDetails(entry, entryFile(entry)))),
      (folder.folders || []).map((sub) => h("li", {}, folderDetails(sub, entryFile)))));
}

async function closeMessage() {
  if (!current) return;
  const { id, box, detail } = current;
  const recipient = box === "inbox" || !(state.me && detail.sender.id === state.me.id);
  if (recipient && !detail.read_at) {
    try {
      const answer = await post(`/api/messages/${id}/read`);
      detail.read_at = answer.read_at;
      bus.emit("message-read", { id, read_at: answer.read_at });
    } catch (error) {
      if (error.status !== 404) {
        report(status, errorText(error), true);
        return;
      }
    }
  }
  current = null;
  showView(box === "sent" ? "sent" : "inbox");
}

function savedText(answer, where) {
  const entries = answer.entry_ids.length;
  const folders = (answer.folder_ids || []).length;
  let text = `Saved ${entries} ${entries === 1 ? "entry" : "entries"}`;
  if (folders) text += ` and ${folders} ${folders === 1 ? "folder" : "folders"}`;
  return where ? `${text} in “${where}”` : `${text} in your vault`;
}

async function save(folderId, where = null) {
  const answer = await post(`/api/messages/${current.id}/save`, { folder_id: folderId });
  report(status, savedText(answer, where));
  bus.emit("vault-changed");
}

async function openSaveAs() {
  const select = clear($("save-folder"));
  select.appendChild(h("option", { value: "" }, "Vault (top level)"));
  report($("save-as-error"), "");
  $("save-new-folder").value = "";
  try {
    const vault = await get("/api/vault");
    for (const f of folderPaths(vault.folders)) select.appendChild(h("option", { value: f.id }, f.label));
  } catch (error) {
    report(status, errorText(error), true);
    return;
  }
  openDialog($("save-as-dialog"));
  select.focus();
}

async function confirmSaveAs() {
  const dialog = $("save-as-dialog");
  const select = $("save-folder");
  let folderId = select.value || null;
  let where = folderId ? select.selectedOptions[0].textContent : null;
  const newName = $("save-new-folder").value.trim();
  try {
    if (newName) {
      const folder = await post("/api/vault/folders", { name: newName, parent_id: folderId });
      folderId = folder.id;
      where = where ? `${where} / ${newName}` : newName;
    }
    await save(folderId, where);
    dialog.close();
    $("save-as").focus();
  } catch (error) {
    report($("save-as-error"), errorText(error), true);
  }
}

async function remove() {
  if (!current) return;
  const { id, box, detail } = current;
  const mine = state.me && detail.sender.id === state.me.id;
  try {
    await del(`/api/messages/${id}`);
  } catch (error) {
    if (error.status !== 404) {
      report(status, errorText(error), true);
      return;
    }
  }
  current = null;
  bus.emit("message-gone", { id, reason: mine ? "recalled" : "deleted", byMe: true });
  bus.emit("notice", mine ? "The message was recalled from everyone." : "The message was deleted.");
  showView(box === "sent" ? "sent" : "inbox");
}

export function messageGone(id, reason, byMe) {
  if (!current || current.id !== id) return;
  const box = current.box;
  const visible = !$("message-view").hidden;
  current = null;
  if (visible) {
    if (!byMe) bus.emit("notice", reason === "expired" ? "The message expired." : "The message was removed.");
    showView(box === "sent" ? "sent" : "inbox");
  }
}

export function messageRead(id, readAt) {
  if (current && current.id === id && current.box === "inbox") current.detail.read_at = readAt;
}

export function initMessage() {
  wireDialog($("save-as-dialog"));
  $("message-back").addEventListener("click", () => showView(current?.box === "sent" ? "sent" : "inbox"));
  $("reply").addEventListener("click", () => current && bus.emit("reply", current.detail));
  $("close-message").addEventListener("click", closeMessage);
  $("save-vault").addEventListener("click", async () => {
    try {
      await save(null);
    } catch (error) {
      report(status, errorText(error), true);
    }
  });
  $("save-as").addEventListener("click", openSaveAs);
  $("save-confirm").addEventListener("click", confirmSaveAs);
  $("save-as-form").addEventListener("submit", (event) => {
    event.preventDefault();
    confirmSaveAs();
  });
  $("delete-message").addEventListener("click", remove);
  $("recall-message").addEventListener("click", remove);
}
