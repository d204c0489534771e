// The user's vault: folders and entries, the entry form, and "Send copy".

import { h, $, clear, report, wireDialog, openDialog, folderPaths, formatSize, confirmTwice } from "../dom.js";
import { get, post, patch, del, upload, errorText } from "../api.js";
import { largestFileBytes, largestFileMb } from "../state.js";
import { bus } from "../bus.js";
import { copyText } from "../secrets.js";
import { buildTree } from "./picker.js";
import { openComposer } from "./compose.js";
import { passwordQuery } from "./generator.js";

let vault = { folders: [], entries: [] };
let editing = null; // the entry shown in the form, or null for a new one

const status = $("vault-status");
const form = $("entry-form");

function sendCopyButton(item, label) {
  const button = h("button", { type: "button", class: "send-copy small", "aria-label": `Send a copy of ${label}` }, "Send copy");
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    openComposer({ attachment: item });
  });
  return button;
}

function renderLevel(childrenOf, parentId) {
  const { folders, entries } = childrenOf(parentId);
  const items = [];
  for (const folder of folders) {
    const remove = h("button", { type: "button", class: "delete small danger", "aria-label": `Delete folder ${folder.name}` }, "Delete");
    confirmTwice(remove, () => deleteFolder(folder), "Delete with contents?");
    items.push(h("li", { class: "folder", dataset: { id: folder.id } },
      h("div", { class: "tree-row" },
        h("span", { class: "name" }, h("span", { class: "icon folder-icon", "aria-hidden": "true" }, "📁"), folder.name),
        sendCopyButton({ kind: "folder", folder_id: folder.id, label: folder.name }, folder.name),
        remove),
      h("ul", {}, renderLevel(childrenOf, folder.id))));
  }
  for (const entry of entries) {
    const open = h("button", { type: "button", class: "open-entry link-button" },
      h("span", { class: "title" }, entry.title),
      entry.username ? h("span", { class: "extra" }, ` ${entry.username}`) : null,
      entry.file ? h("span", { class: "extra" }, ` ${entry.file.name} (${formatSize(entry.file.size)})`) : null);
    open.addEventListener("click", () => openEntry(entry.id));
    items.push(h("li", { class: `entry ${entry.kind}`, dataset: { id: entry.id } },
      h("div", { class: "tree-row" }, open,
        sendCopyButton({ kind: "entry", entry_id: entry.id, label: entry.title }, entry.title))));
  }
  return items;
}

function fillFolderSelect(select, selected) {
  clear(select);
  select.appendChild(h("option", { value: "" }, "Vault (top level)"));
  for (const f of folderPaths(vault.folders)) select.appendChild(h("option", { value: f.id }, f.label));
  select.value = selected || "";
}

export async function loadVault() {
  try {
    vault = await get("/api/vault");
  } catch (error) {
    report(status, errorText(error), true);
    return;
  }
  const tree = clear($("vault-tree"));
  tree.append(...renderLevel(buildTree(vault), null));
  if (!tree.firstChild) tree.appendChild(h("li", { class: "hint" }, "Your vault is empty."));
  if (!form.hidden) {
    const keep = $("entry-folder").value;
    fillFolderSelect($("entry-folder"), keep);
  }
}

function kindChanged() {
  const kind = $("entry-kind").value;
  $("entry-file-field").hidden = kind !== "file";
}

function showForm(entry) {
  editing = entry;
  form.hidden = false;
  $("entry-form-title").textContent = entry ? "Edit entry" : "New entry";
  $("entry-kind").value = entry ? entry.kind : "credential";
  $("entry-kind").disabled = Boolean(entry);
  $("entry-title").value = entry ? entry.title : "";
  $("entry-username").value = entry ? entry.username : "";
  $("entry-password").value = entry ? entry.password : "";
  $("entry-password").type = "password";
  $("reveal-password").textContent = "Reveal";
  $("reveal-password").setAttribute("aria-pressed", "false");
  $("entry-url").value = entry ? entry.url : "";
  $("entry-notes").value = entry ? entry.notes : "";
  $("entry-file").value = "";
  const current = $("entry-file-current");
  clear(current);
  if (entry && entry.file) {
    current.append("Current file: ",
      h("a", { href: `/api/vault/entries/${entry.id}/file`, download: entry.file.name }, entry.file.name),
      ` (${formatSize(entry.file.size)})`);
  }
  fillFolderSelect($("entry-folder"), entry ? entry.folder_id : "");
  $("entry-delete").hidden = !entry;
  $("entry-send-copy").hidden = !entry;
  kindChanged();
  $("entry-title").focus();
}

async function openEntry(id) {
  report(status, "");
  try {
    showForm(await get(`/api/vault/entries/${id}`));
  } catch (error) {
    report(status, errorText(error), true);
  }
}

async function saveEntry(event) {
  event.preventDefault();
  report(status, "");
  const file = $("entry-file").files[0];
  const body = {
    folder_id: $("entry-folder").value || null,
    title: $("entry-title").value,
    username: $("entry-username").value,
    password: $("entry-password").value,
    url: $("entry-url").value,
    notes: $("entry-notes").value,
  };
  try {
    if (file) {
      if (file.size > largestFileBytes()) throw new Error(`“${file.name}” is over ${largestFileMb()} MiB.`);
      report(status, `Uploading ${file.name}…`);
      body.upload_id = (await upload(file)).upload_id;
    }
    const saved = editing
      ? await patch(`/api/vault/entries/${editing.id}`, body)
      : await post("/api/vault/entries", { kind: $("entry-kind").value, ...body });
    report(status, `Saved “${saved.title}”.`);
    editing = saved;
    await loadVault();
    showForm(saved);
  } catch (error) {
    report(status, errorText(error), true);
  }
}

async function deleteFolder(folder) {
  try {
    await del(`/api/vault/folders/${folder.id}`);
    report(status, `Deleted the folder “${folder.name}” and everything in it.`);
    if (editing && !vault.entries.some((e) => e.id === editing.id)) form.hidden = true;
  } catch (error) {
    report(status, errorText(error), true);
  }
  await loadVault();
  if (editing && !vault.entries.some((e) => e.id === editing.id)) {
    editing = null;
    form.hidden = true;
  }
}

function openFolderDialog() {
  $("folder-name").value = "";
  report($("folder-error"), "");
  fillFolderSelect($("folder-parent"), "");
  openDialog($("folder-dialog"));
  $("folder-name").focus();
}

async function createFolder(event) {
  event.preventDefault();
  try {
    const folder = await post("/api/vault/folders", {
      name: $("folder-name").value,
      parent_id: $("folder-parent").value || null,
    });
    $("folder-dialog").close();
    report(status, `Created the folder “${folder.name}”.`);
    await loadVault();
    $("new-folder").focus();
  } catch (error) {
    report($("folder-error"), errorText(error), true);
  }
}

export function resetVault() {
  vault = { folders: [], entries: [] };
  editing = null;
  form.reset();
  form.hidden = true;
  clear($("vault-tree"));
  report(status, "");
}

export function initVault() {
  wireDialog($("folder-dialog"));
  $("new-folder").addEventListener("click", openFolderDialog);
  $("folder-form").addEventListener("submit", createFolder);
  $("new-entry").addEventListener("click", () => showForm(null));
  $("entry-kind").addEventListener("change", kindChanged);
  form.addEventListener("submit", saveEntry);
  $("entry-cancel").addEventListener("click", () => {
    form.hidden = true;
    editing = null;
    $("new-entry").focus();
  });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") $("entry-cancel").click();
  });
  $("reveal-password").addEventListener("click", () => {
    const field = $("entry-password");
    const reveal = field.type === "password";
    field.type = reveal ? "text" : "password";
    $("reveal-password").textContent = reveal ? "Hide" : "Reveal";
    $("reveal-password").setAttribute("aria-pressed", String(reveal));
  });
  $("copy-password").addEventListener("click", async () => {
    report(status, await copyText($("entry-password").value, $("entry-password")));
  });
  $("entry-generate").addEventListener("click", async () => {
    try {
      const answer = await get(passwordQuery({ length: 20, lower: true, upper: true, digits: true, symbols: true, avoidAmbiguous: false }));
      $("entry-password").value = answer.password;
      $("entry-password").type = "text";
      $("reveal-password").textContent = "Hide";
      report(status, `Generated a password of ${Math.round(answer.entropy_bits)} bits; save to keep it.`);
    } catch (error) {
      report(status, errorText(error), true);
    }
  });
  $("entry-send-copy").addEventListener("click", () => {
    if (editing) openComposer({ attachment: { kind: "entry", entry_id: editing.id, label: editing.title } });
  });
  confirmTwice($("entry-delete"), async () => {
    if (!editing) return;
    try {
      await del(`/api/vault/entries/${editing.id}`);
      report(status, `Deleted “${editing.title}”.`);
      editing = null;
      form.hidden = true;
      await loadVault();
    } catch (error) {
      report(status, errorText(error), true);
    }
  });
  bus.on("vault-changed", () => {
    if (!$("vault").hidden) loadVault();
  });
}
