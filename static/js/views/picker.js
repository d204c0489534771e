// The entry picker: choose entries and folders of one's vault to attach.

import { h, $, clear, wireDialog, openDialog } from "../dom.js";
import { get, errorText } from "../api.js";

const dialog = $("entry-picker");
let onPick = null;

export function buildTree(vault) {
  const children = new Map();
  const known = new Set(vault.folders.map((f) => f.id));
  for (const folder of vault.folders) {
    const parent = folder.parent_id && known.has(folder.parent_id) ? folder.parent_id : null;
    if (!children.has(parent)) children.set(parent, { folders: [], entries: [] });
    children.get(parent).folders.push(folder);
  }
  for (const entry of vault.entries) {
    const parent = entry.folder_id && known.has(entry.folder_id) ? entry.folder_id : null;
    if (!children.has(parent)) children.set(parent, { folders: [], entries: [] });
    children.get(parent).entries.push(entry);
  }
  for (const group of children.values()) {
    group.folders.sort((a, b) => a.name.localeCompare(b.name));
    group.entries.sort((a, b) => a.title.localeCompare(b.title));
  }
  return (id) => children.get(id) || { folders: [], entries: [] };
}

function renderLevel(childrenOf, parentId) {
  const { folders, entries } = childrenOf(parentId);
  const items = [];
  for (const folder of folders) {
    const id = `pick-folder-${folder.id}`;
    items.push(h("li", { dataset: { kind: "folder", id: folder.id } },
      h("input", { type: "checkbox", id, dataset: { name: folder.name } }),
      h("label", { for: id }, h("span", { class: "icon folder-icon", "aria-hidden": "true" }, "📁"), folder.name),
      h("ul", {}, renderLevel(childrenOf, folder.id))));
  }
  for (const entry of entries) {
    const id = `pick-entry-${entry.id}`;
    items.push(h("li", { dataset: { kind: "entry", id: entry.id } },
      h("input", { type: "checkbox", id, dataset: { name: entry.title } }),
      h("label", { for: id }, entry.title, entry.username ? h("span", { class: "extra" }, ` (${entry.username})`) : null)));
  }
  return items;
}

export async function openPicker(callback) {
  onPick = callback;
  const list = clear($("entry-picker-list"));
  let vault;
  try {
    vault = await get("/api/vault");
  } catch (error) {
    return errorText(error);
  }
  list.append(...renderLevel(buildTree(vault), null));
  $("entry-picker-empty").hidden = vault.folders.length + vault.entries.length > 0;
  openDialog(dialog);
  const first = list.querySelector("input");
  (first || $("entry-picker-add")).focus();
  return null;
}

export function initPicker() {
  wireDialog(dialog);
  $("entry-picker-add").addEventListener("click", () => {
    const picked = [];
    for (const li of $("entry-picker-list").querySelectorAll("li[data-kind]")) {
      const box = li.querySelector(":scope > input[type=checkbox]");
      if (box && box.checked) picked.push({ kind: li.dataset.kind, id: li.dataset.id, name: box.dataset.name });
    }
    dialog.close();
    if (onPick) onPick(picked);
  });
}
